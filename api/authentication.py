"""Who is calling: an API key (integrations, AI assistants) or a verified staff session."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.request import Request

from tenants.apikeys import apikey_authenticate
from tenants.choices import PrincipalKind
from tenants.incident import ai_refusal
from tenants.models import ApiKey, User


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer vsk_<prefix>_<secret>`; `request.auth` is the ApiKey."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        key = apikey_authenticate(token.strip())
        if key is None:
            raise AuthenticationFailed(
                "The API key is unknown, expired or revoked.", code="auth.invalid_key"
            )
        if key.principal.kind == PrincipalKind.AI_ASSISTANT and (
            refusal := ai_refusal(key.tenant_id)
        ):  # read on every request: the kill switch acts at once
            raise PermissionDenied(refusal.message, code=refusal.code)
        return key.principal, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="vouchsafe"'


class StaffSessionAuthentication(SessionAuthentication):
    """A staff member's console session, only after password and TOTP, with CSRF enforced."""

    def authenticate(self, request: Request) -> tuple[User, Any] | None:
        user = getattr(request._request, "user", None)
        if not user or not user.is_active or not getattr(user, "is_human", False):
            return None
        if not user.is_verified():
            return None
        self.enforce_csrf(request)
        return user, None

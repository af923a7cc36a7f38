"""Rate limits per API key and per staff user, counted in the shared cache, keyed by tenant.

Throttling protects capacity; the limits that matter for security (approvals per hour,
attempts per challenge) are enforced in the database by the services.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenants.models import ApiKey


class _PrincipalThrottle(SimpleRateThrottle):
    """One bucket per (tenant in the URL, principal); the rate is read from settings per call."""

    rate_setting: str

    def get_rate(self) -> str:
        return settings.API_THROTTLE_RATES[self.rate_setting]

    def applies(self, request: Request) -> bool:
        raise NotImplementedError

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated or not self.applies(request):
            return None
        tenant = view.kwargs.get("tenant", "-")
        return f"throttle:{self.rate_setting}:{tenant}:{request.user.pk}"


class ApiKeyThrottle(_PrincipalThrottle):
    rate_setting = "api_key"

    def applies(self, request: Request) -> bool:
        return isinstance(request.auth, ApiKey)


class StaffThrottle(_PrincipalThrottle):
    rate_setting = "staff"

    def applies(self, request: Request) -> bool:
        return not isinstance(request.auth, ApiKey)

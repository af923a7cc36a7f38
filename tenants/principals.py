"""Non-human principals (integrations, AI assistants) and what their API keys allow."""

from __future__ import annotations

from collections.abc import Iterable

from .access import TenantAccess
from .choices import PrincipalKind
from .models import User
from .policies import ALLOW, Decision


def api_scopes(user: User) -> frozenset[str] | None:
    """The scopes of a non-human principal's key; None for a person (roles decide for them)."""
    if user.is_human:
        return None
    key = getattr(user, "api_key", None)
    return frozenset(key.scopes) if key is not None else frozenset()


def can_use_scope(
    user: User, access: TenantAccess | None, scope: str, human_roles: Iterable[str]
) -> Decision:
    """A key needs `scope`; a person needs one of `human_roles` in the tenant."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    scopes = api_scopes(user)
    if scopes is not None:
        if scope in scopes:
            return ALLOW
        return Decision(False, "auth.scope_missing", f"This API key lacks the {scope} scope.")
    if access.roles & set(human_roles):
        return ALLOW
    return Decision(
        False,
        "role.required",
        f"This needs one of the roles: {', '.join(sorted(human_roles))}.",
    )


def ai_blocked(user: User, what: str) -> Decision:
    """R-63: an AI assistant never approves, executes, accepts evidence, changes tier or policy."""
    if user.kind == PrincipalKind.AI_ASSISTANT:
        return Decision(
            False,
            "ai.action_blocked",
            f"An AI assistant may not {what}; a person must do this (R-63).",
        )
    return ALLOW

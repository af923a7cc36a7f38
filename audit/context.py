"""Who is acting and from where: the actor of an audit event and the request it came from."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


class ActorType(models.TextChoices):
    HUMAN = "human", _("Human")
    INTEGRATION = "integration", _("Integration")
    AI = "ai", _("AI assistant")
    SYSTEM = "system", _("System")


# A user's principal kind (tenants.choices.PrincipalKind) as the actor type of its events.
_TYPE_OF_KIND = {"integration": ActorType.INTEGRATION, "ai_assistant": ActorType.AI}


@dataclass(frozen=True)
class Actor:
    """The principal an audit event is attributed to, denormalised so it survives deletions."""

    id: str
    label: str
    type: ActorType
    organisation: str = ""

    @classmethod
    def for_user(cls, user: Any, organisation: str = "") -> Actor:
        """A user row as an actor; API principals are typed integration or AI assistant."""
        return cls(
            id=str(user.pk),
            label=user.get_username(),
            type=_TYPE_OF_KIND.get(getattr(user, "kind", "human"), ActorType.HUMAN),
            organisation=organisation,
        )

    @classmethod
    def in_tenant(cls, user: Any, tenant: Any) -> Actor:
        """`user` acting in `tenant`, named with the organisation they act for: their service
        provider's when through a delegation grant, else the tenant's (empty without access)."""
        from tenants.access import access_in  # the tenant core; audit sits above it

        access = access_in(user, tenant)
        if access is not None and access.via_grant:
            return cls.for_user(user, organisation=access.organisation)
        return cls.for_user(user, organisation=tenant.name if access else "")

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(id="system", label=label, type=ActorType.SYSTEM)


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str = ""
    user_agent: str = ""


_NO_REQUEST = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "vouchsafe_request_context", default=None
)


def current_request() -> RequestContext:
    """The request context of the current thread/task (empty outside a request)."""
    return _current.get() or _NO_REQUEST


def set_request(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def reset_request(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)

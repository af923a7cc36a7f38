"""The owner portal's own session: a cookie of its own, never the staff session.

A portal session is a row (`OwnerPortalSession`) created by what authenticated the owner (an
enrolment link, an IdP sign-in, a recovery artifact) and activated here: a random token goes
into the portal cookie and only its SHA-256 stays in the row (R-29). Portal views run under
`owner_view`, which finds the row by that digest and scopes the request to its tenant;
`request.user` (a staff session) is never consulted, so a staff cookie opens nothing here and
the portal cookie opens nothing in the console.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.rls import system_scope, tenant_scope

from .choices import PortalSessionKind, PortalSessionStatus
from .models import OwnerPortalSession

TOKEN_BYTES = 32
SESSION_SECONDS = 30 * 60  # an owner portal session lasts at most 30 minutes
OWNER = Actor.system("account-owner")
# Sessions in which the owner manages what they enrolled (not an artifact session, R-12).
ENROLLED_KINDS = (PortalSessionKind.ENROLMENT, PortalSessionKind.IDP_ENROLMENT)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_name() -> str:
    return settings.OWNER_SESSION_COOKIE_NAME


def _session_end_time(session: OwnerPortalSession, now: datetime) -> datetime:
    """30 minutes from now; an artifact session never outlives its artifact."""
    end = now + timedelta(seconds=SESSION_SECONDS)
    if session.kind == PortalSessionKind.ARTIFACT and session.artifact is not None:
        end = min(end, session.artifact.expires_at)
    return end


def portal_session_activate(session: OwnerPortalSession, response: HttpResponse) -> None:
    """Start `session` (a row its caller just created or consumed) and set the portal cookie.

    Runs in the caller's transaction and tenant scope: the row, its `owner.session_started`
    event and the cookie go together (the cookie is set on `response` only after the save).
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    session.status = PortalSessionStatus.ACTIVE
    session.token_hash = token_digest(token)
    session.activated_at = now
    session.expires_at = _session_end_time(session, now)
    session.save(update_fields=["status", "token_hash", "activated_at", "expires_at"])
    record(
        action="owner.session_started",
        actor=OWNER,
        tenant=session.tenant,
        target=session.case or session.account,
        data={
            "session": session.pk,
            "kind": session.kind,
            "purpose": session.purpose,
            "case": session.case_id,
            "expires_at": session.expires_at,
        },
    )
    response.set_cookie(
        cookie_name(),
        token,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def portal_session_end(session: OwnerPortalSession) -> None:
    """End `session` now (sign-out, or its purpose is done)."""
    with tenant_scope([session.tenant_id]):
        OwnerPortalSession.objects.for_tenant(session.tenant).filter(
            pk=session.pk, status=PortalSessionStatus.ACTIVE
        ).update(status=PortalSessionStatus.ENDED, ended_at=Now())


def session_from_request(request: HttpRequest) -> OwnerPortalSession | None:
    """The active, unexpired portal session the request's cookie names, or None."""
    token = request.COOKIES.get(cookie_name())
    if not token:
        return None
    with system_scope():  # the cookie, not a staff session, names the tenant
        return (
            OwnerPortalSession.objects.select_related("tenant", "account", "case", "artifact")
            .filter(
                token_hash=token_digest(token),
                status=PortalSessionStatus.ACTIVE,
                expires_at__gt=Now(),
            )
            .first()
        )


def _refused(request: HttpRequest, session: OwnerPortalSession | None, reason: str) -> HttpResponse:
    if session is not None:
        with tenant_scope([session.tenant_id]), transaction.atomic():
            record(
                action="owner.session_refused",
                actor=OWNER,
                tenant=session.tenant,
                target=session.case or session.account,
                data={"session": session.pk, "reason": reason, "path": request.path[:200]},
            )
    return render(
        request,
        "owner/session_required.html",
        {"reason": reason, "session": session},
        status=403,
    )


def owner_view(
    *, kinds: Iterable[str], purposes: Iterable[str] | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorator for portal views: only an active owner session of one of `kinds` (and, for
    artifact sessions, one of `purposes`) reaches the view, as `request.owner_session`, inside
    its tenant's scope. Anything else gets the "open your link again" page with 403; a session
    used outside its kind or purpose is recorded as `owner.session_refused` (R-12)."""
    allowed_kinds = frozenset(kinds)
    allowed_purposes = frozenset(purposes) if purposes is not None else None

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            session = session_from_request(request)
            if session is None:
                return _refused(request, None, "no_session")
            if session.kind not in allowed_kinds:
                return _refused(request, session, "wrong_session_kind")
            if allowed_purposes is not None and session.purpose not in allowed_purposes:
                return _refused(request, session, "wrong_purpose")
            request.owner_session = session  # type: ignore[attr-defined]
            with tenant_scope([session.tenant_id]):
                return view(request, *args, **kwargs)

        return wrapped

    return decorate

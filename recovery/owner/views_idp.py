"""The owner's pages for signing in with the tenant's identity provider (OpenID Connect).

- `/owner/idp/<token>/`: the link an agent's request sent. A GET shows who asks and why; the
  POST goes on to the provider (a mail scanner that follows links starts nothing). "This
  wasn't me" on the same page repudiates the case.
- `/owner/t/<tenant>/sign-in/`: sign in with the organisation's provider to enrol. Without an
  active configuration the page says IdP sign-in is not set up.
- `/owner/idp/callback/`: where the provider sends the browser back; the verifier
  (`recovery.owner.idp_sign_in.idp_sign_in_complete`) decides.

No staff session is ever read here. Starting a flow sets a short-lived cookie (`vs_idp`, path
`/owner/idp/`, HttpOnly, SameSite=Lax so the provider's top-level redirect carries it) whose
SHA-256 the sign-in keeps: the callback is honoured only in the browser that started it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.exceptions import DomainError
from tenants.models import Tenant
from tenants.rls import system_scope

from .idp_config import idp_config_active
from .idp_sign_in import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_PATH,
    FLOW_LIFETIME,
    Callback,
    IdpStart,
    agent_name,
    idp_sign_in_complete,
    idp_sign_in_find_by_link,
    idp_sign_in_link_usable,
    idp_sign_in_repudiate,
    idp_sign_in_start_for_case,
    idp_sign_in_start_for_enrolment,
)
from .sessions import portal_session_activate
from .throttle import address_over_limit

TEMPLATE = "owner/idp.html"
MAX_PARAM = 2048


def _page(request: HttpRequest, state: str, *, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, TEMPLATE, {"state": state, **extra}, status=status)


def _to_provider(start: IdpStart) -> HttpResponse:
    """Send the browser to the provider, bound to it by the cookie."""
    response = HttpResponseRedirect(start.redirect_url)
    response.set_cookie(
        BROWSER_COOKIE,
        start.browser_token,
        max_age=int(FLOW_LIFETIME.total_seconds()),
        path=BROWSER_COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response


def _forget_browser(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(BROWSER_COOKIE, path=BROWSER_COOKIE_PATH)
    return response


def _tenant(slug: str) -> Tenant | None:
    with system_scope():  # the URL names the tenant; the owner has no session yet
        return Tenant.objects.filter(slug=slug, is_active=True).first()


# --- the agent's link (case signal) ---------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def idp_link_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what is asked, by which organisation and agent. POST: go on to the provider."""
    if request.method == "POST":
        try:
            start = idp_sign_in_start_for_case(token=token)
        except DomainError as refused:
            status = 503 if refused.code == "idp.unavailable" else 410
            return _page(request, "refused", status=status, message=refused.message)
        return _to_provider(start)
    sign_in = idp_sign_in_find_by_link(token)
    if not idp_sign_in_link_usable(sign_in):
        return _page(request, "invalid", status=404)
    assert sign_in is not None and sign_in.case is not None
    case = sign_in.case
    return _page(
        request,
        "ask",
        token=token,
        organisation=sign_in.tenant.name,
        agent=agent_name(sign_in.requested_by),
        case_type=case.get_case_type_display(),
        username=case.account.username,
        expires_at=sign_in.expires_at,
    )


@never_cache
@require_POST
def idp_link_not_me_view(request: HttpRequest, token: str) -> HttpResponse:
    """ "This wasn't me": the case is repudiated (R-41)."""
    try:
        idp_sign_in_repudiate(token=token)
    except DomainError:
        return _page(request, "invalid", status=404)
    return _page(request, "repudiated")


# --- sign in to enrol -----------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def idp_enrol_view(request: HttpRequest, tenant: str) -> HttpResponse:
    """The organisation's "sign in to set up account recovery" page."""
    found = _tenant(tenant)
    if found is None:
        return _page(request, "invalid_tenant", status=404)
    if request.method == "POST":
        if address_over_limit(request, "idp-enrol"):
            return _page(
                request,
                "limited",
                status=429,
                organisation=found.name,
                tenant_slug=found.slug,
            )
        try:
            start = idp_sign_in_start_for_enrolment(tenant=found)
        except DomainError as refused:
            configured = refused.code != "idp.not_configured"
            return _page(
                request,
                "enrol" if configured else "not_configured",
                status=503 if configured else 200,
                organisation=found.name,
                tenant_slug=found.slug,
                message=refused.message if configured else "",
            )
        return _to_provider(start)
    with system_scope():
        configured = idp_config_active(found) is not None
    return _page(
        request,
        "enrol" if configured else "not_configured",
        organisation=found.name,
        tenant_slug=found.slug,
    )


# --- the provider's answer ------------------------------------------------------------------


def _param(request: HttpRequest, name: str) -> str:
    return request.GET.get(name, "")[:MAX_PARAM]


@never_cache
@require_GET
def idp_callback_view(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with `code`, `state` and `iss` (or `error`)."""
    back = Callback(
        state=_param(request, "state"),
        code=_param(request, "code"),
        iss=_param(request, "iss"),
        error=_param(request, "error"),
        browser_token=request.COOKIES.get(BROWSER_COOKIE, "")[:MAX_PARAM],
    )
    enrolled = redirect("owner-home")
    try:
        outcome = idp_sign_in_complete(
            back=back, on_enrolled=lambda session: portal_session_activate(session, enrolled)
        )
    except DomainError as refused:
        status = 400 if refused.code == "idp.unknown_state" else 403
        return _forget_browser(_page(request, "refused", status=status, message=refused.message))
    if outcome.session is not None:
        return _forget_browser(enrolled)
    counted = outcome.evidence is not None and outcome.evidence.result == "accepted"
    return _forget_browser(_page(request, "done", counted=counted))

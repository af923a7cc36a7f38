"""The portal's home and sign-out; the other pages live in the views_* module of their area."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from tenants.rls import tenant_scope

from .choices import PortalSessionKind
from .sessions import cookie_name, portal_session_end, session_from_request


@require_http_methods(["GET"])
def home_view(request: HttpRequest) -> HttpResponse:
    """Enrolment session: what the owner has enrolled. Artifact session: the recovery page.
    No session: how to get in."""
    session = session_from_request(request)
    if session is None:
        return render(request, "owner/welcome.html")
    if session.kind == PortalSessionKind.ARTIFACT:
        return redirect("owner-recovery")
    from .views_enrol import enrolled_home  # the enrolment area renders the signed-in home

    request.owner_session = session  # type: ignore[attr-defined]
    with tenant_scope([session.tenant_id]):
        return enrolled_home(request, session)


@require_POST
def sign_out_view(request: HttpRequest) -> HttpResponse:
    session = session_from_request(request)
    if session is not None:
        portal_session_end(session)
    response = redirect("owner-home")
    response.delete_cookie(cookie_name(), path="/")
    return response

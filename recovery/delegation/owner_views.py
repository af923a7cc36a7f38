"""The mailbox owner's page in the owner portal: the requests for access to mailboxes they
own, each approved or refused in their own session (the service decides which sessions count:
an identity provider sign-in, never a link sent by e-mail)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from tenants.exceptions import DomainError

from ..owner.choices import PortalSessionKind
from ..owner.sessions import ENROLLED_KINDS, owner_view
from .selectors import delegations_for_owner
from .services import delegation_owner_decide

DONE = {"approved", "refused"}


def _page(
    request: HttpRequest, error: DomainError | None = None, status: int = 200
) -> HttpResponse:
    session = request.owner_session  # type: ignore[attr-defined]
    requests = list(delegations_for_owner(owner=session.account))
    for item in requests:
        item.hours = item.lifetime_seconds // 3600  # type: ignore[attr-defined]
    context = {
        "account": session.account,
        "requests": requests,
        "signed_in_with_idp": session.kind == PortalSessionKind.IDP_ENROLMENT,
        "error": error,
        "done": request.GET.get("done", "") if request.GET.get("done") in DONE else "",
    }
    response = render(request, "owner/delegations.html", context, status=status)
    add_never_cache_headers(response)
    return response


@require_GET
@owner_view(kinds=ENROLLED_KINDS)
def delegations_view(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@owner_view(kinds=ENROLLED_KINDS)
def delegation_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    decision = request.POST.get("decision")
    if decision not in ("approve", "refuse"):
        return _page(request, status=400)
    try:
        delegation_owner_decide(
            session=request.owner_session,  # type: ignore[attr-defined]
            delegation_id=pk,
            approve=decision == "approve",
        )
    except DomainError as error:
        if error.code == "delegation.not_found":
            raise Http404 from None
        return _page(request, error=error, status=403)
    done = "approved" if decision == "approve" else "refused"
    return redirect(f"{reverse('owner-delegations')}?done={done}")

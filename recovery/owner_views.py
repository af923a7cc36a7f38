"""Pages for the account owner, reached from a message (no staff session): open a recovery
link (which starts the owner portal's artifact session), or say "this wasn't me". A GET only
shows a button; the change needs the POST, so a mail scanner that follows links changes
nothing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .artifacts.models import ArtifactPurpose
from .artifacts.services import ArtifactRefused
from .cases.services.repudiation import case_repudiate
from .notifications.services import notice_from_token
from .owner.binding import artifact_session_open


@require_http_methods(["GET", "POST"])
def recover_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks; POST uses the link once and opens the artifact session bound to its case and
    purpose (R-11), in which the owner chooses the new password at /owner/recovery/."""
    if request.method == "GET":
        return render(request, "owner/recover.html", {"state": "ask"})
    response = redirect("owner-recovery")
    try:
        artifact_session_open(token=token, purpose=ArtifactPurpose.PASSWORD, response=response)
    except ArtifactRefused as refused:
        return render(
            request,
            "owner/recover.html",
            {"state": "refused", "message": refused.message},
            status=410,
        )
    return response


@require_http_methods(["GET", "POST"])
def not_me_view(request: HttpRequest, token: str) -> HttpResponse:
    notice = notice_from_token(token)
    if notice is None:
        return render(request, "owner/not_me.html", {"state": "invalid"}, status=404)
    # A notice about a case stops the recovery; one about the account itself (a passkey or
    # saved codes added) freezes it and takes back what was enrolled recently.
    about = "case" if notice.case_id is not None else "account"
    if request.method == "GET":
        return render(request, "owner/not_me.html", {"state": "ask", "about": about})
    if notice.case_id is None:
        from .owner.enrolment import account_repudiate

        account_repudiate(notice=notice)
    else:
        case_repudiate(notice=notice)
    return render(request, "owner/not_me.html", {"state": "done", "about": about})

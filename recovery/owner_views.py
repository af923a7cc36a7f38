"""Pages for the account owner, reached from a message (no staff session): use a recovery
link, or say "this wasn't me". A GET only shows a button; the change needs the POST, so a
mail scanner that follows links changes nothing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .artifacts.models import ArtifactPurpose
from .artifacts.services import ArtifactRefused, artifact_consume
from .cases.execution import case_repudiate
from .notifications.services import notice_from_token


@require_http_methods(["GET", "POST"])
def recover_view(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "GET":
        return render(request, "owner/recover.html", {"state": "ask"})
    try:
        artifact_consume(token=token, purpose=ArtifactPurpose.PASSWORD)
    except ArtifactRefused as refused:
        return render(
            request,
            "owner/recover.html",
            {"state": "refused", "message": refused.message},
            status=410,
        )
    return render(request, "owner/recover.html", {"state": "done"})


@require_http_methods(["GET", "POST"])
def not_me_view(request: HttpRequest, token: str) -> HttpResponse:
    notice = notice_from_token(token)
    if notice is None:
        return render(request, "owner/not_me.html", {"state": "invalid"}, status=404)
    if request.method == "GET":
        return render(request, "owner/not_me.html", {"state": "ask"})
    case_repudiate(notice=notice)
    return render(request, "owner/not_me.html", {"state": "done"})

"""The owner's confirmation page (no session) and the manager's attestation page (own session).

A GET only shows what the link is for and a button; the POST does the work, so a mail scanner
that follows links changes nothing. Unknown, used and expired links get the same page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from tenants.exceptions import DomainError

from .choices import ChallengeKind
from .selectors import challenge_find_by_link, challenge_link_usable
from .services import attestation_confirm, challenge_link_confirm


def _invalid(request: HttpRequest, template: str) -> HttpResponse:
    return render(request, template, {"state": "invalid"}, status=404)


@never_cache
@require_http_methods(["GET", "POST"])
def owner_confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    template = "challenges/owner_confirm.html"
    if request.method == "GET":
        challenge = challenge_find_by_link(token=token, kind=ChallengeKind.CODE)
        if not challenge_link_usable(challenge):
            return _invalid(request, template)
        return render(request, template, {"state": "ask"})
    try:
        challenge_link_confirm(token=token)
    except DomainError:
        return _invalid(request, template)
    return render(request, template, {"state": "done"})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def attestation_confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    template = "challenges/attestation_confirm.html"
    challenge = challenge_find_by_link(token=token, kind=ChallengeKind.ATTESTATION)
    if request.method == "GET":
        if not challenge_link_usable(challenge):
            return _invalid(request, template)
        assert challenge is not None
        if request.user.person_id != challenge.attester_person:
            return render(request, template, {"state": "wrong_person"}, status=403)
        return render(
            request,
            template,
            {"state": "ask", "subject": challenge.case.account.display_name},
        )
    try:
        attestation_confirm(actor=request.user, token=token)
    except DomainError as refused:
        if refused.code == "attestation.wrong_person":
            return render(
                request,
                template,
                {"state": "wrong_person", "message": refused.message},
                status=403,
            )
        return _invalid(request, template)
    return render(request, template, {"state": "done"})

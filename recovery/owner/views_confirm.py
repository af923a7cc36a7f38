"""The owner's in-app confirmation page (S5), reached from the link in the request message.

No session: the link and the passkey are the proof, and `request.user` (a staff session) is
never consulted. A GET only shows the request and a field to type the number the agent reads
out: the page never shows the number or anything to choose from. Every change is a POST, so a
mail scanner that follows links changes nothing. Unknown, used and expired links get the same
page. The passkey step needs JavaScript (`static/owner/confirm.js`): the right number returns
WebAuthn options, the signed assertion comes back to `assert/`. Something that is not two
digits is sent back with a message and does not count.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tenants.exceptions import DomainError

from .confirmation import (
    agent_name,
    confirmation_assert,
    confirmation_find_by_link,
    confirmation_match,
    confirmation_repudiate,
    confirmation_usable,
)

TEMPLATE = "owner/confirm.html"
MAX_BODY = 80 * 1024


def _wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def _body(request: HttpRequest) -> dict[str, Any]:
    """The posted fields: a JSON object from the page's script, or a plain form."""
    if _wants_json(request):
        if len(request.body) > MAX_BODY:
            return {}
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {key: request.POST.get(key, "") for key in ("number", "credential")}


def _invalid(request: HttpRequest, message: str = "") -> HttpResponse:
    if _wants_json(request):
        text = message or _("This confirmation link is not valid or has expired.")
        return JsonResponse(
            {"ok": False, "code": "confirmation.link_invalid", "message": text}, status=404
        )
    return render(request, TEMPLATE, {"state": "invalid"}, status=404)


def _page(request: HttpRequest, token: str, *, status: int = 200, **extra: Any) -> HttpResponse:
    confirmation = confirmation_find_by_link(token)
    if not confirmation_usable(confirmation):
        return _invalid(request)
    assert confirmation is not None
    case = confirmation.case
    return render(
        request,
        TEMPLATE,
        {
            "state": "ask",
            "token": token,
            "organisation": confirmation.tenant.name,
            "agent": agent_name(confirmation.requested_by),
            "case_type": case.get_case_type_display(),
            "username": case.account.username,
            "expires_at": confirmation.expires_at,
            **extra,
        },
        status=status,
    )


@never_cache
@require_http_methods(["GET"])
def confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    """What is asked, by which organisation and agent, and where to type the number."""
    return _page(request, token)


@never_cache
@require_POST
def confirm_options_view(request: HttpRequest, token: str) -> HttpResponse:
    """The typed number: a wrong one counts; the right one gets the WebAuthn options. Not two
    digits: said so, and nothing counts."""
    data = _body(request)
    try:
        matched = confirmation_match(token=token, number=str(data.get("number") or ""))
    except DomainError as refused:
        if refused.code == "confirmation.number_malformed":
            return _malformed(request, token)
        return _invalid(request)
    if _wants_json(request):
        if not matched.matched:
            return JsonResponse(
                {
                    "ok": False,
                    "code": "confirmation.wrong_number"
                    if not matched.failed
                    else "confirmation.failed",
                    "message": _wrong_number_message(matched.attempts_left, matched.failed),
                    "failed": matched.failed,
                },
                status=400,
            )
        return JsonResponse({"ok": True, "options": json.loads(matched.options_json)})
    if not matched.matched:
        if matched.failed:
            return render(request, TEMPLATE, {"state": "failed"}, status=400)
        return _page(
            request,
            token,
            error=_wrong_number_message(matched.attempts_left, matched.failed),
            status=400,
        )
    return _page(request, token, needs_script=True)


def _malformed(request: HttpRequest, token: str) -> HttpResponse:
    """Not two digits: a typing slip, not an answer (nothing was counted)."""
    message = _(
        "The number has two digits: type both, as the agent reads them out. This did not "
        "count as a try."
    )
    if _wants_json(request):
        return JsonResponse(
            {"ok": False, "code": "confirmation.number_malformed", "message": message},
            status=400,
        )
    return _page(request, token, error=message, status=400)


def _wrong_number_message(left: int, failed: bool) -> str:
    if failed:
        return _(
            "That is not the number the agent read. The request is cancelled: if you are on "
            "the phone with the service desk, ask for a new one."
        )
    return _(
        "That is not the number the agent read. Listen again and type the number you hear "
        "(%(left)d more try)."
    ) % {"left": left}


def _assert_refusal_message(refused: DomainError) -> str:
    """The owner's words for a refused assertion (the service's codes, translated here)."""
    if refused.code == "confirmation.assertion_refused":
        return _(
            "Your passkey's answer could not be verified. Press Continue to try again "
            "(%(left)d more try)."
        ) % {"left": getattr(refused, "attempts_left", 0)}
    if refused.code == "confirmation.passkey_cloned":
        return _(
            "This passkey looks copied: it is disabled and your security team is alerted. "
            "The request is cancelled."
        )
    return _(
        "Your passkey's answer could not be verified. The request is cancelled: if you are on "
        "the phone with the service desk, ask for a new one."
    )


@never_cache
@require_POST
def confirm_assert_view(request: HttpRequest, token: str) -> HttpResponse:
    """The signed assertion from the browser; verified by the service, never trusted."""
    data = _body(request)
    credential = data.get("credential")
    if isinstance(credential, dict):
        credential = json.dumps(credential)
    try:
        confirmation_assert(
            token=token, number=str(data.get("number") or ""), credential_json=str(credential or "")
        )
    except DomainError as refused:
        if refused.code == "confirmation.link_invalid":
            return _invalid(request)
        message = _assert_refusal_message(refused)
        if _wants_json(request):
            return JsonResponse({"ok": False, "code": refused.code, "message": message}, status=400)
        return render(request, TEMPLATE, {"state": "failed", "message": message}, status=400)
    if _wants_json(request):
        return JsonResponse(
            {"ok": True, "message": _("Confirmed. You can tell the agent it is done.")}
        )
    return render(request, TEMPLATE, {"state": "done"})


@never_cache
@require_POST
def confirm_not_me_view(request: HttpRequest, token: str) -> HttpResponse:
    """ "No, this wasn't me": the case is repudiated (R-41)."""
    try:
        confirmation_repudiate(token=token)
    except DomainError:
        return _invalid(request)
    return render(request, TEMPLATE, {"state": "repudiated"})

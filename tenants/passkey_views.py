"""Console pages for staff passkeys: sign in with one, add, list and remove them, ask for and
approve a replacement. Thin: parse, call one service (tenants.passkeys), render.

Every challenge is made here and kept in the server-side session, taken once by the answer.
"""

from __future__ import annotations

import base64
import os
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .choices import StaffPasskeyStatus
from .exceptions import DomainError
from .lockout import FailureNotRecorded, is_locked
from .models import StaffPasskey, StaffPasskeyReplacement
from .passkeys import (
    GROUND_FIRST,
    GROUND_REPLACEMENT,
    GROUND_STEP_UP,
    NEEDS_REPLACEMENT,
    RegistrationStart,
    StaffAssertion,
    StaffPasskeyRefused,
    replacement_challenge,
    staff_assertion_options,
    staff_assertion_verify,
    staff_passkey_enrolment_ground,
    staff_passkey_list,
    staff_passkey_register,
    staff_passkey_registration_begin,
    staff_passkey_remove,
    staff_passkey_replacement_approve,
    staff_passkey_replacement_request,
    staff_passkey_replacements_to_approve,
    staff_passkey_sign_in,
)
from .sessions import second_factor_login
from .views import LOCKED_MESSAGE, _end_sign_in, _not_recorded, _safe_next
from .webauthn import registration_answer

SIGN_IN_KEY = "staff_passkey:sign_in"
STEP_UP_KEY = "staff_passkey:step_up"
REGISTER_KEY = "staff_passkey:register"


def _json_refusal(error: DomainError, status: int = 400) -> JsonResponse:
    return JsonResponse({"code": error.code, "message": error.message}, status=status)


def _options_response(options: str) -> HttpResponse:
    response = HttpResponse(options, content_type="application/json")
    add_never_cache_headers(response)
    return response


def _challenge_keep(request: HttpRequest, key: str) -> bytes:
    challenge = os.urandom(32)
    request.session[key] = base64.b64encode(challenge).decode()
    return challenge


def _challenge_take(request: HttpRequest, key: str) -> bytes:
    """The challenge kept under `key`, once; a second answer finds none."""
    value = request.session.pop(key, None)
    return base64.b64decode(value) if value else b""


# --- sign-in (the second factor after the password) ----------------------------------------


@login_required
@require_GET
def passkey_sign_in_options_view(request: HttpRequest) -> HttpResponse:
    """Request options over the user's active passkeys; the challenge stays in the session."""
    if request.user.is_verified():
        return _json_refusal(DomainError(_("You are already signed in."), code="auth.verified"))
    try:
        options = staff_assertion_options(
            user=request.user, challenge=_challenge_keep(request, SIGN_IN_KEY)
        )
    except StaffPasskeyRefused as refused:
        return _json_refusal(refused)
    return _options_response(options)


@login_required
@require_POST
def passkey_sign_in_view(request: HttpRequest) -> HttpResponse:
    """The browser's answer (form field `assertion`): completes the sign-in, or says why not."""
    user = request.user
    if user.is_verified():
        return redirect("home")
    challenge = _challenge_take(request, SIGN_IN_KEY)
    try:
        if not challenge:
            raise StaffPasskeyRefused("challenge_missing")
        passkey = staff_passkey_sign_in(
            user=user, challenge=challenge, credential_json=request.POST.get("assertion", "")
        )
    except FailureNotRecorded as refused:  # counted, but the trail could not record it
        return _end_sign_in(request, _not_recorded(refused))
    except StaffPasskeyRefused as refused:
        if is_locked(user):
            return _end_sign_in(request, _(LOCKED_MESSAGE))
        messages.error(request, f"{refused.message} ({refused.code})")
        target = _safe_next(request, "POST")
        verify = reverse("otp-verify")
        return redirect(f"{verify}?{urlencode({'next': target})}" if target else verify)
    second_factor_login(request, passkey)
    return redirect(_safe_next(request, "POST") or "home")


# --- the user's own passkeys ---------------------------------------------------------------


def _pending_start(request: HttpRequest) -> RegistrationStart | None:
    data = request.session.get(REGISTER_KEY)
    return RegistrationStart.from_session(data) if isinstance(data, dict) else None


@login_required
@require_GET
def passkeys_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    ground, replacement = staff_passkey_enrolment_ground(user=user)
    start = _pending_start(request)
    proven = (
        ground == GROUND_STEP_UP
        and start is not None
        and start.ground == GROUND_STEP_UP
        and bool(start.options_json)
    )
    context: dict[str, Any] = {
        "passkeys": staff_passkey_list(user=user),
        "can_register": ground in (GROUND_FIRST, GROUND_REPLACEMENT) or proven,
        "needs_step_up": ground == GROUND_STEP_UP and not proven,
        "needs_replacement": ground == NEEDS_REPLACEMENT,
        "replacement": replacement,
        "to_approve": staff_passkey_replacements_to_approve(actor=user),
    }
    return render(request, "account/passkeys.html", context)


@login_required
@require_GET
def passkey_step_up_options_view(request: HttpRequest) -> HttpResponse:
    """Request options to prove an active passkey before adding another one."""
    try:
        options = staff_assertion_options(
            user=request.user, challenge=_challenge_keep(request, STEP_UP_KEY)
        )
    except StaffPasskeyRefused as refused:
        return _json_refusal(refused)
    return _options_response(options)


def _step_up_from_form(request: HttpRequest, challenge: bytes) -> StaffAssertion:
    """Verify the form's `step_up_assertion` (from static/staff/passkey.js) over `challenge`."""
    if not challenge:
        raise StaffPasskeyRefused("challenge_missing")
    return staff_assertion_verify(
        user=request.user,
        challenge=challenge,
        credential_json=request.POST.get("step_up_assertion", ""),
    )


@login_required
@require_POST
def passkey_add_view(request: HttpRequest) -> HttpResponse:
    """A fresh answer from an active passkey opens the registration of another one."""
    try:
        step_up = _step_up_from_form(request, _challenge_take(request, STEP_UP_KEY))
        start = staff_passkey_registration_begin(user=request.user, step_up=step_up)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        request.session[REGISTER_KEY] = start.as_session()
        messages.success(request, _("Passkey confirmed. Now add the new one."))
    return redirect("staff-passkeys")


@login_required
@require_POST
def passkey_register_options_view(request: HttpRequest) -> HttpResponse:
    """Creation options for `navigator.credentials.create()`; the challenge stays server-side."""
    start = _pending_start(request)
    if start is None or not start.options_json or start.ground != GROUND_STEP_UP:
        try:
            start = staff_passkey_registration_begin(user=request.user)
        except StaffPasskeyRefused as refused:
            return _json_refusal(refused, status=403)
        request.session[REGISTER_KEY] = start.as_session()
    return _options_response(start.options_json)


@login_required
@require_POST
def passkey_register_view(request: HttpRequest) -> HttpResponse:
    """The browser's answer: `{"credential": <PublicKeyCredential JSON>, "label": "..."}`."""
    data = request.session.pop(REGISTER_KEY, None)
    answer = registration_answer(request.body)
    if answer is None:
        return JsonResponse(
            {"code": "input.invalid", "message": _("A credential is required.")}, status=400
        )
    credential, label = answer
    try:
        if not isinstance(data, dict):
            raise StaffPasskeyRefused("challenge_missing")
        staff_passkey_register(
            user=request.user,
            start=RegistrationStart.from_session(data),
            credential_json=credential,
            name=label,
        )
    except StaffPasskeyRefused as refused:
        return _json_refusal(refused)
    messages.success(request, _("Passkey added."))
    return JsonResponse({"ok": True, "next": reverse("staff-passkeys")})


@login_required
@require_http_methods(["GET", "POST"])
def passkey_remove_view(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST removes the passkey (lost or retired)."""
    passkey = (
        StaffPasskey.objects.filter(user=request.user, pk=pk)
        .exclude(status=StaffPasskeyStatus.REMOVED)
        .first()
    )
    if passkey is None:
        messages.error(request, _("No such passkey."))
        return redirect("staff-passkeys")
    if request.method == "GET":
        return render(request, "account/passkey_remove.html", {"passkey": passkey})
    try:
        staff_passkey_remove(user=request.user, passkey_id=passkey.pk)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, _("Passkey removed."))
    return redirect("staff-passkeys")


# --- replacement -----------------------------------------------------------------------------


@login_required
@require_POST
def passkey_replacement_request_view(request: HttpRequest) -> HttpResponse:
    try:
        staff_passkey_replacement_request(user=request.user, reason=request.POST.get("reason", ""))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(
            request,
            _("Replacement requested. A tenant admin or security officer must approve it."),
        )
    return redirect("staff-passkeys")


def _replacement_or_none(pk: int) -> StaffPasskeyReplacement | None:
    return StaffPasskeyReplacement.objects.filter(pk=pk).first()


@login_required
@require_GET
def passkey_replacement_options_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Request options whose challenge names this replacement request (nothing to keep)."""
    replacement = _replacement_or_none(pk)
    if replacement is None or replacement not in staff_passkey_replacements_to_approve(
        actor=request.user
    ):
        return _json_refusal(StaffPasskeyRefused("replacement_not_authorised"), status=403)
    try:
        options = staff_assertion_options(
            user=request.user, challenge=replacement_challenge(replacement)
        )
    except StaffPasskeyRefused as refused:
        return _json_refusal(refused)
    return _options_response(options)


@login_required
@require_POST
def passkey_replacement_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    replacement = _replacement_or_none(pk)
    try:
        if replacement is None:
            raise DomainError(_("No such replacement request."), code="passkey.not_found")
        step_up = _step_up_from_form(request, replacement_challenge(replacement))
        staff_passkey_replacement_approve(
            actor=request.user, replacement_id=replacement.pk, step_up=step_up
        )
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, _("Replacement approved; the requester was told by e-mail."))
    return redirect("staff-passkeys")

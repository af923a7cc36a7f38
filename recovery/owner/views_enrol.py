"""Portal pages for enrolment: ask for a link, open it, and manage passkeys and saved codes.

Thin: parse, call one service, render. A link's GET only shows a button (mail scanners follow
links); the POST uses it. Everything after that runs in the owner's own portal session
(`owner_view`), never a staff session.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from tenants.exceptions import DomainError
from tenants.models import Tenant
from tenants.rls import system_scope
from tenants.webauthn import registration_answer

from .choices import PasskeyStatus
from .codes import code_display, code_set_current, codes_issue, codes_remaining
from .enrolment import LINK_INVALID, EnrolmentRefused, enrolment_link_open, enrolment_request
from .models import OwnerPasskey, OwnerPortalSession
from .passkeys import (
    PasskeyRegistrationRefused,
    passkey_list,
    passkey_register,
    passkey_registration_begin,
    passkey_remove,
)
from .sessions import ENROLLED_KINDS, owner_view
from .throttle import address_over_limit, over_limit

# Self-service requests: per address and per tenant + username, within the window.
RATE_PER_USERNAME = 3
USERNAME_MAX = 254
DONE_NOTES = ("passkey_added", "passkey_removed")


def _tenant_or_404(slug: str) -> Tenant:
    with system_scope():
        return get_object_or_404(Tenant, slug=slug, is_active=True)


@require_http_methods(["GET", "POST"])
def enrol_request_view(request: HttpRequest, tenant: str) -> HttpResponse:
    """The owner types their username; a link goes to an address on record, if any. The page
    answers alike whether the account exists, may enrol or not."""
    org = _tenant_or_404(tenant)
    context = {"tenant": org, "state": "ask", "username_max": USERNAME_MAX}
    if request.method == "GET":
        return render(request, "owner/enrol_request.html", context)
    username = request.POST.get("username", "").strip()
    if not username or len(username) > USERNAME_MAX:
        context["error"] = True
        return render(request, "owner/enrol_request.html", context, status=400)
    limited = address_over_limit(request, "enrol")
    limited |= over_limit(
        f"owner:enrol:user:{org.pk}:{username.casefold()[:USERNAME_MAX]}", RATE_PER_USERNAME
    )
    if limited:
        context["state"] = "limited"
        return render(request, "owner/enrol_request.html", context, status=429)
    enrolment_request(tenant=org, username=username)
    context["state"] = "sent"
    return render(request, "owner/enrol_request.html", context)


@require_http_methods(["GET", "POST"])
def enrol_link_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks; POST uses the link once and starts the enrolment session."""
    if request.method == "GET":
        response = render(request, "owner/enrol_link.html", {"state": "ask"})
        add_never_cache_headers(response)
        return response
    response = redirect("owner-home")
    try:
        enrolment_link_open(token=token, response=response)
    except EnrolmentRefused as refused:
        status = 410 if refused.code == LINK_INVALID else 403
        context = {"state": "refused", "message": refused.message, "code": refused.code}
        return render(request, "owner/enrol_link.html", context, status=status)
    return response


def enrolled_home(request: HttpRequest, session: OwnerPortalSession) -> HttpResponse:
    """The signed-in home of an enrolment session (called by `views.home_view`)."""
    account = session.account
    code_set = code_set_current(account=account)
    done = request.GET.get("done", "")
    context = {
        "account": account,
        "passkeys": passkey_list(account=account),
        "code_set": code_set,
        "codes_left": codes_remaining(code_set) if code_set is not None else 0,
        "done": done if done in DONE_NOTES else "",
        "expires_at": session.expires_at,
    }
    response = render(request, "owner/home.html", context)
    add_never_cache_headers(response)
    return response


def _json_refusal(error: DomainError, status: int = 400) -> JsonResponse:
    return JsonResponse({"code": error.code, "message": error.message}, status=status)


@require_POST
@owner_view(kinds=ENROLLED_KINDS)
def passkey_options_view(request: HttpRequest) -> HttpResponse:
    """Creation options for `navigator.credentials.create()`; the challenge stays server-side."""
    try:
        options = passkey_registration_begin(session=request.owner_session)
    except EnrolmentRefused as refused:
        return _json_refusal(refused, status=403)
    except PasskeyRegistrationRefused as refused:
        return _json_refusal(refused)
    response = HttpResponse(options, content_type="application/json")
    add_never_cache_headers(response)
    return response


@require_POST
@owner_view(kinds=ENROLLED_KINDS)
def passkey_register_view(request: HttpRequest) -> HttpResponse:
    """The browser's answer: `{"credential": <PublicKeyCredential JSON>, "label": "..."}`."""
    answer = registration_answer(request.body)
    if answer is None:
        return JsonResponse(
            {"code": "input.invalid", "message": "A credential is required."}, status=400
        )
    credential, label = answer
    try:
        passkey_register(session=request.owner_session, credential_json=credential, label=label)
    except EnrolmentRefused as refused:
        return _json_refusal(refused, status=403)
    except PasskeyRegistrationRefused as refused:
        return _json_refusal(refused)
    return JsonResponse({"ok": True, "next": reverse("owner-home") + "?done=passkey_added"})


@require_http_methods(["GET", "POST"])
@owner_view(kinds=ENROLLED_KINDS)
def passkey_remove_view(request: HttpRequest, passkey_id: int) -> HttpResponse:
    """GET asks to confirm; POST removes the passkey."""
    session = request.owner_session
    passkey = get_object_or_404(
        OwnerPasskey.objects.for_tenant(session.tenant),
        pk=passkey_id,
        account=session.account,
        status=PasskeyStatus.ACTIVE,
    )
    if request.method == "GET":
        return render(request, "owner/passkeys_remove.html", {"passkey": passkey})
    try:
        passkey_remove(session=session, passkey_id=passkey.pk)
    except DomainError as refused:
        context = {"passkey": passkey, "error": refused.message}
        return render(request, "owner/passkeys_remove.html", context, status=403)
    return redirect(reverse("owner-home") + "?done=passkey_removed")


@require_http_methods(["GET", "POST"])
@owner_view(kinds=ENROLLED_KINDS)
def codes_view(request: HttpRequest) -> HttpResponse:
    """GET: the current set (how many left). POST: a new set, shown once on this response."""
    session = request.owner_session
    account = session.account
    if request.method == "POST":
        try:
            code_set, codes = codes_issue(session=session)
        except DomainError as refused:
            context = {"error": refused.message, "code_set": code_set_current(account=account)}
            return render(request, "owner/codes.html", context, status=403)
        context = {"codes": [code_display(c) for c in codes], "code_set": code_set}
        response = render(request, "owner/codes_shown.html", context)
        add_never_cache_headers(response)
        response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
        return response
    code_set = code_set_current(account=account)
    context = {
        "code_set": code_set,
        "codes_left": codes_remaining(code_set) if code_set is not None else 0,
    }
    return render(request, "owner/codes.html", context)

"""Staff sign-in (password, then TOTP enrolment or verification) and the tenant console pages."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from recovery.selectors import account_get_visible, account_list

from .access import actor_tenant_access
from .console import tenant_view
from .exceptions import DomainError
from .forms import (
    LanguageForm,
    LoginForm,
    PreferencesForm,
    RevokeForm,
    StepUpForm,
    TokenForm,
)
from .incident import may_control
from .jobs import job_get_visible
from .lockout import FailureNotRecorded, is_locked, register_failure
from .models import Tenant, User
from .otp import sign_in_completed, totp_enrolment_confirm
from .passkeys import staff_passkeys_active
from .policies import can_administer_tenant, can_view_grants, enforce
from .preferences import user_preferences_update
from .selectors import grant_get_visible, grant_list
from .services import grant_approve, grant_revoke
from .sessions import second_factor_login
from .stepup import step_up_verify

LOCKED_MESSAGE = "Too many failed attempts: this account is locked for a while. Try again later."


def _not_recorded(refused: FailureNotRecorded) -> str:
    return f"{refused.message} ({refused.code})"


def _end_sign_in(request: HttpRequest, message: str) -> HttpResponse:
    """Refuse a half-finished sign-in: end the password session and say why on the login page."""
    logout(request)
    messages.error(request, message)
    return redirect("staff-login")


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"]
        user = authenticate(request, username=username, password=form.cleaned_data["password"])
        known = User.objects.filter(username=username).first()
        if user is not None and is_locked(user):
            form.add_error(None, _(LOCKED_MESSAGE))
        elif user is None:
            try:
                locked = (
                    known is not None
                    and known.is_active
                    and register_failure(known, kind="password")
                )
            except FailureNotRecorded as refused:
                form.add_error(None, _not_recorded(refused))
                status = 503
            else:
                incorrect = _("The username or password is incorrect.")
                form.add_error(None, _(LOCKED_MESSAGE) if locked else incorrect)
        else:
            login(request, user)
            verify, target = reverse("otp-verify"), _safe_next(request)
            return redirect(f"{verify}?{urlencode({'next': target})}" if target else verify)
    return render(request, "auth/login.html", {"form": form}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("staff-login")


def _safe_next(request: HttpRequest, source: str = "GET") -> str | None:
    """The `next` parameter if it points into this site, else None (no open redirect)."""
    target = getattr(request, source).get("next")
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else None


def _sign_in_devices(user: User) -> list:
    totp = list(TOTPDevice.objects.devices_for_user(user, confirmed=True))
    return totp + list(StaticDevice.objects.devices_for_user(user, confirmed=True))


@login_required
@require_http_methods(["GET", "POST"])
def otp_verify_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_verified():
        return redirect("home")
    devices = _sign_in_devices(user)
    if not devices:
        return redirect("otp-enrol")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"].strip().replace(" ", "")
        device = next(
            (d for d in devices if d.verify_is_allowed()[0] and d.verify_token(token)), None
        )
        if device is not None and not is_locked(user):
            # Recorded first: a sign-in whose record fails must not leave a verified session.
            sign_in_completed(user=user, device=device)
            second_factor_login(request, device)
            return redirect(_safe_next(request) or "home")
        try:
            if is_locked(user) or register_failure(user, kind="otp"):
                return _end_sign_in(request, _(LOCKED_MESSAGE))
        except FailureNotRecorded as refused:
            return _end_sign_in(request, _not_recorded(refused))
        form.add_error("token", _("That code is not valid. Codes can be used once."))
    context = {
        "form": form,
        "has_passkey": staff_passkeys_active(user).exists(),
        "next": _safe_next(request) or "",
    }
    return render(request, "auth/otp_verify.html", context)


def _qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


@login_required
@require_http_methods(["GET", "POST"])
def otp_enrol_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if TOTPDevice.objects.devices_for_user(user, confirmed=True).exists():
        # Enrolment never replaces a device: that would let a password alone add a factor.
        return redirect("home" if user.is_verified() else "otp-verify")
    if not user.is_verified() and StaticDevice.objects.devices_for_user(user, confirmed=True):
        # An account that still has backup codes proves one before it may add a factor.
        return redirect("otp-verify")
    if is_locked(user):
        # A password session opened before the lock must not complete sign-in by enrolling.
        logout(request)
        messages.error(request, _(LOCKED_MESSAGE))
        return redirect("staff-login")
    device, _created = TOTPDevice.objects.get_or_create(
        user=user, confirmed=False, defaults={"name": "Authenticator app"}
    )
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            codes = totp_enrolment_confirm(user=user, device=device)
            second_factor_login(request, device)
            return render(request, "auth/backup_codes.html", {"codes": codes})
        try:
            if register_failure(user, kind="otp"):
                return _end_sign_in(request, _(LOCKED_MESSAGE))
        except FailureNotRecorded as refused:
            return _end_sign_in(request, _not_recorded(refused))
        form.add_error("token", _("That code does not match. Check the time on your phone."))
    return render(
        request,
        "auth/otp_enrol.html",
        {
            "form": form,
            "qr_svg": _qr_svg(device.config_url),
            "secret": base64.b32encode(device.bin_key).decode(),
        },
    )


@login_required
def home_view(request: HttpRequest) -> HttpResponse:
    access = actor_tenant_access(request.user)
    tenants = Tenant.objects.filter(pk__in=access).order_by("name")
    rows = [(tenant, access[tenant.pk]) for tenant in tenants]
    return render(request, "console/home.html", {"rows": rows})


@tenant_view
def tenant_home_view(request: HttpRequest) -> HttpResponse:
    page = Paginator(account_list(tenant=request.tenant), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "console/tenant_home.html",
        {
            "page": page,
            "can_view_grants": bool(can_view_grants(request.tenant_access)),
            "may_control_incident": bool(may_control(request.user, request.tenant)),
        },
    )


@tenant_view
def account_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    account = account_get_visible(tenant=request.tenant, pk=pk)
    return render(request, "console/account_detail.html", {"account": account})


@tenant_view
def grant_list_view(request: HttpRequest) -> HttpResponse:
    decision = can_view_grants(request.tenant_access)
    if not decision:
        raise PermissionDenied(decision.detail)
    grants = grant_list(tenant=request.tenant)
    return render(
        request,
        "console/grants.html",
        {
            "grants": grants,
            "can_admin": bool(can_administer_tenant(request.tenant_access)),
            "step_up_form": StepUpForm(),
            "revoke_form": RevokeForm(),
        },
    )


@require_POST
@tenant_view
def grant_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    grant = grant_get_visible(tenant=request.tenant, pk=pk)
    form = StepUpForm(request.POST)
    try:
        # Refuse a non-admin before spending (or failing) their authenticator code.
        enforce(can_administer_tenant(request.tenant_access))
        if not form.is_valid():
            raise DomainError(_("Enter a fresh authenticator code."), code="stepup.required")
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        grant_approve(actor=request.user, grant=grant, step_up=proof)
        messages.success(request, _("Grant approved."))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return redirect("grant-list", tenant=request.tenant.slug)


@require_POST
@tenant_view
def grant_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    grant = grant_get_visible(tenant=request.tenant, pk=pk)
    form = RevokeForm(request.POST)
    try:
        grant_revoke(
            actor=request.user,
            grant=grant,
            reason=form.cleaned_data["reason"] if form.is_valid() else "",
        )
        messages.success(request, _("Grant revoked; its staff lost access immediately."))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return redirect("grant-list", tenant=request.tenant.slug)


@tenant_view
def job_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A job's progress; htmx polls the partial until the job finishes, then shows its result."""
    job = job_get_visible(tenant=request.tenant, actor=request.user, pk=pk)
    context = {"job": job, "result_template": f"console/jobs/{job.kind.replace('.', '_')}.html"}
    template = "console/_job.html" if request.htmx else "console/job.html"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def preferences_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = PreferencesForm(
        request.POST or None, initial={"language": user.language, "time_zone": user.time_zone}
    )
    if request.method == "POST" and form.is_valid():
        try:
            user_preferences_update(actor=user, **form.cleaned_data)
        except DomainError as error:
            form.add_error(None, f"{error.message} ({error.code})")
        else:
            response = redirect("preferences")
            _remember_language(response, form.cleaned_data["language"])
            translation.activate(form.cleaned_data["language"] or translation.get_language())
            messages.success(request, _("Your preferences are saved."))
            return response
    return render(request, "console/preferences.html", {"form": form})


@require_POST
def language_switch_view(request: HttpRequest) -> HttpResponse:
    """The header's language menu: saved on the user when signed in, else in a cookie."""
    form = LanguageForm(request.POST)
    target = _safe_next(request, "POST") or reverse("home")
    response = redirect(target)
    if form.is_valid():
        language = form.cleaned_data["language"]
        if request.user.is_authenticated:
            user_preferences_update(
                actor=request.user, language=language, time_zone=request.user.time_zone
            )
        _remember_language(response, language)
    return response


def _remember_language(response: HttpResponse, language: str) -> None:
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")

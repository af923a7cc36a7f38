"""Binding the new credential after a recovery (R-11): the pass page and /owner/recovery/.

The recovery link itself (`/recover/<token>/`) is in `recovery.owner_views`; it and the pass
page open an artifact session (`binding.artifact_session_open`) and send the owner here. A
password session shows the new-password form; an mfa session the passkey registration. Each
endpoint admits only its own purpose (R-12): `owner_view` refuses the other with 403 and
records `owner.session_refused`, and the service checks it again.
"""

from __future__ import annotations

import json

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from tenants.exceptions import DomainError

from ..artifacts.models import ArtifactPurpose
from ..artifacts.services import ArtifactRefused
from ..policy.selectors import policy_active
from .binding import (
    PASS_PURPOSES,
    PHISHING_RESISTANT,
    artifact_session_open,
    cloud_binding_status,
    connector_issues_passes,
    connector_sets_passwords,
    effective_tier,
    owner_authenticator_bind,
    owner_cloud_binding_confirm,
    owner_passkey_options,
    owner_password_set,
    owner_temporary_pass_issue,
)
from .choices import PortalSessionKind
from .passwords import MAX_LENGTH, PasswordRefused
from .sessions import owner_view

ARTIFACT = (PortalSessionKind.ARTIFACT,)
MAX_JSON_BODY = 70 * 1024


class PassForm(forms.Form):
    access_pass = forms.CharField(
        label=_("Temporary access pass"),
        max_length=64,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )


class NewPasswordForm(forms.Form):
    password = forms.CharField(
        label=_("New password"),
        strip=False,
        max_length=MAX_LENGTH * 4,  # the service counts characters after normalisation
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label=_("New password, again"),
        strip=False,
        max_length=MAX_LENGTH * 4,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password") != data.get("password_again"):
            self.add_error("password_again", _("The two passwords are not the same."))
        return data


@sensitive_post_parameters("access_pass")
@require_http_methods(["GET", "POST"])
def pass_view(request: HttpRequest) -> HttpResponse:
    """The owner types the temporary access pass sent by text message: an mfa session."""
    form = PassForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "owner/recovery_pass.html", {"form": form}, status=status)
    response = redirect("owner-recovery")
    try:
        artifact_session_open(
            token=form.cleaned_data["access_pass"].replace(" ", ""),
            purpose=ArtifactPurpose.MFA,
            response=response,
        )
    except ArtifactRefused as refused:
        return render(
            request,
            "owner/recovery_pass.html",
            {"form": PassForm(), "refused": refused.message},
            status=410,
        )
    return response


@sensitive_variables("extra", "context")  # the one-time pass, when it is being shown
def _page(request: HttpRequest, *, status: int = 200, **extra: object) -> HttpResponse:
    session = request.owner_session  # type: ignore[attr-defined]
    context: dict[str, object] = {
        "session": session,
        "case": session.case,
        "purpose": session.purpose,
        "bound": session.bound_at is not None,
        **extra,
    }
    if connector_issues_passes(session):
        # The tenant's cloud connector completes it: the owner binds at the provider itself.
        context.update(cloud_binding_status(session))
        context["phishing_resistant_only"] = effective_tier(session.case) == "T2"
        response = render(request, "owner/recovery_cloud.html", context, status=status)
        add_never_cache_headers(response)
        response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
        return response
    if session.purpose == ArtifactPurpose.PASSWORD:
        context.setdefault("form", NewPasswordForm())
        context["sets_password"] = connector_sets_passwords(session)
        context["min_length"] = policy_active(session.tenant).owner_portal.password_min_length
    elif session.purpose == ArtifactPurpose.MFA:
        tier = effective_tier(session.case)
        context["tier"] = tier
        context["phishing_resistant_only"] = tier == "T2"
        context["methods"] = sorted(PHISHING_RESISTANT)
    return render(request, "owner/recovery.html", context, status=status)


@require_http_methods(["GET"])
@owner_view(kinds=ARTIFACT)
def recovery_view(request: HttpRequest) -> HttpResponse:
    return _page(request)


@sensitive_post_parameters("password", "password_again")
@require_POST
@owner_view(kinds=ARTIFACT, purposes=(ArtifactPurpose.PASSWORD,))
def recovery_password_view(request: HttpRequest) -> HttpResponse:
    form = NewPasswordForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)  # PasswordInput never renders a value
    try:
        owner_password_set(
            session=request.owner_session,  # type: ignore[attr-defined]
            password=form.cleaned_data["password"],
        )
    except PasswordRefused as refused:
        return _page(request, problems=[p.message for p in refused.problems], status=400)
    except DomainError as refused:
        return _page(request, refusal=refused.message, refusal_code=refused.code, status=409)
    return redirect("owner-recovery")


def _json_refusal(error: DomainError, status: int) -> JsonResponse:
    return JsonResponse({"code": error.code, "message": error.message}, status=status)


@require_POST
@owner_view(kinds=ARTIFACT, purposes=(ArtifactPurpose.MFA,))
def recovery_passkey_options_view(request: HttpRequest) -> HttpResponse:
    try:
        options = owner_passkey_options(session=request.owner_session)  # type: ignore[attr-defined]
    except DomainError as refused:
        return _json_refusal(refused, 409)
    return HttpResponse(options, content_type="application/json")


@require_POST
@owner_view(kinds=ARTIFACT, purposes=(ArtifactPurpose.MFA,))
def recovery_authenticator_view(request: HttpRequest) -> HttpResponse:
    """Body: {"method": "passkey", "credential": <PublicKeyCredential as JSON>}."""
    if len(request.body) > MAX_JSON_BODY:
        return JsonResponse({"code": "input.too_large", "message": "Too large."}, status=413)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("method", "passkey"), str):
        return JsonResponse({"code": "input.invalid", "message": "Not a JSON object."}, status=400)
    try:
        owner_authenticator_bind(
            session=request.owner_session,  # type: ignore[attr-defined]
            method=body.get("method", "passkey"),
            credential_json=json.dumps(body.get("credential")),
        )
    except DomainError as refused:
        status = 403 if refused.code.startswith("binding.") else 400
        return _json_refusal(refused, status)
    return JsonResponse({"ok": True, "next": reverse("owner-recovery")})


@sensitive_variables("issued")
@require_POST
@owner_view(kinds=ARTIFACT, purposes=PASS_PURPOSES)
def recovery_temporary_pass_view(request: HttpRequest) -> HttpResponse:
    """The one-time pass, in this response only (never stored, never cached: no-store)."""
    try:
        issued = owner_temporary_pass_issue(session=request.owner_session)  # type: ignore[attr-defined]
    except DomainError as refused:
        return _page(request, refusal=refused.message, status=409)
    return _page(request, shown_pass=issued.secret, shown_pass_expires=issued.expires_at)


@require_POST
@owner_view(kinds=ARTIFACT, purposes=PASS_PURPOSES)
def recovery_cloud_confirm_view(request: HttpRequest) -> HttpResponse:
    """The owner set up the new method at the provider; the connector's listing decides."""
    try:
        owner_cloud_binding_confirm(session=request.owner_session)  # type: ignore[attr-defined]
    except DomainError as refused:
        return _page(request, refusal=refused.message, status=409)
    return redirect("owner-recovery")

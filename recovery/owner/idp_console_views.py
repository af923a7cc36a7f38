"""Client admin console: the tenant's identity provider for account owners (OpenID Connect).

One page lists the configurations (active, waiting for a second admin, retired) and offers a
tenant_admin the draft form; a second tenant_admin approves a waiting one with a fresh
authenticator code (R-27); any tenant_admin may retire one. Every write calls the same service
as the API (`recovery/api/owner_idp.py`). Reading is for the tenant's admins, security officers
and auditors.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from tenants.console import tenant_view
from tenants.exceptions import CrossTenantNotFound, DomainError
from tenants.forms import StepUpForm
from tenants.policies import Decision, can_administer_tenant
from tenants.stepup import step_up_verify

from .idp_config import (
    can_read_idp_config,
    idp_config_approve,
    idp_config_draft,
    idp_config_list,
    idp_config_retire,
)
from .models import OwnerIdpConfig
from .oidc import redirect_uri

TEMPLATE = "console/owner_idp.html"


class IdpConfigForm(forms.Form):
    """What a tenant_admin drafts; the service validates it again (the API's bounds)."""

    issuer = forms.CharField(
        label=gettext_lazy("Issuer"),
        max_length=500,
        help_text=gettext_lazy(
            "The provider's issuer URL, exactly as its discovery document has it."
        ),
        widget=forms.URLInput(attrs={"spellcheck": "false", "autocapitalize": "off"}),
    )
    client_id = forms.CharField(label=gettext_lazy("Client id"), max_length=255)
    client_secret_env = forms.CharField(
        label=gettext_lazy("Environment variable holding the client secret"),
        max_length=128,
        help_text=gettext_lazy("Only its name is stored; set the variable on every server."),
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "characters"}),
    )
    allowed_amr = forms.CharField(
        label=gettext_lazy("amr values that show a bound authenticator"),
        max_length=500,
        initial="hwk swk mfa",
        help_text=gettext_lazy(
            "Separated by spaces or commas. A sign-in counts as S5 only with one of these "
            "(or an acr below); pwd and kba never can."
        ),
    )
    allowed_acr = forms.CharField(
        label=gettext_lazy("acr values that show a bound authenticator (optional)"),
        max_length=2000,
        required=False,
    )


class RetireForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500, required=False)


def _require(decision: Decision) -> None:
    if not decision:
        raise PermissionDenied(decision.detail)


def _config(request: HttpRequest, pk: int) -> OwnerIdpConfig:
    config = idp_config_list(request.tenant).filter(pk=pk).first()
    if config is None:
        raise CrossTenantNotFound(OwnerIdpConfig._meta.label, pk)
    return config


def _page(request: HttpRequest, form: IdpConfigForm | None = None, status: int = 200):
    configs = list(idp_config_list(request.tenant))
    context = {
        "active": next((c for c in configs if c.status == "active"), None),
        "configs": configs,
        "can_admin": bool(can_administer_tenant(request.tenant_access)),
        "form": form or IdpConfigForm(),
        "step_up_form": StepUpForm(),
        "retire_form": RetireForm(),
        "redirect_uri": redirect_uri(),
    }
    return render(request, TEMPLATE, context, status=status)


@require_GET
@tenant_view
def idp_config_home_view(request: HttpRequest) -> HttpResponse:
    _require(can_read_idp_config(request.tenant_access))
    return _page(request)


@require_POST
@tenant_view
def idp_config_draft_view(request: HttpRequest) -> HttpResponse:
    _require(can_administer_tenant(request.tenant_access))
    form = IdpConfigForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        idp_config_draft(actor=request.user, tenant=request.tenant, **form.cleaned_data)
    except DomainError as error:
        for name, problems in error.field_errors.items():
            for problem in problems:
                form.add_error(name if name in form.fields else None, problem)
        if not error.field_errors:
            form.add_error(None, f"{error.message} ({error.code})")
        return _page(request, form, status=400)
    messages.success(request, _("Saved. Another tenant admin must now approve it."))
    return redirect("owner-idp-home", tenant=request.tenant.slug)


@require_POST
@tenant_view
def idp_config_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    config = _config(request, pk)
    _require(can_administer_tenant(request.tenant_access))
    form = StepUpForm(request.POST)
    try:
        if not form.is_valid():
            raise DomainError(_("Enter a fresh authenticator code."), code="stepup.required")
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        idp_config_approve(actor=request.user, config=config, step_up=proof)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, _("The identity provider is now active for account owners."))
    return redirect("owner-idp-home", tenant=request.tenant.slug)


@require_POST
@tenant_view
def idp_config_retire_view(request: HttpRequest, pk: int) -> HttpResponse:
    config = _config(request, pk)
    _require(can_administer_tenant(request.tenant_access))
    form = RetireForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        idp_config_retire(actor=request.user, config=config, reason=reason)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, _("Retired. Owners can no longer sign in with it."))
    return redirect("owner-idp-home", tenant=request.tenant.slug)

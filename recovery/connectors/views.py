"""Client admin console: the tenant's connector — the configuration in force (a summary), the
change waiting for a second admin with its diff, proposing one, deciding it, and testing the
connection.

Reads go through the connector selectors; every write calls the same service as the API
(`recovery/api/connectors.py`). Reading is for the tenant's own admins, security officers and
auditors (`can_read_connector`); proposing, deciding and testing for its tenant_admins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.console import tenant_view
from tenants.exceptions import DomainError
from tenants.forms import StepUpForm
from tenants.models import Tenant
from tenants.policies import Decision, can_administer_tenant
from tenants.stepup import step_up_verify

from .change_selectors import (
    connector_change_get_visible,
    connector_change_list,
    connector_change_pending,
)
from .choices import ConnectorKind
from .forms import ConnectorChangeForm
from .models import ConnectorChange, ConnectorConfig
from .policies import can_read_connector
from .selectors import connector_config_get
from .services import (
    connector_change_approve,
    connector_change_reject,
    connector_change_request,
    connector_change_withdraw,
    connector_test,
)
from .summary import settings_summary, shown_text, summary_diff

RECENT_CHANGES = 10


class ReasonForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500, required=False)


class TestForm(forms.Form):
    change = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


@dataclass(frozen=True)
class Line:
    """One row of a summary or a diff, as the page shows it."""

    name: str
    current: str
    proposed: str = ""
    changed: bool = False


def _require(decision: Decision) -> None:
    if not decision:
        raise PermissionDenied(decision.detail)


def _summary_lines(config: ConnectorConfig | None) -> list[Line]:
    if config is None:
        return []
    summary = settings_summary(config.kind, config.settings)
    return [Line(name, shown_text(value)) for name, value in summary.items()]


def _diff_lines(config: ConnectorConfig | None, change: ConnectorChange) -> list[Line]:
    current = (config.kind, config.settings, config.is_active) if config else None
    rows = summary_diff(current, (change.kind, change.settings, change.is_active))
    return [
        Line(row.name, shown_text(row.current), shown_text(row.proposed), row.changed)
        for row in rows
    ]


def _back(tenant: Tenant) -> HttpResponse:
    return redirect("connector-home", tenant=tenant.slug)


def _refused(request: HttpRequest, error: DomainError) -> None:
    messages.error(request, f"{error.message} ({error.code})")


# --- reading ----------------------------------------------------------------------------------


@require_GET
@tenant_view
def connector_home_view(request: HttpRequest) -> HttpResponse:
    """The configuration in force, the pending change beside it, and the recent changes."""
    _require(can_read_connector(request.tenant_access))
    tenant = request.tenant
    config = connector_config_get(tenant=tenant)
    pending = connector_change_pending(tenant=tenant)
    context: dict[str, Any] = {
        "config": config,
        "summary": _summary_lines(config),
        "pending": pending,
        "diff": _diff_lines(config, pending) if pending else [],
        "recent": connector_change_list(tenant=tenant)[:RECENT_CHANGES],
        "can_admin": bool(can_administer_tenant(request.tenant_access)),
        "step_up_form": StepUpForm(),
        "reason_form": ReasonForm(),
    }
    return render(request, "console/connector/index.html", context)


# --- proposing --------------------------------------------------------------------------------


def _kind_asked(request: HttpRequest, config: ConnectorConfig | None) -> str:
    default = config.kind if config else ConnectorKind.MANUAL.value
    if request.method == "POST":
        return request.POST.get("kind", default)
    kind = request.GET.get("kind", default)
    return kind if kind in ConnectorKind.values else default


@require_http_methods(["GET", "POST"])
@tenant_view
def connector_propose_view(request: HttpRequest) -> HttpResponse:
    """The form for one kind (`?kind=`), started from the configuration in force when it is of
    that kind; posted, it becomes the change waiting for a second admin."""
    _require(can_administer_tenant(request.tenant_access))
    tenant = request.tenant
    config = connector_config_get(tenant=tenant)
    kind = _kind_asked(request, config)
    current = (config.settings, config.is_active) if config and config.kind == kind else None
    if request.method == "GET":
        form = ConnectorChangeForm(kind=kind, current=current)
        return _propose_page(request, form)
    form = ConnectorChangeForm(request.POST, kind=kind)
    if not form.is_valid():
        return _propose_page(request, form, status=400)
    try:
        connector_change_request(
            actor=request.user,
            tenant=tenant,
            kind=form.cleaned_data["kind"],
            settings=form.settings(),
            is_active=form.cleaned_data["is_active"],
        )
    except DomainError as error:
        form.add_service_errors(error.field_errors)
        if not error.field_errors:
            form.add_error(None, f"{error.message} ({error.code})")
        return _propose_page(request, form, status=400)
    messages.success(request, _("Change proposed. Another tenant admin must now approve it."))
    return _back(tenant)


def _propose_page(request: HttpRequest, form: ConnectorChangeForm, status: int = 200):
    usual, advanced = form.groups()
    context = {
        "form": form,
        "kind": form.kind_name,
        "kinds": ConnectorKind.choices,
        "usual": usual,
        "advanced": advanced,
        "advanced_open": any(field.errors for field in advanced),
        "pending": connector_change_pending(tenant=request.tenant),
    }
    return render(request, "console/connector/propose.html", context, status=status)


# --- deciding: a second admin approves with a fresh code; reject; withdraw ----------------------


@require_POST
@tenant_view
def connector_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply a pending change: a second tenant_admin, with a fresh authenticator code."""
    change = connector_change_get_visible(tenant=request.tenant, pk=pk)
    _require(can_administer_tenant(request.tenant_access))
    form = StepUpForm(request.POST)
    try:
        if not form.is_valid():
            raise DomainError(_("Enter a fresh authenticator code."), code="stepup.required")
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        connector_change_approve(actor=request.user, change=change, step_up=proof)
    except DomainError as error:
        _refused(request, error)
    else:
        messages.success(request, _("The change is approved and the connector now uses it."))
    return _back(request.tenant)


def _closed_with_reason(
    request: HttpRequest, pk: int, service: Callable[..., Any], done: str
) -> HttpResponse:
    """Reject or withdraw change `pk` with the reason the form gives; `done` on success."""
    change = connector_change_get_visible(tenant=request.tenant, pk=pk)
    _require(can_administer_tenant(request.tenant_access))
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        service(actor=request.user, change=change, reason=reason)
    except DomainError as error:
        _refused(request, error)
    else:
        messages.success(request, done)
    return _back(request.tenant)


@require_POST
@tenant_view
def connector_reject_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _closed_with_reason(
        request, pk, connector_change_reject, _("The change is rejected; nothing was applied.")
    )


@require_POST
@tenant_view
def connector_withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _closed_with_reason(
        request, pk, connector_change_withdraw, _("Your change is withdrawn.")
    )


# --- test connection --------------------------------------------------------------------------


@require_POST
@tenant_view
def connector_test_view(request: HttpRequest) -> HttpResponse:
    """Test the configuration in force, or the pending change named by `change`."""
    form = TestForm(request.POST)
    change_id = form.cleaned_data["change"] if form.is_valid() else None
    change = None
    if change_id:
        change = connector_change_get_visible(tenant=request.tenant, pk=change_id)
    _require(can_administer_tenant(request.tenant_access))
    try:
        health = connector_test(actor=request.user, tenant=request.tenant, change=change)
    except DomainError as error:
        _refused(request, error)
    else:
        if health.ok:
            messages.success(request, _("Connection works: %(detail)s") % {"detail": health.detail})
        else:
            messages.error(request, _("Connection failed: %(detail)s") % {"detail": health.detail})
    return _back(request.tenant)

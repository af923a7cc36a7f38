"""Console: the tenant's audit retention, legal holds and purges (`audit.retention`, R-48).

Readers of the trail see the page; only the tenant's audit_admins get its forms, and the
services decide again. Approving a purge proves a passkey (static/staff/passkey.js, marked
`data-passkey-step-up`) over a challenge that names the purge (`purge_challenge`): one purge is
approved once, so there is nothing to keep in the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from tenants.console import tenant_view, tenant_view_own_scope
from tenants.exceptions import DomainError, InvalidInput
from tenants.passkeys import staff_assertion_options
from tenants.policies import can_read_audit
from tenants.rls import tenant_scope
from tenants.stepup import step_up_passkey_verify

from .models import AuditPurge, PurgeStatus
from .retention import (
    RETENTION_CEILING_DAYS,
    RETENTION_FLOOR_DAYS,
    active_holds,
    legal_hold_place,
    legal_hold_release,
    may_administer_audit,
    purge_approve,
    purge_cancel,
    purge_challenge,
    purge_execute,
    purge_plan,
    purge_request,
    retention_days,
    retention_set,
)

STEP_UP_ACTION = "audit.purge_approve"


class RetentionForm(forms.Form):
    days = forms.IntegerField(
        label=gettext_lazy("Keep events online for (days)"),
        min_value=RETENTION_FLOOR_DAYS,
        max_value=RETENTION_CEILING_DAYS,
    )


class HoldForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Matter or reference"), max_length=300)
    case_id = forms.IntegerField(
        label=gettext_lazy("Case number (empty: the whole trail)"), min_value=1, required=False
    )


class PurgeRequestForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Why purge"), max_length=300)


@require_GET
@tenant_view
def audit_retention_view(request: HttpRequest) -> HttpResponse:
    """Retention, holds, what a purge could remove now, and the purges asked for."""
    if not can_read_audit(request.tenant_access):
        raise PermissionDenied(can_read_audit(request.tenant_access).detail)
    tenant = request.tenant
    purges = AuditPurge.objects.filter(tenant=tenant).select_related("requested_by", "decided_by")
    context = {
        "days": retention_days(tenant),
        "floor": RETENTION_FLOOR_DAYS,
        "holds": active_holds(tenant).select_related("placed_by"),
        "plan": purge_plan(tenant),
        "purges": purges.order_by("-requested_at")[:20],
        "may_administer": bool(may_administer_audit(request.user, tenant)),
        "retention_form": RetentionForm(initial={"days": retention_days(tenant)}),
        "hold_form": HoldForm(),
        "purge_form": PurgeRequestForm(),
        "status": PurgeStatus,
    }
    return render(request, "console/audit/retention.html", context)


def _acted(
    request: HttpRequest, form: forms.Form | None, act: Callable[[dict[str, Any]], str]
) -> HttpResponse:
    """Run `act` on the form's cleaned data; its message, or the refusal with its code."""
    try:
        if form is not None and not form.is_valid():
            problems = "; ".join(
                f"{form.fields[name].label}: {' '.join(errors)}"
                for name, errors in form.errors.items()
            )
            raise InvalidInput(problems, code="audit.retention_form_invalid")
        done = act(form.cleaned_data if form is not None else {})
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(request, done)
    return redirect("audit-retention", tenant=request.tenant.slug)


@require_POST
@tenant_view_own_scope
def audit_retention_set_view(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        retention_set(actor=request.user, tenant=request.tenant, days=data["days"])
        return _("Events now stay online for %(days)s days.") % {"days": data["days"]}

    return _acted(request, RetentionForm(request.POST), act)


@require_POST
@tenant_view_own_scope
def audit_hold_place_view(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        legal_hold_place(
            actor=request.user,
            tenant=request.tenant,
            reason=data["reason"],
            case_id=data["case_id"],
        )
        return _("Legal hold placed: nothing it covers can be purged until it is released.")

    return _acted(request, HoldForm(request.POST), act)


@require_POST
@tenant_view_own_scope
def audit_hold_release_view(request: HttpRequest, pk: int) -> HttpResponse:
    def act(_data: dict[str, Any]) -> str:
        legal_hold_release(actor=request.user, tenant=request.tenant, hold_id=pk)
        return _("Legal hold released.")

    return _acted(request, None, act)


@require_POST
@tenant_view_own_scope
def audit_purge_request_view(request: HttpRequest) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        purge = purge_request(actor=request.user, tenant=request.tenant, reason=data["reason"])
        return _(
            "Purge of entries up to #%(seq)s requested. Another audit admin must approve it."
        ) % {"seq": purge.through_seq}

    return _acted(request, PurgeRequestForm(request.POST), act)


@require_POST
@tenant_view_own_scope
def audit_purge_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    def act(_data: dict[str, Any]) -> str:
        purge_cancel(actor=request.user, tenant=request.tenant, purge_id=pk)
        return _("Purge request cancelled.")

    return _acted(request, None, act)


def _requested(request: HttpRequest, pk: int) -> AuditPurge:
    purge = AuditPurge.objects.filter(tenant=request.tenant, pk=pk).first()
    if purge is None or purge.status != PurgeStatus.REQUESTED:
        raise InvalidInput(
            _("This purge is not waiting for approval any more; reload the page."),
            code="audit.purge_not_open",
        )
    return purge


@require_GET
@tenant_view
def audit_purge_step_up_options_view(request: HttpRequest, pk: int) -> HttpResponse:
    """WebAuthn request options over the purge's own challenge (JSON refusal with its code)."""
    try:
        decision = may_administer_audit(request.user, request.tenant)
        if not decision:
            return JsonResponse({"code": decision.code, "message": decision.detail}, status=403)
        options = staff_assertion_options(
            user=request.user, challenge=purge_challenge(_requested(request, pk))
        )
    except DomainError as error:
        return JsonResponse({"code": error.code, "message": error.message}, status=400)
    response = HttpResponse(options, content_type="application/json")
    add_never_cache_headers(response)
    return response


@require_POST
@tenant_view_own_scope
def audit_purge_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    def act(_data: dict[str, Any]) -> str:
        with tenant_scope([request.tenant.pk]):
            purge = _requested(request, pk)
        step_up = None
        assertion = request.POST.get("step_up_assertion", "")
        if assertion and may_administer_audit(request.user, request.tenant):
            step_up = step_up_passkey_verify(
                user=request.user,
                challenge=purge_challenge(purge),
                credential_json=assertion,
                inputs={"action": STEP_UP_ACTION, "purge": purge.pk},
            )
        done = purge_approve(
            actor=request.user, tenant=request.tenant, purge_id=pk, step_up=step_up
        )
        return _("Purge approved and signed: %(removed)s events removed, up to entry #%(seq)s.") % {
            "removed": done.removed,
            "seq": done.through_seq,
        }

    return _acted(request, None, act)


@require_POST
@tenant_view_own_scope
def audit_purge_execute_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Finish an approved purge a failure stopped (a store down, a database error)."""

    def act(_data: dict[str, Any]) -> str:
        done = purge_execute(actor=request.user, tenant=request.tenant, purge_id=pk)
        return _("Purge finished: %(removed)s events removed, up to entry #%(seq)s.") % {
            "removed": done.removed,
            "seq": done.through_seq,
        }

    return _acted(request, None, act)

"""A tenant's incident switches (R-68, issue 16 part 5): AI assistance off, recoveries frozen.

A security officer or tenant admin of the tenant (its own staff, never through a grant, never
an AI assistant) flips them with a fresh step-up. Turning AI off refuses every AI assistant's
API key of the tenant at once (`ai_refusal`, read on each request, never cached); every
workflow already completes without AI (R-63, R-66). Freezing routes every new case to the
security queue and refuses every execution in the tenant (`freeze_refusal`) until a second
person lifts it. Each change is recorded in the tenant's chain and e-mailed to its tenant
admins.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record

from .access import access_in
from .choices import PrincipalKind, Role
from .exceptions import InvalidInput, PolicyDenied
from .models import IncidentControl, Tenant, User
from .policies import Decision, enforce
from .principals import ai_blocked
from .reasons import reason_given
from .rls import tenant_scope
from .selectors import tenant_people
from .stepup import StepUpProof, require_fresh_step_up

CONTROLLERS = frozenset({Role.SECURITY_OFFICER, Role.TENANT_ADMIN})
REASON_MIN = 10


def incident_state(tenant: Tenant) -> IncidentControl:
    """The tenant's switches as they stand (an unsaved all-off row when never used)."""
    return IncidentControl.objects.filter(tenant=tenant).first() or IncidentControl(tenant=tenant)


def ai_refusal(tenant_id: int) -> PolicyDenied | None:
    """The refusal of an AI assistant's request in a tenant whose AI is switched off."""
    if IncidentControl.objects.filter(tenant_id=tenant_id, ai_off=True).exists():
        return PolicyDenied(
            "AI assistance is switched off in this tenant (incident kill switch); a person "
            "must do this.",
            code="ai.switched_off",
        )
    return None


def freeze_refusal(tenant: Tenant) -> PolicyDenied | None:
    """The refusal of an execution while the tenant's recoveries are frozen."""
    control = IncidentControl.objects.filter(tenant=tenant, frozen=True).first()
    if control is None:
        return None
    return PolicyDenied(
        f"Recoveries in this tenant are frozen for an incident ({control.frozen_reason}); "
        "nothing is executed until a second security officer or tenant admin lifts the freeze.",
        code="incident.recoveries_frozen",
    )


def may_control(actor: User, tenant: Tenant) -> Decision:
    access = access_in(actor, tenant)
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if actor.kind != PrincipalKind.HUMAN or access.via_grant or not access.roles & CONTROLLERS:
        return Decision(
            False,
            "incident.controller_required",
            "Only this tenant's own security officers and tenant admins may use the incident "
            "switches.",
        )
    return Decision(True, "ok")


def _changed(
    *,
    actor: User,
    tenant: Tenant,
    step_up: StepUpProof | None,
    reason: str,
    change: Callable[[IncidentControl], str | None],
) -> IncidentControl:
    """Lock the tenant's switches, apply `change` (it returns the action to record, or None
    when nothing changes) and record it with the step-up, then e-mail the tenant admins."""
    enforce(ai_blocked(actor, "use the incident switches"))
    enforce(may_control(actor, tenant))
    reason = reason_given(
        reason,
        minimum=REASON_MIN,
        code="incident.reason_required",
        ask=f"Say why, in at least {REASON_MIN} characters.",
    )
    with tenant_scope([tenant.pk]):
        IncidentControl.objects.get_or_create(tenant=tenant)
        control = IncidentControl.objects.select_for_update().get(tenant=tenant)
        action = change(control)
        if action is None:
            raise InvalidInput(
                "The switch is already in that position; reload the page.",
                code="incident.unchanged",
            )
        proof = require_fresh_step_up(step_up, actor)
        control.save()
        record(
            action=action,
            actor=Actor.for_user(actor, organisation=tenant.name),
            tenant=tenant,
            data={"reason": reason[:300], "step_up": proof.audit_data()},
        )
        _tell_admins(tenant, action, actor, reason)
    return control


def _tell_admins(tenant: Tenant, action: str, actor: User, reason: str) -> None:
    addresses = sorted(
        tenant_people(tenant.pk, [Role.TENANT_ADMIN])
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not addresses:
        return
    subject = f"Vouchsafe: {action} in {tenant.name}"
    body = f"{actor.get_username()} did this in {tenant.name}: {action}.\nReason: {reason}\n"
    transaction.on_commit(
        lambda: EmailMessage(subject=subject, body=body, bcc=addresses).send(),
        robust=True,
    )


def ai_switch(
    *, actor: User, tenant: Tenant, off: bool, reason: str, step_up: StepUpProof | None
) -> IncidentControl:
    """Turn AI assistance off (or on again) for the whole tenant."""

    def change(control: IncidentControl) -> str | None:
        if control.ai_off == off:
            return None
        control.ai_off, control.ai_changed_by, control.ai_changed_at = off, actor, timezone.now()
        return "incident.ai_switched_off" if off else "incident.ai_switched_on"

    return _changed(actor=actor, tenant=tenant, step_up=step_up, reason=reason, change=change)


def recoveries_freeze(
    *, actor: User, tenant: Tenant, reason: str, step_up: StepUpProof | None
) -> IncidentControl:
    """Freeze recoveries: new cases go to the security queue, nothing is executed."""

    def change(control: IncidentControl) -> str | None:
        if control.frozen:
            return None
        control.frozen, control.frozen_by, control.frozen_at = True, actor, timezone.now()
        control.frozen_reason = reason.strip()[:300]
        return "incident.recoveries_frozen"

    return _changed(actor=actor, tenant=tenant, step_up=step_up, reason=reason, change=change)


def recoveries_unfreeze(
    *, actor: User, tenant: Tenant, reason: str, step_up: StepUpProof | None
) -> IncidentControl:
    """Lift the freeze: a second person, never the one who froze (nor their other account)."""

    def change(control: IncidentControl) -> str | None:
        if not control.frozen:
            return None
        froze = control.frozen_by
        if froze is not None and (froze.pk == actor.pk or froze.person_id == actor.person_id):
            raise PolicyDenied(
                "A second security officer or tenant admin must lift the freeze you placed.",
                code="incident.second_person_required",
            )
        control.frozen, control.frozen_by, control.frozen_at = False, None, None
        control.frozen_reason = ""
        return "incident.recoveries_unfrozen"

    return _changed(actor=actor, tenant=tenant, step_up=step_up, reason=reason, change=change)


SWITCHES = {
    "ai_off": lambda **kw: ai_switch(off=True, **kw),
    "ai_on": lambda **kw: ai_switch(off=False, **kw),
    "freeze": recoveries_freeze,
    "unfreeze": recoveries_unfreeze,
}


def incident_switch(
    *, actor: User, tenant: Tenant, switch: str, reason: str, step_up: StepUpProof | None
) -> IncidentControl:
    """Flip one switch by name (`SWITCHES`): the console's and the API's one way in."""
    act = SWITCHES.get(switch)
    if act is None:
        raise InvalidInput(
            f"Name a switch: one of {', '.join(SWITCHES)}.",
            code="incident.switch_unknown",
            field_errors={"switch": [f"One of {', '.join(SWITCHES)}."]},
        )
    return act(actor=actor, tenant=tenant, reason=reason, step_up=step_up)

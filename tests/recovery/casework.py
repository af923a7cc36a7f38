"""Cases built through the real services, at the stage a test needs (shared by test modules)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from recovery.cases.models import RecoveryCase
from recovery.cases.services import approval_decide, case_open, case_submit, evidence_record
from recovery.models import ContactMethod, ProtectedAccount
from tenants.choices import Role
from tenants.models import Tenant, User

from ..factories import make_account_with, staff, step_up


def contact(
    account: ProtectedAccount,
    kind: str = "mobile",
    value: str = "+15550000001",
    *,
    age_days: int = 400,
    sim_days: int | None = None,
) -> ContactMethod:
    """A contact method the system of record has held for `age_days` (past any quarantine)."""
    now = timezone.now()
    return ContactMethod.objects.create(
        tenant=account.tenant,
        account=account,
        kind=kind,
        value=value,
        source="hris",
        registered_at=now - timedelta(days=age_days),
        sim_changed_at=now - timedelta(days=sim_days) if sim_days is not None else None,
    )


def signal(case: RecoveryCase, actor: User, signal_class: str) -> None:
    """One verified signal of `signal_class`, through a long-held contact where it needs one."""
    channel = None
    if signal_class == "S2":
        channel = contact(case.account)
    elif signal_class == "S3":
        channel = contact(case.account, "email", "manager@example.test")
    evidence_record(
        actor=actor,
        case=case,
        signal_class=signal_class,
        method={"S2": "sms_code", "S3": "manager_attestation"}.get(signal_class, "push"),
        verified=True,
        contact_method=channel,
    )


def submitted(
    tenant: Tenant,
    agent: User,
    classes: tuple[str, ...],
    *,
    case_type: str = "unlock",
    **attributes,
) -> RecoveryCase:
    """A case on a new account with these attributes, its signals recorded, then submitted."""
    account = make_account_with(tenant, **attributes)
    case = case_open(actor=agent, account=account, case_type=case_type, channel="phone")
    for signal_class in classes:
        signal(case, agent, signal_class)
    return case_submit(actor=agent, case=case)


def approved(case: RecoveryCase, approver: User | None = None) -> RecoveryCase:
    """The case approved by `approver` (default: a new supervisor, so step-ups never clash)."""
    approver = approver or staff(Role.SUPERVISOR, tenant=case.tenant)
    approval_decide(
        actor=approver,
        case=case,
        decision="approved",
        reason="manager confirmed",
        step_up=step_up(approver),
    )
    return RecoveryCase.objects.get(pk=case.pk)


def decide(case: RecoveryCase, approver: User, reason: str = "ok", decision: str = "approved"):
    """`approver` decides `case` with a fresh step-up (the only way a decision is made)."""
    return approval_decide(
        actor=approver, case=case, decision=decision, reason=reason, step_up=step_up(approver)
    )

"""A frozen account (R-41, R-35): no case opened on it but by a security officer, and a freeze
that only a security officer lifts, with a reason and a fresh step-up, once nothing is left
to revert or undo. The repudiation's freeze and the re-establishment window's are the same
`frozen_at`, lifted the same way."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.models import CaseExecution, RecoveryCase, WindowChange
from recovery.cases.services import case_open
from recovery.cases.services.repudiation import (
    account_revert,
    account_unfreeze,
    case_repudiate,
    freeze_holds,
    revert_pending,
    revert_step_record,
)
from recovery.cases.services.window import window_change_act, window_change_report
from recovery.connectors.cloud import ChangeKind, ReportedChange
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from tenants.choices import Role
from tenants.exceptions import DomainError, PolicyDenied, StepUpFailed

from ..factories import execute, notices_planned, staff, step_up, unique
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

REASON = "Reviewed with the owner on a video call; the recovery was an attack, now reverted."


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def repudiated(tenant) -> RecoveryCase:
    """An executed manual-connector recovery the owner repudiated; its revert steps pending."""
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    notices_planned(tenant)
    case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())
    account_revert(tenant=tenant, account_id=case.account_id)  # what the commit runs
    case.refresh_from_db()
    assert case.status == "frozen"
    return case


def record_every_step(case: RecoveryCase) -> None:
    agent = staff(Role.AGENT, tenant=case.tenant)
    for step in revert_pending(CaseExecution.objects.get(case=case)):
        revert_step_record(
            actor=agent,
            case=case,
            step=step["id"],
            step_up=step_up(agent, case=case, action="execute"),
        )


def account_of(case: RecoveryCase) -> ProtectedAccount:
    return ProtectedAccount.objects.get(pk=case.account_id)


# --- opening -----------------------------------------------------------------------------------


def test_no_case_is_opened_on_a_frozen_account_but_by_a_security_officer(acme):
    account = account_of(repudiated(acme))
    cases = RecoveryCase.objects.filter(account=account).count()
    for role in (Role.AGENT, Role.SUPERVISOR):
        with pytest.raises(PolicyDenied) as refused:
            case_open(
                actor=staff(role, tenant=acme), account=account, case_type="unlock", channel="phone"
            )
        assert refused.value.code == "account.frozen"
        assert "Only a security officer" in refused.value.message
    assert RecoveryCase.objects.filter(account=account).count() == cases

    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    opened = case_open(actor=officer, account=account, case_type="unlock", channel="phone")

    assert opened.route == "security"
    [event] = [e for e in events(acme, "case.opened") if e.target_id == str(opened.pk)]
    assert any("frozen" in reason for reason in event.data["route_reasons"])


# --- lifting the freeze ------------------------------------------------------------------------


def test_only_a_security_officer_lifts_the_freeze_once_every_revert_step_is_done(acme):
    case = repudiated(acme)
    account = account_of(case)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    for role in (Role.AGENT, Role.SUPERVISOR, Role.TENANT_ADMIN):
        someone = staff(role, tenant=acme)
        with pytest.raises(PolicyDenied) as forbidden:
            account_unfreeze(
                actor=someone, account=account, reason=REASON, step_up=step_up(someone)
            )
        assert forbidden.value.code == "account.unfreeze_forbidden"
    with pytest.raises(PolicyDenied) as pending:
        account_unfreeze(actor=officer, account=account, reason=REASON, step_up=step_up(officer))
    assert pending.value.code == "account.revert_pending"
    assert freeze_holds(account).revert_steps == len(revert_pending(case.execution))

    record_every_step(case)
    with pytest.raises(DomainError) as short:
        account_unfreeze(actor=officer, account=account, reason="ok", step_up=step_up(officer))
    assert short.value.code == "account.unfreeze_reason_invalid"
    with pytest.raises(StepUpFailed) as bare:
        account_unfreeze(actor=officer, account=account, reason=REASON, step_up=None)
    assert bare.value.code == "stepup.required"
    assert account_of(case).frozen_at is not None

    lifted = account_unfreeze(
        actor=officer, account=account, reason=REASON, step_up=step_up(officer)
    )

    assert lifted.frozen_at is None and account_of(case).frozen_at is None
    [event] = events(acme, "account.unfrozen")
    assert event.target_id == str(account.pk) and event.data["reason"] == REASON
    assert event.data["frozen_cases"] == [case.pk] and event.data["step_up"]
    with pytest.raises(DomainError) as again:
        account_unfreeze(actor=officer, account=account, reason=REASON, step_up=step_up(officer))
    assert again.value.code == "account.not_frozen"
    # Open to the desk again.
    agent = staff(Role.AGENT, tenant=acme)
    assert case_open(actor=agent, account=lifted, case_type="unlock", channel="phone").pk


def test_a_revert_not_yet_run_holds_the_freeze(acme):
    case = ready_case(acme, case_type="password_reset")
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=acme))
    notices_planned(acme)
    case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())  # not committed yet
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(PolicyDenied) as pending:
        account_unfreeze(
            actor=officer, account=account_of(case), reason=REASON, step_up=step_up(officer)
        )
    assert pending.value.code == "account.revert_pending"


# --- the window's freeze, lifted the same way -------------------------------------------------


def test_the_windows_freeze_is_lifted_the_same_way_once_the_change_is_undone(acme):
    case = ready_case(acme, groups=["finance"])  # T1: a window opens
    owner_email(case)
    OwnerNotice.objects.filter(case=case).update(status="sent")  # a worker sent them
    case = execute(case, staff(Role.AGENT, tenant=acme))
    account = account_of(case)
    assert account.restricted_until is not None
    change = ReportedChange(
        id=unique("evt"),
        at=timezone.now(),
        kind=ChangeKind.MFA_ENROLLED,
        summary="A new authenticator app",
    )
    kept = window_change_report(account=account, change=change, source="ingest")
    assert kept is not None and account_of(case).frozen_at is not None
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied) as frozen:
        case_open(actor=agent, account=account_of(case), case_type="unlock", channel="phone")
    assert frozen.value.code == "account.frozen"

    def unfreeze():
        return account_unfreeze(
            actor=officer, account=account_of(case), reason=REASON, step_up=step_up(officer)
        )

    with pytest.raises(PolicyDenied) as unacted:  # the change is not acted on yet
        unfreeze()
    assert unacted.value.code == "account.revert_pending"
    acted = window_change_act(change_id=kept.pk)  # the manual connector: a person undoes it
    assert acted.outcome == "manual"
    with pytest.raises(PolicyDenied) as undo_pending:  # the undo is still to be recorded
        unfreeze()
    assert undo_pending.value.code == "account.revert_pending"

    from recovery.cases.services.containment import containment_pending, containment_step_record

    [undo] = containment_pending(CaseExecution.objects.get(case=case))
    containment_step_record(
        actor=agent, case=case, step=undo["id"], step_up=step_up(agent, case=case, action="execute")
    )
    assert unfreeze().frozen_at is None
    assert WindowChange.objects.get(pk=kept.pk).outcome == "manual"

"""Concurrent approvals of one case are serialised: never double-counted, never two moves."""

import threading

from django.db import connection

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.choices import CaseStatus
from recovery.cases.models import Approval
from recovery.cases.services import approval_decide, case_open, case_submit
from tenants.choices import Role
from tenants.exceptions import DomainError

from ..factories import make_account_with, make_tenant, staff, step_up
from .casework import signal


def pending_case(tenant, groups):
    agent = staff(Role.AGENT, tenant=tenant)
    collector = staff(Role.SECURITY_OFFICER, tenant=tenant)
    account = make_account_with(tenant, groups=groups)
    case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    signal(case, collector, "S2")
    signal(case, collector, "S3")
    return case_submit(actor=collector, case=case)


def race(case, approvers):
    proofs = [step_up(a, case=case) for a in approvers]
    start, outcomes = threading.Barrier(len(approvers)), []

    def approve(approver, proof):
        try:
            start.wait()
            approval_decide(
                actor=approver, case=case, decision="approved", reason="ok", step_up=proof
            )
            outcomes.append("approved")
        except DomainError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=approve, args=pair) for pair in zip(approvers, proofs, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_approvers_at_once_on_a_one_approval_case_move_it_once(committed):
    tenant = make_tenant()
    case = pending_case(tenant, ["Finance"])  # T1: one approval
    approvers = [staff(Role.SUPERVISOR, tenant=tenant) for _ in range(3)]
    outcomes = race(case, approvers)
    assert outcomes.count("approved") == 1
    assert set(outcomes) - {"approved"} == {"case.wrong_state"}
    case.refresh_from_db()
    assert case.status == CaseStatus.COOLING_OFF
    assert Approval.objects.filter(case=case).count() == 1
    moves = AuditEvent.objects.filter(
        tenant=tenant, action="case.status_changed", target_id=str(case.pk)
    )
    assert moves.count() == 1
    assert verify_chain(tenant.pk, tenant.slug).intact


def test_two_officers_at_once_on_a_two_approval_case_both_count_once(committed):
    tenant = make_tenant()
    case = pending_case(tenant, ["IT-Admins"])  # T2: two approvals incl. a security officer
    officers = [staff(Role.SECURITY_OFFICER, tenant=tenant) for _ in range(2)]
    assert race(case, officers) == ["approved", "approved"]
    case.refresh_from_db()
    assert case.status == CaseStatus.COOLING_OFF
    assert (
        AuditEvent.objects.filter(
            tenant=tenant, action="case.status_changed", target_id=str(case.pk)
        ).count()
        == 1
    )

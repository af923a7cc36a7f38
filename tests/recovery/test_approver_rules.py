"""Who may approve a case (R-21) and whose approval still counts (R-62)."""

from __future__ import annotations

import pytest
from django.core import mail

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus
from recovery.cases.models import Approval, RecoveryCase
from recovery.cases.review_selectors import approval_queue
from recovery.cases.services import approval_refusal, case_needs, case_open, case_submit
from recovery.cases.services.base import requirements_for
from recovery.challenges.services import challenge_send, challenge_verify
from tenants.access import access_in
from tenants.choices import Role
from tenants.models import DelegationGrant, Membership
from tenants.services import grant_revoke, membership_change_role, membership_revoke

from ..factories import active_grant, make_account_with, operator, staff
from .casework import code_in, contact, decide, signal

pytestmark = pytest.mark.django_db

FINANCE = {"groups": ["Finance"]}  # T1: one approval by a supervisor or a security officer
ADMINS = {"groups": ["IT-Admins"]}  # T2: two approvals, one by a security officer


def reload(case: RecoveryCase) -> RecoveryCase:
    return RecoveryCase.objects.get(pk=case.pk)


def queue_ids(case: RecoveryCase, actor) -> set[int]:
    access = access_in(actor, case.tenant)
    return set(
        approval_queue(tenant=case.tenant, actor=actor, access=access).values_list("pk", flat=True)
    )


def t1_case(tenant, opener, *, collector=None, case_type="mfa_reset", **attributes):
    """A T1 case opened by `opener`; S2 collected by `collector` (default the opener), S3 by
    the opener; submitted."""
    account = make_account_with(tenant, **{**FINANCE, **attributes})
    case = case_open(actor=opener, account=account, case_type=case_type, channel="phone")
    signal(case, collector or opener, "S2")
    signal(case, opener, "S3")
    case = case_submit(actor=opener, case=case)
    assert (case.tier, case.status) == ("T1", CaseStatus.PENDING_APPROVAL)
    return case


# --- 0. the evidence collector never approves, at any tier -----------------------------------


def test_t1_evidence_collector_cannot_approve(acme):
    agent = staff(Role.AGENT, tenant=acme)
    collector = staff(Role.SUPERVISOR, tenant=acme)  # supervisors may work cases too
    case = t1_case(acme, agent, collector=collector)
    with pytest.raises(Exception) as refused:
        decide(case, collector)
    assert getattr(refused.value, "code", None) == "sod.evidence_collector"
    assert "collected evidence" in str(refused.value)
    assert case.pk not in queue_ids(case, collector)
    assert not Approval.objects.filter(case=case).exists()
    other = staff(Role.SUPERVISOR, tenant=acme)
    assert case.pk in queue_ids(case, other)
    decide(case, other)
    assert reload(case).status == CaseStatus.COOLING_OFF


def test_who_sent_a_code_the_agent_then_verified_cannot_approve(acme):
    agent = staff(Role.AGENT, tenant=acme)
    sender = staff(Role.SUPERVISOR, tenant=acme)
    account = make_account_with(acme, **FINANCE)
    case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    mailbox = contact(account, "email", "owner-sent@example.test")
    challenge = challenge_send(actor=sender, case=case, contact_method=mailbox)
    challenge_verify(
        actor=agent, case=case, challenge=challenge, code=code_in(mail.outbox[-1].body)
    )
    signal(case, agent, "S3")
    case = case_submit(actor=agent, case=case)
    with pytest.raises(Exception) as refused:
        decide(case, sender)
    assert getattr(refused.value, "code", None) == "sod.evidence_collector"
    assert case.pk not in queue_ids(case, sender)


# --- 1. R-21: neither the subject's delegate nor who delegates to the subject ----------------


def test_the_subjects_delegate_cannot_approve(acme):
    """The subject delegates to the approver: the approver's account lists the subject."""
    agent = staff(Role.AGENT, tenant=acme)
    approver = staff(Role.SUPERVISOR, tenant=acme)
    subject = make_account_with(acme, **FINANCE)
    make_account_with(acme, person_id=str(approver.person_id), delegations=[subject.external_id])
    case = case_open(actor=agent, account=subject, case_type="mfa_reset", channel="phone")
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    case = case_submit(actor=agent, case=case)
    with pytest.raises(Exception) as refused:
        decide(case, approver)
    assert getattr(refused.value, "code", None) == "sod.approver_is_subject"
    assert case.pk not in queue_ids(case, approver)


def test_who_delegates_to_the_subject_cannot_approve(acme):
    """The approver delegates to the subject: the subject's account lists the approver's."""
    agent = staff(Role.AGENT, tenant=acme)
    approver = staff(Role.SUPERVISOR, tenant=acme)
    own = make_account_with(acme, person_id=str(approver.person_id))
    case = t1_case(acme, agent, delegations=[own.external_id])
    with pytest.raises(Exception) as refused:
        decide(case, approver)
    assert getattr(refused.value, "code", None) == "sod.approver_is_subject"
    assert case.pk not in queue_ids(case, approver)


# --- the queue offers exactly what the service would accept ----------------------------------


def test_queue_and_service_agree_on_who_may_approve(acme):
    agent = staff(Role.AGENT, tenant=acme)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    delegate_of = make_account_with(acme, **FINANCE)
    make_account_with(
        acme, person_id=str(supervisor.person_id), delegations=[delegate_of.external_id]
    )
    officer_own = make_account_with(acme, person_id=str(officer.person_id))
    cases = [
        t1_case(acme, agent),
        t1_case(acme, agent, collector=supervisor),
        t1_case(acme, agent, collector=officer),
        t1_case(acme, agent, delegations=[officer_own.external_id]),
        t1_case(acme, supervisor),
    ]
    on_delegator = case_open(actor=agent, account=delegate_of, case_type="unlock", channel="phone")
    signal(on_delegator, agent, "S2")
    signal(on_delegator, agent, "S3")
    cases.append(case_submit(actor=agent, case=on_delegator))
    for actor in (supervisor, officer, staff(Role.SUPERVISOR, tenant=acme)):
        access = access_in(actor, acme)
        allowed = {
            case.pk
            for case in cases
            if approval_refusal(reload(case), actor, access, requirements_for(case)) is None
        }
        assert queue_ids(cases[0], actor) == allowed
        assert 0 < len(allowed) < len(cases) or actor not in (supervisor, officer)


# --- 2. R-62: an approval counts only while its approver keeps the role ----------------------


def _t2_with_one_approval(tenant):
    worker = staff(Role.SECURITY_OFFICER, tenant=tenant)
    account = make_account_with(tenant, **ADMINS)
    case = case_open(actor=worker, account=account, case_type="mfa_reset", channel="phone")
    signal(case, worker, "S2")
    signal(case, worker, "S3")
    case = case_submit(actor=worker, case=case)
    approver = staff(Role.SECURITY_OFFICER, tenant=tenant)
    decide(case, approver)
    assert case_needs(reload(case)).approvals == 1
    return reload(case), approver


def _voided(case: RecoveryCase) -> list[Approval]:
    return list(Approval.objects.filter(case=case, invalidated_reason="approver_lost_role"))


def test_revoking_the_approvers_membership_voids_their_approval(acme):
    case, approver = _t2_with_one_approval(acme)
    membership = Membership.objects.get(user=approver, tenant=acme)
    membership_revoke(actor=operator(), membership=membership)
    voided = _voided(case)
    assert len(voided) == 1 and voided[0].invalidated_at is not None
    assert case_needs(reload(case)).approvals == 0
    event = AuditEvent.objects.get(tenant=acme, action="approval.invalidated")
    assert event.data["reason"] == "approver_lost_role"
    assert event.data["approval"] == voided[0].pk


def test_a_role_change_away_from_approving_voids_the_approval(acme):
    case, approver = _t2_with_one_approval(acme)
    membership = Membership.objects.get(user=approver, tenant=acme)
    membership_change_role(actor=operator(), membership=membership, role=Role.AGENT)
    assert len(_voided(case)) == 1
    assert case_needs(reload(case)).approvals == 0


def test_an_approval_whose_approver_lost_the_role_does_not_count_even_unvoided(acme):
    """Fail closed at count time: a membership ended without the service still counts nothing."""
    case, approver = _t2_with_one_approval(acme)
    Membership.objects.filter(user=approver, tenant=acme).update(is_active=False)
    assert case_needs(reload(case)).approvals == 0


def test_a_lost_approval_sends_an_approved_t1_case_back_to_approval(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = t1_case(acme, agent)
    approver = staff(Role.SUPERVISOR, tenant=acme)
    decide(case, approver)
    assert reload(case).status == CaseStatus.COOLING_OFF
    membership_revoke(
        actor=operator(), membership=Membership.objects.get(user=approver, tenant=acme)
    )
    case = reload(case)
    assert case.status == CaseStatus.PENDING_APPROVAL
    assert len(_voided(case)) == 1
    other = staff(Role.SUPERVISOR, tenant=acme)
    decide(case, other)
    assert reload(case).status == CaseStatus.COOLING_OFF


def test_revoking_a_grant_voids_the_approvals_given_through_it(acme, deskco):
    grant = active_grant(
        deskco, acme, roles=(Role.SUPERVISOR,), tiers=("T0", "T1")
    )  # password resets only
    msp = staff(Role.SUPERVISOR, provider=deskco)
    agent = staff(Role.AGENT, tenant=acme)
    case = t1_case(acme, agent, case_type="password_reset")
    decide(case, msp)
    assert reload(case).status == CaseStatus.COOLING_OFF
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    grant_revoke(
        actor=admin, grant=DelegationGrant.objects.get(pk=grant.pk), reason="contract ended"
    )
    case = reload(case)
    assert len(_voided(case)) == 1 and case.status == CaseStatus.PENDING_APPROVAL

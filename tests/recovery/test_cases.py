"""The case workflow: a recovery that cannot be completed on persuasion alone."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus, Route, Verifier
from recovery.cases.models import Approval, Evidence
from recovery.cases.services import (
    accepted_classes,
    approval_decide,
    case_cancel,
    case_open,
    case_release_cooled,
    case_submit,
    context_record,
    evidence_refusal_record,
)
from recovery.challenges.services import ChallengeRefused, challenge_send, challenge_verify
from recovery.models import ContactMethod, ProtectedAccount
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied, StepUpFailed

from ..factories import active_grant, make_account_with, make_user, member, staff
from .casework import contact, decide, signal

pytestmark = pytest.mark.django_db


def events(case, action):
    return list(
        AuditEvent.objects.filter(
            tenant=case.tenant, action=action, target_id=str(case.pk)
        ).order_by("seq")
    )


def reload(case):
    return type(case).objects.get(pk=case.pk)


@pytest.fixture
def team(acme):
    return {
        "agent": staff(Role.AGENT, tenant=acme),
        "supervisor": staff(Role.SUPERVISOR, tenant=acme),
        "security": staff(Role.SECURITY_OFFICER, tenant=acme),
        "security2": staff(Role.SECURITY_OFFICER, tenant=acme),
    }


def cfo(acme):
    return make_account_with(acme, groups=["Finance"], external_id="CFO-1")


def two_signals(case, agent, account):
    """S2 (a code read back) and S3 (the manager's own attestation), by their verifiers."""
    assert case.account_id == account.pk
    signal(case, agent, "S2")
    signal(case, agent, "S3")


# --- opening: tier, route, repeat attempts are the server's -----------------------------------


def test_tier_and_route_come_from_authoritative_attributes(acme, team):
    ordinary = make_account_with(acme)
    admin = make_account_with(acme, admin_roles=["Global Administrator"])
    flagged = make_account_with(acme, no_helpdesk_reset=True)
    t0 = case_open(
        actor=team["agent"],
        account=ordinary,
        case_type="password_reset",
        channel="phone",
        claimant_statement="I am the CEO, this is urgent! VIP!",
    )
    assert (t0.tier, t0.route) == ("T0", Route.STANDARD)
    t2 = case_open(actor=team["agent"], account=admin, case_type="mfa_reset", channel="phone")
    assert (t2.tier, t2.route) == ("T2", Route.SECURITY)
    assert any("admin" in reason for reason in t2.tier_reasons)
    assert (
        case_open(actor=team["agent"], account=flagged, case_type="unlock", channel="chat").route
        == Route.SECURITY
    )
    opened = events(t2, "case.opened")[0]
    assert opened.data["policy_version"] == 0 and opened.data["tier"] == "T2"


def test_second_case_on_an_account_is_a_repeat_attempt_across_agents(acme, team):
    account = make_account_with(acme)
    case_open(actor=team["agent"], account=account, case_type="password_reset", channel="phone")
    again = case_open(
        actor=team["supervisor"], account=account, case_type="mfa_reset", channel="email"
    )
    assert again.repeat_attempt and again.route == Route.SECURITY


def test_case_after_a_recently_denied_one_is_a_repeat_attempt(acme, team):
    account = cfo(acme)
    first = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    two_signals(first, team["agent"], account)
    case_submit(actor=team["agent"], case=first)
    decide(first, team["supervisor"], "caller could not answer", "denied")
    assert reload(first).status == CaseStatus.DENIED
    type(first).objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=2))
    second = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    assert second.repeat_attempt and second.route == Route.SECURITY


def test_msp_agent_cannot_open_cases_outside_the_grant(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    active_grant(deskco, acme, tiers=("T0",))
    with pytest.raises(PolicyDenied) as denied:
        case_open(actor=agent, account=cfo(acme), case_type="password_reset", channel="phone")
    assert denied.value.code == "grant.tier_not_allowed"
    assert (
        case_open(
            actor=agent,
            account=make_account_with(acme),
            case_type="password_reset",
            channel="phone",
        ).tier
        == "T0"
    )


def test_auditor_cannot_open_a_case(acme):
    with pytest.raises(PolicyDenied) as denied:
        case_open(
            actor=staff(Role.AUDITOR, tenant=acme),
            account=make_account_with(acme),
            case_type="unlock",
            channel="phone",
        )
    assert denied.value.code == "case.role_required"


# --- evidence: AS-01, AS-02 ---------------------------------------------------------------------


def test_as01_knowledge_and_dictated_channels_never_count(acme, team):
    account = cfo(acme)
    contact(account)
    case = case_open(
        actor=team["agent"],
        account=account,
        case_type="mfa_reset",
        channel="phone",
        claimant_statement="boarding a plane, board in 20 min",
    )
    facts = [
        context_record(actor=team["agent"], case=case, topic=topic, statement=statement)
        for topic, statement in (
            ("date_of_birth", "gave DOB 1980-02-03 and employee id 4471"),
            ("recovery_code", "read out a recovery code she says she saved"),
            ("S2", "says the code on her new phone was 123456"),
        )
    ]
    evidence_refusal_record(
        actor=team["agent"], case=case, code="caller_supplied_channel", data={"contact": "***88"}
    )
    assert {(f.result, f.reason_code, f.signal_class, f.verifier) for f in facts} == {
        ("context", "knowledge_based", "context", "")
    }
    assert accepted_classes(case) == set()
    with pytest.raises(PolicyDenied) as refused:
        case_submit(actor=team["agent"], case=case)
    assert refused.value.code == "evidence.insufficient"
    assert reload(case).status == CaseStatus.COLLECTING_EVIDENCE
    reasons = [e.data["reason"] for e in events(case, "verification.signal_rejected")]
    assert reasons == ["knowledge_based"] * 3 + ["caller_supplied_channel"]
    assert not events(case, "verification.signal_accepted")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"sim_days": 2}, "sim_change_recent"),
        ({"age_days": 3}, "contact_changed_in_quarantine"),
    ],
)
def test_as02_recent_sim_swap_or_contact_change_disqualifies_the_channel(acme, team, setup, reason):
    account = cfo(acme)
    mobile = contact(account, **setup)
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    with pytest.raises(PolicyDenied) as refused:
        challenge_send(actor=team["agent"], case=case, contact_method=mobile)
    assert refused.value.code == f"evidence.{reason}"
    assert not Evidence.objects.filter(case=case).exists()  # no code left, nothing to count
    rejected = events(case, "verification.challenge_refused")[0]
    assert rejected.data["code"] == f"evidence.{reason}" and rejected.data["contact"]
    assert "+1555" not in str(rejected.data)  # only the masked hint


def test_contact_added_during_the_case_or_of_another_account_is_not_a_channel(acme, team):
    account, other = cfo(acme), make_account_with(acme)
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    added_later = contact(account, age_days=0)
    ContactMethod.objects.filter(pk=added_later.pk).update(registered_at=timezone.now())
    added_later.refresh_from_db()
    theirs = contact(other)
    for method, reason in (
        (added_later, "contact_added_during_case"),
        (theirs, "channel_not_in_system_of_record"),
    ):
        with pytest.raises(PolicyDenied) as refused:
            challenge_send(actor=team["agent"], case=case, contact_method=method)
        assert refused.value.code == f"evidence.{reason}"
    assert not Evidence.objects.filter(case=case).exists()


def test_two_signals_of_one_class_count_once(acme, team):
    account = cfo(acme)
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    for _ in range(2):
        assert signal(case, team["agent"], "S2").result == "accepted"
    with pytest.raises(PolicyDenied) as one_class:
        case_submit(actor=team["agent"], case=case)
    assert one_class.value.code == "evidence.insufficient"
    signal(case, team["agent"], "S3")
    assert case_submit(actor=team["agent"], case=case).status == CaseStatus.PENDING_APPROVAL


def test_a_wrong_code_is_refused_and_leaves_no_evidence(acme, team):
    account = make_account_with(acme)
    mailbox = contact(account, "email", "owner@example.test")
    case = case_open(actor=team["agent"], account=account, case_type="unlock", channel="phone")
    challenge = challenge_send(actor=team["agent"], case=case, contact_method=mailbox)
    with pytest.raises(ChallengeRefused) as wrong:
        challenge_verify(actor=team["agent"], case=case, challenge=challenge, code="00000000")
    assert wrong.value.code == "challenge.code_invalid"
    assert not Evidence.objects.filter(case=case).exists()
    assert events(case, "verification.challenge_failed")[0].data["reason"] == "wrong_code"
    with pytest.raises(PolicyDenied):
        case_submit(actor=team["agent"], case=case)


def test_asserted_rows_from_before_the_verifiers_never_count_nor_waive_cooling_off(acme, team):
    """Rows accepted on someone's say-so before verifiers existed (kept, marked legacy) count
    for nothing: not as evidence, not as the S5 that waives the cooling-off (R-36)."""
    account = make_account_with(acme, groups=["Finance"])
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    for signal_class, method in (("S5", "push"), ("S4", "video_id"), ("S1", "recovery_code")):
        Evidence.objects.create(
            tenant=acme,
            case=case,
            signal_class=signal_class,
            method=method,
            result="accepted",
            collected_by=team["agent"],
            verifier=Verifier.LEGACY_ASSERTION,
            digest="0" * 64,
        )
    assert accepted_classes(case) == set()
    with pytest.raises(PolicyDenied) as refused:
        case_submit(actor=team["agent"], case=case)
    assert refused.value.code == "evidence.insufficient"
    two_signals(case, team["agent"], account)
    case = case_submit(actor=team["agent"], case=case)
    decide(case, team["supervisor"])
    case = reload(case)
    assert case.status == CaseStatus.COOLING_OFF  # the legacy S5 waived nothing
    assert case.cooling_off_until > timezone.now() + timedelta(minutes=14)
    changed = events(case, "case.status_changed")[-1]
    assert changed.data["cooling_off_waived_by_s5"] is False


def test_the_database_refuses_an_accepted_row_without_a_counting_verifier(acme, team):
    """An accepted row naming no verifier, or a verifier without its record's id (the owner
    portal's too), cannot even be stored."""
    case = case_open(
        actor=team["agent"], account=make_account_with(acme), case_type="unlock", channel="phone"
    )
    for verifier, ref in (("", None), (Verifier.OWNER_PORTAL, None), (Verifier.CHALLENGE, None)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Evidence.objects.create(
                tenant=acme,
                case=case,
                signal_class="S5",
                method="passkey",
                result="accepted",
                collected_by=team["agent"],
                verifier=verifier,
                verifier_ref=ref,
                digest="0" * 64,
            )


# --- approvals: AS-04 and separation of duties ---------------------------------------------------


def pending_t1(acme, opener, account=None, case_type="mfa_reset"):
    account = account or cfo(acme)
    case = case_open(actor=opener, account=account, case_type=case_type, channel="phone")
    two_signals(case, opener, account)
    return case_submit(actor=opener, case=case)


def test_t1_needs_a_supervisor_then_cools_off_then_is_ready(acme, team):
    case = pending_t1(acme, team["agent"])
    decide(case, team["supervisor"], "manager confirmed in Teams")
    case = reload(case)
    assert case.status == CaseStatus.COOLING_OFF
    assert case_release_cooled(case=case).status == CaseStatus.COOLING_OFF  # not yet
    type(case).objects.filter(pk=case.pk).update(
        cooling_off_until=timezone.now() - timedelta(seconds=1)
    )
    assert case_release_cooled(case=case).status == CaseStatus.READY
    approved = events(case, "approval.approved")[0]
    assert approved.data["step_up"]["device_type"] == "passkey" and approved.data["snapshot"]


def test_as04_opener_and_their_other_account_cannot_approve(acme, team):
    insider = staff(Role.AGENT, tenant=acme)
    member(insider, Role.SUPERVISOR, tenant=acme)
    alt = make_user(person_id=str(insider.person_id))
    member(alt, Role.SUPERVISOR, tenant=acme)
    case = pending_t1(acme, insider)
    for approver, code in ((insider, "sod.approver_is_opener"), (alt, "sod.same_person")):
        with pytest.raises(PolicyDenied) as refused:
            decide(case, approver)
        assert refused.value.code == code
    assert reload(case).status == CaseStatus.PENDING_APPROVAL
    codes = [e.data["code"] for e in events(case, "policy.violation")]
    assert codes == ["sod.approver_is_opener", "sod.same_person"]
    assert not Approval.objects.filter(case=case).exists()


def test_as04_own_account_is_t2_and_the_subject_cannot_approve(acme, team):
    supervisor = team["supervisor"]
    own = make_account_with(acme, person_id=str(supervisor.person_id))
    case = case_open(actor=team["agent"], account=own, case_type="mfa_reset", channel="phone")
    assert (case.tier, case.route) == ("T2", Route.SECURITY)
    two_signals(case, team["security"], own)
    case = case_submit(actor=team["security"], case=case)
    with pytest.raises(PolicyDenied) as refused:
        decide(case, supervisor, "me")
    assert refused.value.code == "sod.approver_is_subject"


def test_agents_cannot_approve_and_every_approval_needs_a_fresh_step_up(acme, team):
    case = pending_t1(acme, team["agent"])
    other_agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        decide(case, other_agent, "x")
    assert refused.value.code == "approval.role_required"
    with pytest.raises(StepUpFailed):
        approval_decide(
            actor=team["supervisor"], case=case, decision="approved", reason="x", step_up=None
        )
    with pytest.raises(InvalidInput):
        decide(case, team["supervisor"], " ")
    assert reload(case).status == CaseStatus.PENDING_APPROVAL


def test_database_refuses_an_approval_row_by_the_opener(acme, team):
    case = pending_t1(acme, team["agent"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            tenant=acme,
            case=case,
            approver=team["agent"],
            approver_person=team["agent"].person_id,
            case_opened_by=team["agent"],
            case_opened_by_person=team["agent"].person_id,
            roles=["supervisor"],
            via_grant=False,
            decision="approved",
            reason="x",
            snapshot_hash="x",
            step_up={},
            expires_at=timezone.now(),
        )


def test_t2_needs_two_approvers_including_a_security_officer(acme, team):
    account = make_account_with(acme, groups=["IT-Admins"])
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    with pytest.raises(PolicyDenied) as security_only:
        signal(case, team["agent"], "S2")
    assert security_only.value.code == "case.security_queue_only"
    collector = team["security"]
    two_signals(case, collector, account)
    case = case_submit(actor=collector, case=case)
    with pytest.raises(PolicyDenied) as collected:
        decide(case, collector, "x")
    assert collected.value.code == "sod.evidence_collector"
    with pytest.raises(PolicyDenied) as supervisor:
        decide(case, team["supervisor"], "x")
    assert supervisor.value.code == "case.security_queue_only"
    decide(case, team["security2"])
    assert reload(case).status == CaseStatus.PENDING_APPROVAL  # one of two
    third = staff(Role.SECURITY_OFFICER, tenant=acme)
    decide(case, third)
    assert reload(case).status == CaseStatus.COOLING_OFF


def test_tier_raised_mid_case_voids_approvals(acme, team):
    account = cfo(acme)
    case = pending_t1(acme, team["agent"], account)
    ProtectedAccount.objects.filter(pk=account.pk).update(admin_roles=["Global Administrator"])
    first = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(StepUpFailed) as stale:  # confirmed for the case as it was, at T1
        decide(case, first)
    assert stale.value.code == "stepup.snapshot_changed"
    case = reload(case)
    assert (case.tier, case.route, case.status) == (
        "T2",
        Route.SECURITY,
        CaseStatus.PENDING_APPROVAL,
    )
    assert events(case, "case.tier_raised")
    decide(case, first)  # a step-up for the case as it now is
    assert reload(case).approvals.filter(invalidated_at__isnull=True).count() == 1


def test_same_approver_cannot_count_twice(acme, team):
    account = make_account_with(acme, groups=["IT-Admins"])
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    two_signals(case, team["security"], account)
    case = case_submit(actor=team["security"], case=case)
    approver = team["security2"]
    decide(case, approver)
    with pytest.raises(PolicyDenied) as twice:
        decide(case, approver, "again")
    assert twice.value.code == "approval.already_decided"


def test_msp_opened_t1_case_needs_an_approver_from_the_tenant(acme, deskco, team):
    msp_agent = staff(Role.AGENT, provider=deskco)
    msp_supervisor = staff(Role.SUPERVISOR, provider=deskco)
    active_grant(deskco, acme, roles=(Role.AGENT, Role.SUPERVISOR), tiers=("T0", "T1"))
    case = pending_t1(acme, msp_agent, case_type="password_reset")
    decide(case, msp_supervisor)
    assert reload(case).status == CaseStatus.PENDING_APPROVAL  # not yet
    decide(case, team["supervisor"])
    assert reload(case).status == CaseStatus.COOLING_OFF


def test_owner_can_cancel_during_cooling_off(acme, team):
    case = pending_t1(acme, team["agent"])
    decide(case, team["supervisor"])
    cancelled = case_cancel(actor=None, case=case, reason="this wasn't me")
    assert cancelled.status == CaseStatus.CANCELLED
    assert events(case, "case.cancelled")[0].actor_label == "account-owner"


def test_t0_with_one_signal_and_no_approvals_is_ready_at_once(acme, team):
    account = make_account_with(acme)
    case = case_open(actor=team["agent"], account=account, case_type="unlock", channel="phone")
    signal(case, team["agent"], "S2")
    assert case_submit(actor=team["agent"], case=case).status == CaseStatus.READY


def test_msp_approver_is_bound_by_the_grant_scope(acme, deskco, team):
    msp_supervisor = staff(Role.SUPERVISOR, provider=deskco)
    active_grant(deskco, acme, roles=(Role.SUPERVISOR,), tiers=("T0",))
    case = pending_t1(acme, team["agent"])
    with pytest.raises(PolicyDenied) as refused:
        decide(case, msp_supervisor)
    assert refused.value.code == "grant.tier_not_allowed"


def test_cooling_off_ends_by_database_time_only(acme, team):
    case = pending_t1(acme, team["agent"])
    decide(case, team["supervisor"])
    case = reload(case)
    type(case).objects.filter(pk=case.pk).update(
        cooling_off_until=timezone.now() + timedelta(minutes=5)
    )
    assert case_release_cooled(case=case).status == CaseStatus.COOLING_OFF


def test_exception_needs_a_written_justification_and_two_security_officers(acme, team):
    account = make_account_with(acme)
    with pytest.raises(InvalidInput) as missing:
        case_open(
            actor=team["agent"],
            account=account,
            case_type="exception",
            channel="phone",
            justification="urgent",
        )
    assert missing.value.code == "case.justification_required"
    case = case_open(
        actor=team["agent"],
        account=account,
        case_type="exception",
        channel="phone",
        justification="Owner lost every factor abroad; HR verified travel dates.",
    )
    assert case.route == Route.SECURITY
    two_signals(case, team["security"], account)
    case = case_submit(actor=team["security"], case=case)
    with pytest.raises(PolicyDenied) as supervisor:
        decide(case, team["supervisor"], "x")
    assert supervisor.value.code == "approval.role_required"
    decide(case, team["security2"])
    assert reload(case).status == CaseStatus.PENDING_APPROVAL
    third = staff(Role.SECURITY_OFFICER, tenant=acme)
    decide(case, third)
    case = reload(case)
    assert case.status == CaseStatus.COOLING_OFF  # the policy's waiting period
    assert case.cooling_off_until > timezone.now() + timedelta(hours=23)


def test_case_says_what_is_still_needed_at_every_step(acme, team):
    from recovery.cases.services import case_needs

    account = cfo(acme)
    case = case_open(actor=team["agent"], account=account, case_type="mfa_reset", channel="phone")
    needs = case_needs(case)
    assert (needs.classes_missing, needs.evidence_met, needs.approvals_required) == (2, False, 1)
    assert needs.summary()[0] == "Evidence: 2 more distinct signal class(es)."
    two_signals(case, team["agent"], account)
    case = case_submit(actor=team["agent"], case=case)
    needs = case_needs(case)
    assert needs.evidence_met and not needs.approvals_met
    assert needs.summary() == ["Approvals: 1 more."]
    decide(case, team["supervisor"])
    assert case_needs(reload(case)).summary() == ["Nothing: the policy is satisfied."]


def test_sweep_releases_only_cases_whose_cooling_off_has_passed(acme, team):
    from recovery.tasks import case_release_cooled_task

    due, waiting = (
        pending_t1(acme, team["agent"], make_account_with(acme, groups=["Finance"]))
        for _ in range(2)
    )
    for case in (due, waiting):
        approver = staff(Role.SUPERVISOR, tenant=acme)
        decide(case, approver)
    type(due).objects.filter(pk=due.pk).update(cooling_off_until=timezone.now())
    assert case_release_cooled_task() == 1
    assert (reload(due).status, reload(waiting).status) == (
        CaseStatus.READY,
        CaseStatus.COOLING_OFF,
    )
    assert case_release_cooled_task() == 0  # a second run changes nothing

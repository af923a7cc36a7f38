"""S4 by an attended session (R-06, R-07, R-09): who may referee, the coercion question, the
live challenge, the fraud flag, the session record, and the referee's certification."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from recovery.artifacts.models import RecoveryArtifact
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.policies import (
    can_open_case_page,
    can_referee_case,
    can_run_attended_session,
    case_taker,
)
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.execution import case_execute
from recovery.models import ProtectedAccount
from recovery.proofing.attended import (
    WORDS,
    attended_coercion_answer,
    attended_complete,
    attended_fraud_flag,
    attended_start,
    live_challenge_new,
)
from recovery.proofing.models import AttendedSession
from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Membership, Tenant, User
from tenants.services import membership_change_role, referee_certify

from ...api.conftest import api, key_client, staff_api_client
from ...conftest import signed_in_client
from ...factories import (
    active_grant,
    make_account_with,
    make_provider,
    make_user,
    member,
    notices_sent,
    staff,
    step_up,
)
from ..casework import approved, decide, referee_certified
from ..execution.helpers import last_recovery_mail, owner_email

pytestmark = pytest.mark.django_db

DOCUMENTS = ["passport (chip read, photo matches)", "staff badge"]
STEPS = ["document check", "live challenge", "coercion question"]


# --- building blocks ------------------------------------------------------------------------


def certify(user: User, tenant: Tenant, *, days: int = 30) -> Membership:
    membership = Membership.objects.get(user=user, tenant=tenant, role=Role.TRUSTED_REFEREE)
    return referee_certify(
        actor=staff(Role.TENANT_ADMIN, tenant=tenant),
        membership=membership,
        until=timezone.now() + timedelta(days=days),
    )


def referee(tenant: Tenant, *, person_id: str | None = None, certified: bool = True) -> User:
    """A trusted referee of `tenant` (certified for 30 days unless told otherwise)."""
    user = make_user(person_id=person_id)
    member(user, Role.TRUSTED_REFEREE, tenant=tenant)
    if certified:
        certify(user, tenant)
    return user


@dataclass
class Setup:
    tenant: Tenant
    agent: User
    account: ProtectedAccount
    case: RecoveryCase
    referee: User


def open_case(
    tenant: Tenant,
    *,
    agent: User | None = None,
    agent_role: str = Role.AGENT,
    enrolment_reference: str = "ENR-7731",
    **attributes,
) -> Setup:
    """A case collecting evidence on a T1 account (S4 accepted, and enough alone) by default,
    and a certified referee who is no party to it."""
    attributes = attributes or {"groups": ["finance"]}
    agent = agent or staff(agent_role, tenant=tenant)
    account = make_account_with(tenant, **attributes)
    # The system of record's enrolment reference, as a sync would have stored it.
    ProtectedAccount.objects.filter(pk=account.pk).update(enrolment_reference=enrolment_reference)
    account.refresh_from_db()
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    return Setup(tenant, agent, account, case, referee(tenant))


def started(s: Setup, mode: str = "remote_video") -> AttendedSession:
    return attended_start(
        actor=s.referee,
        case=s.case,
        mode=mode,
        reason="The caller lost every device; no code channel remains.",
    )


def completed(
    s: Setup, mode: str = "remote_video", *, biometric: bool = False
) -> tuple[AttendedSession, Evidence | None]:
    session = started(s, mode)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    evidence = attended_complete(
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
        biometric_compared=biometric,
    )
    session.refresh_from_db()
    return session, evidence


def refused(code: str, call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, (caught.value.code, str(caught.value))
    return caught.value


def events(tenant: Tenant, action: str, **data) -> list[AuditEvent]:
    rows = AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq")
    return [e for e in rows if all(e.data.get(k) == v for k, v in data.items())]


def counted(case: RecoveryCase):
    return Evidence.objects.filter(case=case, result="accepted")


# --- starting -------------------------------------------------------------------------------


def test_start_draws_a_fresh_live_challenge_and_records_the_reason(acme):
    s = open_case(acme)
    session = started(s)

    assert session.status == "open" and session.referee == s.referee
    assert session.referee_person == s.referee.person_id
    assert session.reason == "The caller lost every device; no code channel remains."
    spoken = session.live_challenge.split("say: ")[1].split()
    assert len(spoken) == 4 and len(set(spoken[:3])) == 3 and set(spoken[:3]) <= set(WORDS)
    assert 10 <= int(spoken[3]) <= 99
    event = events(acme, "verification.attended_started")[-1]
    assert event.data["session"] == session.pk and event.data["method"] == "attended_remote"
    assert event.data["live_challenge"] == session.live_challenge
    assert event.actor_label == s.referee.username
    # Another session draws another challenge (the referee never chooses it).
    other = started(open_case(acme))
    assert other.live_challenge != session.live_challenge


def test_the_live_challenge_varies_in_every_part():
    drawn = [live_challenge_new() for _ in range(30)]
    gestures = {text.split(", then say: ")[0] for text in drawn}
    spoken = [text.split("say: ")[1].split() for text in drawn]
    # Each part is drawn afresh (a fixed part would repeat 30 times; chance alone: < 1e-17).
    assert len(gestures) > 1
    assert len({tuple(words[:3]) for words in spoken}) > 1
    assert len({words[3] for words in spoken}) > 1


def test_a_reason_is_required_and_the_mode_must_be_known(acme):
    s = open_case(acme)
    refused(
        "attended.reason_required",
        attended_start,
        actor=s.referee,
        case=s.case,
        mode="onsite",
        reason="  ",
    )
    refused(
        "attended.mode_invalid",
        attended_start,
        actor=s.referee,
        case=s.case,
        mode="looked_at_video",
        reason="no device left",
    )
    assert not AttendedSession.objects.filter(case=s.case).exists()


def test_one_session_at_a_time_per_case(acme):
    s = open_case(acme)
    started(s)
    refused("attended.session_open", started, s)


def test_the_policy_must_accept_s4_for_the_case(acme):
    s = open_case(acme, groups=[])  # T0: the default policy accepts no S4
    refused("evidence.class_not_accepted", started, s)


def test_onsite_needs_an_enrolment_reference_to_compare_with(acme):
    s = open_case(acme, enrolment_reference="")
    refused("attended.no_enrolment_reference", started, s, "onsite")


# --- who may referee ------------------------------------------------------------------------


def test_without_the_trusted_referee_role_the_session_is_refused(acme):
    s = open_case(acme)
    for role in (Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN):
        someone = staff(role, tenant=acme)
        refused(
            "attended.referee_required",
            attended_start,
            actor=someone,
            case=s.case,
            mode="remote_video",
            reason="no device left",
        )
    assert not AttendedSession.objects.filter(case=s.case).exists()


def test_a_referee_never_certified_or_whose_certification_lapsed_is_refused(acme):
    s = open_case(acme)
    never = referee(acme, certified=False)
    lapsed = referee(acme)
    # Time passes: the certification runs out.
    Membership.objects.filter(user=lapsed, role=Role.TRUSTED_REFEREE).update(
        certified_until=timezone.now() - timedelta(minutes=1)
    )
    for user in (never, lapsed):
        refused(
            "attended.certification_lapsed",
            attended_start,
            actor=user,
            case=s.case,
            mode="remote_video",
            reason="no device left",
        )
    assert len(events(acme, "policy.violation", code="attended.certification_lapsed")) == 2
    assert not AttendedSession.objects.filter(case=s.case).exists()


def test_a_certification_lapsing_mid_session_stops_completion(acme):
    s = open_case(acme)
    session = started(s)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    Membership.objects.filter(user=s.referee, role=Role.TRUSTED_REFEREE).update(
        certified_until=timezone.now() - timedelta(seconds=1)
    )
    refused(
        "attended.certification_lapsed",
        attended_complete,
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
    )
    assert not counted(s.case).exists()


def test_the_referee_cannot_be_the_opener_the_same_person_the_taker_or_the_subject(acme):
    s = open_case(acme)
    # The opener themself, given the role and a certification.
    member(s.agent, Role.TRUSTED_REFEREE, tenant=acme)
    certify(s.agent, acme)
    # The opener's person under another account.
    twin = referee(acme, person_id=str(s.agent.person_id))
    # The subject: the account belongs to a person who is also a referee.
    subject_person = uuid.uuid4()
    subject = open_case(acme, groups=["finance"], person_id=subject_person)
    subject_referee = referee(acme, person_id=str(subject_person))
    # The agent who took the case over from its opener.
    taker = staff(Role.AGENT, tenant=acme)
    RecoveryCase.objects.filter(pk=s.case.pk).update(taken_by=taker)
    taker_twin = referee(acme, person_id=str(taker.person_id))

    for user, case in (
        (s.agent, s.case),
        (twin, s.case),
        (taker_twin, s.case),
        (subject_referee, subject.case),
    ):
        refused(
            "sod.referee_is_party",
            attended_start,
            actor=user,
            case=case,
            mode="remote_video",
            reason="no device left",
        )
    assert len(events(acme, "policy.violation", code="sod.referee_is_party")) == 4
    assert not AttendedSession.objects.filter(case__in=[s.case, subject.case]).exists()
    # An independent referee may.
    assert started(s).status == "open"


def test_a_delegate_of_the_subject_cannot_referee(acme):
    delegate_person = uuid.uuid4()
    delegate = make_account_with(acme, person_id=delegate_person)
    s = open_case(acme, groups=["finance"], delegations=[delegate.external_id])
    refused(
        "sod.referee_is_party",
        attended_start,
        actor=referee(acme, person_id=str(delegate_person)),
        case=s.case,
        mode="remote_video",
        reason="no device left",
    )


def test_an_integration_or_ai_principal_is_refused(acme):
    s = open_case(acme)
    integration = key_client(acme).principal
    assistant = key_client(acme, kind="ai_assistant").principal
    for principal, code in (
        (integration, "attended.human_required"),
        (assistant, "ai.action_blocked"),
    ):
        refused(
            code,
            attended_start,
            actor=principal,
            case=s.case,
            mode="remote_video",
            reason="no device left",
        )
    session = started(s)
    for call, kwargs in (
        (attended_coercion_answer, {"observed": False}),
        (
            attended_complete,
            {
                "documents_presented": DOCUMENTS,
                "steps_completed": STEPS,
                "live_challenge_passed": True,
            },
        ),
        (attended_fraud_flag, {"reason": "deepfake"}),
    ):
        refused("attended.human_required", call, actor=integration, session=session, **kwargs)
    session.refresh_from_db()
    assert session.status == "open" and session.coercion_observed is None


def test_a_referee_through_a_delegation_grant_is_refused(acme):
    s = open_case(acme)
    provider = make_provider()
    active_grant(provider, acme, roles=(Role.TRUSTED_REFEREE,), tiers=("T1",))
    outsider = staff(Role.TRUSTED_REFEREE, provider=provider)
    refused(
        "attended.referee_not_delegable",
        attended_start,
        actor=outsider,
        case=s.case,
        mode="remote_video",
        reason="no device left",
    )


def test_a_case_no_person_has_taken_has_no_session(acme):
    s = open_case(acme)
    assistant = key_client(acme, kind="ai_assistant").principal
    # As an AI-drafted case that no person has taken yet.
    RecoveryCase.objects.filter(pk=s.case.pk).update(opened_by=assistant, taken_by=None)
    refused("attended.case_not_taken", started, s)


def test_only_the_sessions_referee_answers_and_completes(acme):
    s = open_case(acme)
    session = started(s)
    other = referee(acme)
    refused(
        "attended.not_the_referee",
        attended_coercion_answer,
        actor=other,
        session=session,
        observed=False,
    )
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    refused(
        "attended.not_the_referee",
        attended_complete,
        actor=other,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
    )


# --- the coercion question ------------------------------------------------------------------


def test_the_coercion_question_blocks_completion(acme):
    s = open_case(acme)
    session = started(s)
    refused(
        "attended.coercion_unanswered",
        attended_complete,
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
    )
    session.refresh_from_db()
    assert session.status == "open" and session.evidence_id is None
    assert not counted(s.case).exists()
    # The database refuses a completed session without the answer as well.
    with pytest.raises(IntegrityError), transaction.atomic():
        AttendedSession.objects.filter(pk=session.pk).update(
            status="completed", live_challenge_passed=True
        )


def test_coercion_observed_ends_the_session_and_raises_an_alert(acme):
    s = open_case(acme)
    session = started(s)
    refused(
        "attended.coercion_note_required",
        attended_coercion_answer,
        actor=s.referee,
        session=session,
        observed=True,
    )

    attended_coercion_answer(
        actor=s.referee,
        session=session,
        observed=True,
        note="Someone off camera was telling her what to say.",
    )

    session.refresh_from_db()
    assert session.status == "failed" and session.coercion_observed is True
    assert session.coercion_answered_at is not None and session.ended_at is not None
    answered = events(acme, "verification.attended_coercion_answered")[-1]
    assert answered.data == {
        "session": session.pk,
        "observed": True,
        "note": "Someone off camera was telling her what to say.",
    }
    assert events(acme, "alert.raised", type="coercion_observed", session=session.pk)
    assert events(acme, "verification.attended_ended", session=session.pk)[-1].data["reason"] == (
        "coercion_observed"
    )
    refused(
        "attended.session_closed",
        attended_complete,
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
    )
    assert not counted(s.case).exists()


def test_the_coercion_question_is_answered_once(acme):
    s = open_case(acme)
    session = started(s)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    refused(
        "attended.coercion_already_answered",
        attended_coercion_answer,
        actor=s.referee,
        session=session,
        observed=True,
        note="changed my mind",
    )


# --- completing -----------------------------------------------------------------------------


def test_a_completed_remote_session_is_an_accepted_s4_from_the_attended_verifier(acme):
    s = open_case(acme)
    session, evidence = completed(s)

    assert evidence is not None and evidence.result == "accepted"
    assert (evidence.signal_class, evidence.method) == ("S4", "attended_remote")
    assert (evidence.verifier, evidence.verifier_ref) == ("attended_session", session.pk)
    assert evidence.collected_by == s.referee
    assert session.status == "completed" and session.evidence == evidence
    # The session record: why, what was presented, which steps were done.
    assert session.documents_presented == DOCUMENTS and session.steps_completed == STEPS
    assert evidence.details["documents_presented"] == DOCUMENTS
    assert evidence.details["steps_completed"] == STEPS
    assert evidence.details["reason"] == session.reason
    assert evidence.details["enrolment_reference"] == "ENR-7731"
    ended = events(acme, "verification.attended_ended", session=session.pk)[-1]
    assert ended.data["status"] == "completed" and ended.data["evidence"] == evidence.pk
    assert ended.data["documents_presented"] == DOCUMENTS
    # T1 with S4 alone: the case may go for approval.
    assert case_submit(actor=s.agent, case=s.case).status == "pending_approval"


def test_the_session_record_must_say_what_was_presented_and_done(acme):
    s = open_case(acme)
    session = started(s)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    for documents, steps in (([], STEPS), (DOCUMENTS, []), (["x" * 201], STEPS), ([""], STEPS)):
        refused(
            "attended.record_invalid",
            attended_complete,
            actor=s.referee,
            session=session,
            documents_presented=documents,
            steps_completed=steps,
            live_challenge_passed=True,
        )
    session.refresh_from_db()
    assert session.status == "open"


def test_a_failed_live_challenge_ends_the_session_with_no_evidence(acme):
    s = open_case(acme)
    session = started(s)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    result = attended_complete(
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=["document check", "live challenge (wrong words)"],
        live_challenge_passed=False,
    )
    assert result is None
    session.refresh_from_db()
    assert session.status == "failed" and session.live_challenge_passed is False
    assert session.steps_completed == ["document check", "live challenge (wrong words)"]
    assert not Evidence.objects.filter(case=s.case).exists()
    assert events(acme, "alert.raised", type="attended_live_challenge_failed")
    refused("evidence.insufficient", case_submit, actor=s.agent, case=s.case)


def test_onsite_requires_the_biometric_comparison(acme):
    s = open_case(acme)
    session = started(s, "onsite")
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    kwargs = {
        "actor": s.referee,
        "session": session,
        "documents_presented": DOCUMENTS,
        "steps_completed": STEPS,
        "live_challenge_passed": True,
    }
    refused("attended.biometric_required", attended_complete, **kwargs)
    session.refresh_from_db()
    assert session.status == "open" and not counted(s.case).exists()

    evidence = attended_complete(**kwargs, biometric_compared=True)

    assert evidence.method == "attended_onsite" and evidence.result == "accepted"
    assert evidence.details["biometric_compared"] is True


def test_a_remote_session_cannot_claim_a_biometric_comparison(acme):
    s = open_case(acme)
    session = started(s)
    attended_coercion_answer(actor=s.referee, session=session, observed=False)
    refused(
        "attended.biometric_onsite_only",
        attended_complete,
        actor=s.referee,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
        biometric_compared=True,
    )


def test_an_ial3_t2_account_is_recovered_only_by_an_onsite_session(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    s = open_case(acme, agent=officer, admin_roles=["global_admin"], proofing_level="IAL3")
    assert s.case.tier == "T2"
    completed(s, "remote_video")
    assert counted(s.case).filter(method="attended_remote").exists()

    refused("evidence.attended_s4_required", case_submit, actor=officer, case=s.case)

    _onsite, evidence = completed(s, "onsite", biometric=True)
    assert evidence.method == "attended_onsite" and evidence.result == "accepted"
    assert case_submit(actor=officer, case=s.case).status == "pending_approval"


# --- the fraud flag -------------------------------------------------------------------------


def test_the_fraud_flag_freezes_the_case_even_before_the_coercion_answer(acme):
    s = open_case(acme)
    session = started(s)

    case = attended_fraud_flag(
        actor=s.referee, session=session, reason="The face glitched at the edges: a deepfake."
    )

    assert case.status == "frozen" and case.ended_at is not None
    assert "deepfake" in case.end_reason
    session.refresh_from_db()
    assert session.status == "fraud_flagged" and session.ended_at is not None
    flagged = events(acme, "case.fraud_flagged")[-1]
    assert flagged.data["session"] == session.pk and flagged.data["from"] == "collecting_evidence"
    assert events(acme, "alert.raised", type="attended_fraud_flag", session=session.pk)
    # Nothing goes on after it.
    refused(
        "attended.session_closed",
        attended_coercion_answer,
        actor=s.referee,
        session=session,
        observed=False,
    )
    refused("case.wrong_state", started, s)
    refused(
        "attended.already_flagged",
        attended_fraud_flag,
        actor=s.referee,
        session=session,
        reason="again",
    )


def test_the_fraud_flag_revokes_the_artifacts_of_an_executed_case(acme):
    s = open_case(acme)
    session, _evidence = completed(s)
    owner_email(s.case)  # where the link goes is part of what is approved
    case = approved(case_submit(actor=s.agent, case=s.case))
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case = case_release_cooled(case=case)
    assert set(notices_sent(acme)) <= {"sent"}  # what the workers did meanwhile
    case = case_execute(  # a fresh passkey step-up for this execution
        actor=s.agent, case=case, step_up=step_up(s.agent, case=case, action="execute")
    )
    assert last_recovery_mail()
    artifact = RecoveryArtifact.objects.get(case=case)
    assert artifact.status == "active"

    # The referee learns afterwards that the passport was forged.
    case = attended_fraud_flag(actor=s.referee, session=session, reason="The passport was forged.")

    assert case.status == "frozen"
    artifact.refresh_from_db()
    assert artifact.status == "revoked"
    flagged = events(acme, "case.fraud_flagged")[-1]
    assert flagged.data["artifacts_revoked"] == 1 and flagged.data["from"] == "executed"
    assert events(acme, "artifact.revoked")


def test_a_security_officer_may_flag_fraud_and_an_agent_may_not(acme):
    s = open_case(acme)
    session = started(s)
    refused(
        "attended.fraud_flag_forbidden",
        attended_fraud_flag,
        actor=s.agent,
        session=session,
        reason="looks odd",
    )
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = attended_fraud_flag(actor=officer, session=session, reason="Known fraud ring number.")
    assert case.status == "frozen"
    assert events(acme, "case.fraud_flagged")[-1].data["flagged_by_referee"] is False


# --- the role grants nothing else -----------------------------------------------------------


def test_a_pure_referee_reads_the_case_page_but_cannot_work_the_case(acme):
    s = open_case(acme)
    page = signed_in_client(s.referee).get(f"/t/{acme.slug}/cases/{s.case.pk}/")
    assert page.status_code == 200
    refused("case.role_required", case_submit, actor=s.referee, case=s.case)
    refused(
        "case.role_required",
        case_open,
        actor=s.referee,
        account=s.account,
        case_type="unlock",
        channel="phone",
    )
    completed(s)
    case = case_submit(actor=s.agent, case=s.case)
    # The referee who ran the session collected evidence; a referee who did not lacks the role.
    refused("sod.evidence_collector", decide, case, s.referee)
    refused("approval.role_required", decide, case, referee_certified(acme))


def test_the_referee_predicates_are_pure_and_give_reason_codes():
    now = timezone.now()
    person, other = uuid.uuid4(), uuid.uuid4()
    human = SimpleNamespace(is_human=True, person_id=other)
    case = SimpleNamespace(
        tier="T1",
        case_type="unlock",
        taken_by_id=None,
        taken_by=None,
        opened_by=human,
        opened_by_person=other,
        account=SimpleNamespace(person_id=None),
    )
    referee_access = TenantAccess(tenant_id=1, roles=frozenset({Role.TRUSTED_REFEREE}))
    agent_access = TenantAccess(tenant_id=1, roles=frozenset({Role.AGENT}))
    granted = TenantAccess(
        tenant_id=1, roles=frozenset({Role.TRUSTED_REFEREE}), provider_id=2, grant_id=3
    )
    assert can_referee_case(referee_access, case)
    assert can_referee_case(None, case).code == "tenant.no_access"
    assert can_referee_case(agent_access, case).code == "attended.referee_required"
    assert can_referee_case(granted, case).code == "attended.referee_not_delegable"
    assert can_open_case_page(referee_access, case)
    assert can_open_case_page(granted, case).code == "attended.referee_not_delegable"

    def run(**kwargs):
        values = {"referee_person": person, "certified_until": now + timedelta(days=1)}
        return can_run_attended_session(referee_access, case, now=now, **(values | kwargs))

    assert run()
    assert run(certified_until=None).code == "attended.certification_lapsed"
    assert run(certified_until=now).code == "attended.certification_lapsed"
    assert run(referee_person=other).code == "sod.referee_is_party"
    assert run(subject_people={person}).code == "sod.referee_is_party"  # a delegate
    case.account.person_id = person  # the subject
    assert run().code == "sod.referee_is_party"
    case.account.person_id = None
    assert case_taker(case) is None  # an AI draft nobody has taken yet
    taker = SimpleNamespace(is_human=True, person_id=uuid.uuid4())
    case.taken_by_id, case.taken_by = 7, taker
    assert case_taker(case) is taker
    assert run(referee_person=taker.person_id).code == "sod.referee_is_party"  # the taker


# --- over the API ---------------------------------------------------------------------------


def attended_url(s: Setup, tail: str = "") -> str:
    return api(s.tenant, f"cases/{s.case.pk}/attended/{tail}")


def test_api_happy_path_start_answer_complete(acme):
    s = open_case(acme)
    client = staff_api_client(s.referee)

    start = client.post(
        attended_url(s), {"mode": "remote_video", "reason": "No device left."}, format="json"
    )
    assert start.status_code == 201, start.content
    body = start.json()
    assert body["status"] == "open" and body["referee"] == s.referee.username
    assert body["live_challenge"] and body["coercion_observed"] is None and start["ETag"]
    sid = body["id"]

    early = client.post(
        attended_url(s, f"{sid}/complete/"),
        {"documents_presented": DOCUMENTS, "steps_completed": STEPS, "live_challenge_passed": True},
        format="json",
    )
    assert early.status_code == 403 and early.json()["code"] == "attended.coercion_unanswered"

    answer = client.post(attended_url(s, f"{sid}/coercion/"), {"observed": False}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["coercion_observed"] is False

    done = client.post(
        attended_url(s, f"{sid}/complete/"),
        {"documents_presented": DOCUMENTS, "steps_completed": STEPS, "live_challenge_passed": True},
        format="json",
    )
    assert done.status_code == 200, done.content
    result = done.json()
    assert result["session"]["status"] == "completed"
    assert result["session"]["documents_presented"] == DOCUMENTS
    assert result["evidence"]["signal_class"] == "S4"
    assert result["evidence"]["method"] == "attended_remote"
    assert result["evidence"]["result"] == "accepted"
    assert result["session"]["evidence_id"] == result["evidence"]["id"]


def test_api_fraud_flag_and_malformed_input(acme):
    s = open_case(acme)
    client = staff_api_client(s.referee)
    bad = client.post(attended_url(s), {"mode": "onsite"}, format="json")
    assert bad.status_code == 400
    sid = client.post(
        attended_url(s), {"mode": "remote_video", "reason": "No device left."}, format="json"
    ).json()["id"]
    empty = client.post(
        attended_url(s, f"{sid}/complete/"),
        {"documents_presented": [], "steps_completed": STEPS, "live_challenge_passed": True},
        format="json",
    )
    assert empty.status_code == 400

    flag = client.post(attended_url(s, f"{sid}/fraud/"), {"reason": "Deepfake."}, format="json")

    assert flag.status_code == 200, flag.content
    assert flag.json()["case"]["status"] == "frozen"
    assert flag.json()["session"]["status"] == "fraud_flagged"


def test_api_refuses_keys_other_referees_and_other_tenants(acme, globex):
    s = open_case(acme)
    payload = {"mode": "remote_video", "reason": "No device left."}
    integration = key_client(acme).post(attended_url(s), payload, format="json")
    assert integration.status_code == 403 and integration.json()["code"] == "auth.staff_only"
    assistant = key_client(acme, kind="ai_assistant").post(attended_url(s), payload, format="json")
    assert assistant.status_code == 403 and assistant.json()["code"] == "ai.action_blocked"
    agent = staff_api_client(s.agent).post(attended_url(s), payload, format="json")
    # An agent's roles imply no attended:run scope (ROLE_SCOPES).
    assert agent.status_code == 403 and agent.json()["code"] == "auth.scope_missing"

    sid = staff_api_client(s.referee).post(attended_url(s), payload, format="json").json()["id"]
    stranger = staff_api_client(referee(globex))
    for tail in ("", f"{sid}/coercion/"):
        response = stranger.post(
            attended_url(s, tail), payload | {"observed": False}, format="json"
        )
        assert response.status_code == 404
    # Our session under another case of ours: as missing as an unknown id.
    other = open_case(acme)
    probe = staff_api_client(s.referee).post(
        api(acme, f"cases/{other.case.pk}/attended/{sid}/coercion/"),
        {"observed": False},
        format="json",
    )
    assert probe.status_code == 404
    assert AttendedSession.objects.get(pk=sid).coercion_observed is None


# --- certification --------------------------------------------------------------------------


def test_referee_certify_rules(acme, globex):
    user = make_user()
    membership = member(user, Role.TRUSTED_REFEREE, tenant=acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    soon = timezone.now() + timedelta(days=90)

    for actor, code in (
        (staff(Role.SECURITY_OFFICER, tenant=acme), "tenant.admin_required"),
        (staff(Role.TENANT_ADMIN, tenant=globex), "tenant.no_access"),
    ):
        refused(code, referee_certify, actor=actor, membership=membership, until=soon)
    refused(
        "referee.until_invalid",
        referee_certify,
        actor=admin,
        membership=membership,
        until=timezone.now() - timedelta(days=1),
    )
    refused(
        "referee.until_too_long",
        referee_certify,
        actor=admin,
        membership=membership,
        until=timezone.now() + timedelta(days=400),
    )
    agent_membership = member(make_user(), Role.AGENT, tenant=acme)
    refused(
        "referee.role_required",
        referee_certify,
        actor=admin,
        membership=agent_membership,
        until=soon,
    )
    # A tenant_admin who is also a referee cannot certify themself.
    member(admin, Role.TRUSTED_REFEREE, tenant=acme)
    own = Membership.objects.get(user=admin, tenant=acme, role=Role.TRUSTED_REFEREE)
    refused("sod.certifier_is_referee", referee_certify, actor=admin, membership=own, until=soon)
    provider_referee = member(make_user(), Role.TRUSTED_REFEREE, provider=make_provider())
    refused(
        "referee.tenant_membership_required",
        referee_certify,
        actor=admin,
        membership=provider_referee,
        until=soon,
    )
    assert Membership.objects.get(pk=membership.pk).certified_until is None

    certified = referee_certify(actor=admin, membership=membership, until=soon)

    assert certified.certified_until == soon
    event = events(acme, "referee.certified")[-1]
    assert event.data["user"] == user.username and event.actor_label == admin.username


def test_changing_the_role_drops_the_certification(acme):
    user = referee(acme)
    membership = Membership.objects.get(user=user, tenant=acme, role=Role.TRUSTED_REFEREE)
    assert membership.certified_until is not None
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    membership = membership_change_role(actor=admin, membership=membership, role=Role.AGENT)
    membership = membership_change_role(
        actor=admin, membership=membership, role=Role.TRUSTED_REFEREE
    )
    assert membership.certified_until is None
    s = open_case(acme)
    refused(
        "attended.certification_lapsed",
        attended_start,
        actor=user,
        case=s.case,
        mode="remote_video",
        reason="no device left",
    )


def test_the_role_is_given_through_the_membership_service(acme):
    user = make_user()
    membership = member(user, Role.TRUSTED_REFEREE, tenant=acme)
    assert membership.role == "trusted_referee" and membership.is_active
    assert events(acme, "membership.created")[-1].data["role"] == "trusted_referee"

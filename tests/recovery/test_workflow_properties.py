"""Random sequences of service calls by random actors never break the workflow's promises.

Whatever order agents, supervisors, security officers, referees, an insider's second account
and an MSP agent call the services in (codes sent and read back right or wrong, attestations
confirmed by the manager or by someone else, proofing verdicts that pass, mismatch, fail or are
replayed, attended sessions that pass, fail, skip the coercion question or are flagged, context
recorded, results asserted), no case reaches pending approval, cooling-off or ready without the
policy's evidence and approvals; every accepted signal that counts was made by a verifier whose
record exists, belongs to the same case and is in its success state; no approval is by the
opener's person or the subject; and the audit chain never forks.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.choices import COUNTING_VERIFIERS, CaseStatus, Decision, Verifier
from recovery.cases.models import Approval, Evidence, RecoveryCase
from recovery.cases.services import (
    ONSITE_BIOMETRIC_METHOD,
    approval_decide,
    case_cancel,
    case_open,
    case_release_cooled,
    case_snapshot_hash,
    case_submit,
    context_record,
    evidence_refusal_record,
)
from recovery.challenges.choices import ChallengeKind, ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import (
    attestation_confirm,
    attestation_request,
    challenge_send,
    challenge_verify,
)
from recovery.choices import ProofingLevel
from recovery.models import ContactMethod, ProtectedAccount
from recovery.policy.selectors import policy_active
from recovery.proofing.attended import (
    attended_coercion_answer,
    attended_complete,
    attended_fraud_flag,
    attended_start,
)
from recovery.proofing.choices import AttendedStatus, ProofingStatus
from recovery.proofing.models import AttendedSession, ProofingSession
from recovery.proofing.services import proofing_start, proofing_verdict_receive
from tenants.choices import Role, Tier
from tenants.exceptions import DomainError
from tenants.models import Membership

from ..factories import active_grant, make_account_with, make_user, member, staff, step_up, unique
from .casework import code_in, link_token_in, referee_certified
from .verifiers import dev_provider

pytestmark = pytest.mark.django_db
CASE_TYPES = ("password_reset", "mfa_reset", "unlock")
SIGNAL_WORDS = ("S1", "S2", "S3", "S4", "S5", "recovery_code", "passkey", "caller_id")
PENDING_OR_LATER = {CaseStatus.PENDING_APPROVAL, CaseStatus.COOLING_OFF, CaseStatus.READY}
COOLING_OR_LATER = {CaseStatus.COOLING_OFF, CaseStatus.READY}
# Steps aimed (mostly) at cases still collecting evidence.
COLLECTING_STEPS = frozenset(
    {"send", "verify", "attest", "confirm", "prove", "attend", "context", "assert", "submit"}
)
WORKERS = ("agent", "agent2", "security", "msp_agent")
APPROVERS = ("supervisor", "security", "security2", "msp_supervisor", "agent", "agent_twin")
REFEREES = ("referee", "referee", "referee", "lapsed_referee", "security")
# What a verifier's record must say for the evidence it made to count (the fraud flag may come
# after a completed attended session: then the case must be frozen).
SUCCESS = {
    Verifier.CHALLENGE: (VerificationChallenge, {ChallengeStatus.VERIFIED}),
    Verifier.ATTESTATION: (VerificationChallenge, {ChallengeStatus.VERIFIED}),
    Verifier.PROOFING_PROVIDER: (ProofingSession, {ProofingStatus.PASSED}),
    Verifier.ATTENDED_SESSION: (AttendedSession, {AttendedStatus.COMPLETED}),
}
KIND_OF_VERIFIER = {Verifier.CHALLENGE: ChallengeKind.CODE, Verifier.ATTESTATION: "attestation"}


@pytest.fixture
def world(acme, deskco):
    people = {
        "agent": staff(Role.AGENT, tenant=acme),
        "agent2": staff(Role.AGENT, tenant=acme),
        "supervisor": staff(Role.SUPERVISOR, tenant=acme),
        "security": staff(Role.SECURITY_OFFICER, tenant=acme),
        "security2": staff(Role.SECURITY_OFFICER, tenant=acme),
        "auditor": staff(Role.AUDITOR, tenant=acme),
        "msp_agent": staff(Role.AGENT, provider=deskco),
        "msp_supervisor": staff(Role.SUPERVISOR, provider=deskco),
        "referee": referee_certified(acme),
        "lapsed_referee": referee_certified(acme),
    }
    Membership.objects.filter(user=people["lapsed_referee"]).update(
        certified_until=timezone.now() - timedelta(minutes=1)
    )
    member(people["agent"], Role.SUPERVISOR, tenant=acme)  # an agent who may also approve
    twin = make_user(person_id=str(people["agent"].person_id))
    member(twin, Role.SUPERVISOR, tenant=acme)
    people["agent_twin"] = twin
    # The subjects' manager: an account of the tenant whose person signs in to attest.
    manager = make_user()
    people["manager"] = manager
    boss = make_account_with(acme, external_id=unique("boss"), person_id=str(manager.person_id))
    active_grant(deskco, acme, roles=(Role.AGENT, Role.SUPERVISOR), tiers=("T0", "T1"))
    return {"tenant": acme, "people": people, "boss": boss.external_id}


def fresh_accounts(world):
    """New subjects for each example, so earlier examples' cases are not repeat attempts."""
    tenant, people = world["tenant"], world["people"]
    common = {"manager_external_id": world["boss"], "enrolment_reference": unique("enrol")}
    world["accounts"] = [
        make_account_with(tenant, **common),
        make_account_with(tenant, groups=["Finance"], **common),
        make_account_with(
            tenant,
            admin_roles=["Helpdesk Administrator"],
            proofing_level=ProofingLevel.IAL3,
            **common,
        ),
        make_account_with(tenant, person_id=str(people["supervisor"].person_id), **common),
        make_account_with(tenant, groups=["Payroll"], **common),  # opened, no evidence yet
    ]
    old = timezone.now() - timedelta(days=400)
    world["contacts"] = [
        ContactMethod.objects.create(
            tenant=tenant,
            account=account,
            kind=kind,
            value=value,
            source="hris",
            registered_at=old,
            sim_changed_at=sim,
        )
        for n, account in enumerate(world["accounts"])
        for kind, value, sim in (
            ("email", f"owner{n}@x.test", None),
            ("mobile", "+15550000002", timezone.now()),  # swapped SIM: never a channel
            ("email", f"fresh{n}@x.test", None),
            ("manager", f"boss{n}@x.test", None),
        )
    ]
    # The newest email is inside the quarantine window.
    ContactMethod.objects.filter(value__startswith="fresh").update(registered_at=timezone.now())
    world["codes"], world["tokens"], world["verdicts"] = {}, {}, []


def fresh_step_up(user):
    TOTPDevice.objects.filter(user=user).update(last_t=-1)  # let the device accept a code now
    return step_up(user)


def _challenges(case, kind):
    return list(VerificationChallenge.objects.filter(case=case, kind=kind).order_by("pk"))


def prove(world, actor, case, b, flag):
    """A proofing session and a verdict from the dev provider: pass, mismatch, fail, replay."""
    session = (
        ProofingSession.objects.filter(case=case, status=ProofingStatus.STARTED)
        .order_by("pk")
        .last()
    )
    if session is None or flag:
        session = proofing_start(actor=actor, case=case, provider="dev").session
    variant = b % 4
    if variant == 3 and world["verdicts"]:
        body, headers = world["verdicts"][b % len(world["verdicts"])]  # a replay
    else:
        reference = case.account.enrolment_reference if variant != 1 else "someone-else"
        outcome = "fail" if variant == 2 else "pass"
        body, headers = dev_provider().verdict_for(
            session, outcome=outcome, subject_reference=reference
        )
        world["verdicts"].append((body, headers))
    proofing_verdict_receive(provider="dev", body=body, headers=headers)


def attend(people, who, case, b, flag):
    """An attended session run to one of its ends (R-06, R-07, R-09)."""
    referee = people[REFEREES[who % len(REFEREES)]]
    mode = ("remote_video", "onsite")[b % 2]
    variant = (b // 2) % 5
    session = attended_start(actor=referee, case=case, mode=mode, reason="no channel left")
    if variant == 1:  # completing before the coercion question is refused
        attended_complete(
            actor=referee,
            session=session,
            documents_presented=["passport"],
            steps_completed=["document check"],
            live_challenge_passed=True,
            biometric_compared=mode == "onsite",
        )
    attended_coercion_answer(
        actor=referee, session=session, observed=variant == 2 and flag, note="pressured"
    )
    attended_complete(
        actor=referee,
        session=session,
        documents_presented=["passport"],
        steps_completed=["document check", "live challenge"],
        live_challenge_passed=variant != 3,
        biometric_compared=mode == "onsite" and (flag or variant != 0),
    )
    if variant == 4:  # a forged document noticed after the session ended
        attended_fraud_flag(actor=referee, session=session, reason="forged passport")


def run(world, op):
    people, tenant = world["people"], world["tenant"]
    mine = [a.pk for a in world["accounts"]]
    cases = list(RecoveryCase.objects.for_tenant(tenant).filter(account__in=mine).order_by("pk"))
    kind, who, a, b, flag = op
    # Mostly someone whose role fits the step, sometimes anyone at all (the insider's twin,
    # the auditor, the MSP staff, a referee …): refusals must leave nothing behind.
    fitting = APPROVERS if kind == "decide" else WORKERS
    pool = fitting if who < 14 else list(people)
    actor = people[pool[who % len(pool)]]
    if kind == "decide":  # aim approvals at cases that can take them
        cases = [c for c in cases if c.status == CaseStatus.PENDING_APPROVAL] or cases
    elif kind in COLLECTING_STEPS and b % 4:  # and evidence at cases collecting it, mostly
        cases = [c for c in cases if c.status == CaseStatus.COLLECTING_EVIDENCE] or cases
    case = cases[a % len(cases)] if cases else None
    if kind == "open":
        account = world["accounts"][a % len(world["accounts"])]
        case_open(actor=actor, account=account, case_type=CASE_TYPES[b % 3], channel="phone")
    elif case is None:
        return
    elif kind == "send":  # mostly the case's own contacts, sometimes another account's
        theirs = [c for c in world["contacts"] if c.account_id == case.account_id]
        pool = theirs if b % 5 else world["contacts"]
        challenge = challenge_send(actor=actor, case=case, contact_method=pool[b % len(pool)])
        world["codes"][challenge.pk] = code_in(mail.outbox[-1].body)
    elif kind == "verify":  # the code read back, a wrong one, or another case's code
        sent = _challenges(case, ChallengeKind.CODE) or list(
            VerificationChallenge.objects.filter(kind=ChallengeKind.CODE, pk__in=world["codes"])
        )
        if sent:
            challenge = sent[b % len(sent)]
            code = world["codes"].get(challenge.pk, "") if flag else "00000000"
            challenge_verify(actor=actor, case=case, challenge=challenge, code=code)
    elif kind == "attest":
        challenge = attestation_request(actor=actor, case=case)
        world["tokens"][challenge.pk] = link_token_in(mail.outbox[-1].body, "attest")
    elif kind == "confirm":  # by the manager in their own session, or by someone else
        asked = _challenges(case, ChallengeKind.ATTESTATION)
        if asked:
            token = world["tokens"].get(asked[b % len(asked)].pk, "")
            attestation_confirm(actor=people["manager"] if flag else actor, token=token)
    elif kind == "prove":
        prove(world, actor, case, b, flag)
    elif kind == "attend":
        attend(people, who, case, b, flag)
    elif kind == "context":  # what the caller says: kept, never counted
        word = SIGNAL_WORDS[b % len(SIGNAL_WORDS)]
        context_record(actor=actor, case=case, topic=word, statement=f"caller says {word} ok")
    elif kind == "assert":
        if flag:  # an accepted row asserted before verifiers existed (kept as history)
            Evidence.objects.create(
                tenant=tenant,
                case=case,
                signal_class=SIGNAL_WORDS[b % 5],
                method="asserted",
                result="accepted",
                collected_by=actor,
                verifier=Verifier.LEGACY_ASSERTION,
                digest="0" * 64,
            )
        else:  # an old client asserting a result: refused and put on the trail
            evidence_refusal_record(actor=actor, case=case, code="evidence.verifier_required")
    elif kind == "submit":
        case_submit(actor=actor, case=case)
    elif kind == "decide":
        approval_decide(
            actor=actor,
            case=case,
            reason="checked",
            decision=Decision.APPROVED if flag else Decision.DENIED,
            step_up=fresh_step_up(actor),
        )
    elif kind == "cool":
        RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=timezone.now())
        case_release_cooled(case=case)
    elif kind == "cancel":
        case_cancel(actor=actor, case=case, reason="caller hung up")
    elif kind == "raise_tier":
        ProtectedAccount.objects.filter(pk=case.account_id).update(admin_roles=["Admin"])


def verifier_backed(case) -> list[Evidence]:
    """The case's accepted rows that count, each checked against its verifier's record."""
    backed = []
    for row in Evidence.objects.filter(case=case, result="accepted"):
        if row.verifier == Verifier.LEGACY_ASSERTION:
            continue  # history: kept, never counted (checked below through the submissions)
        assert row.verifier in COUNTING_VERIFIERS, row
        model, states = SUCCESS[row.verifier]
        record = model.objects.filter(pk=row.verifier_ref).first()
        assert record is not None, row
        assert record.case_id == case.pk and record.evidence_id == row.pk, row
        if model is VerificationChallenge:
            assert record.kind == KIND_OF_VERIFIER[row.verifier], row
        if record.status == AttendedStatus.FRAUD_FLAGGED:
            assert case.status == CaseStatus.FROZEN, case
        else:
            assert record.status in states, (row, record.status)
        backed.append(row)
    return backed


def assert_promises_kept(world):
    tenant = world["tenant"]
    policy = policy_active(tenant)
    submissions = {}
    for submitted in AuditEvent.objects.filter(tenant=tenant, action="case.submitted"):
        submissions.setdefault(int(submitted.target_id), []).append(submitted.data["classes"])
    cases = RecoveryCase.objects.for_tenant(tenant).filter(account__in=world["accounts"])
    for case in cases.select_related("account"):
        req = policy.requirements(case.tier, case.case_type)
        approvals = list(Approval.objects.for_tenant(tenant).filter(case=case))
        for approval in approvals:
            assert approval.approver_person != case.opened_by_person
            assert approval.approver_person != case.account.person_id
        backed = verifier_backed(case)
        classes = {row.signal_class for row in backed}
        # Every submission (the step into pending approval) counted only verifier-made classes.
        for counted in submissions.get(case.pk, []):
            assert set(counted) <= classes, (case, counted, classes)
        if case.status not in PENDING_OR_LATER or case.tier == Tier.T0:
            continue
        assert req.evidence_met(classes), case
        if case.tier == Tier.T2 and case.account.proofing_level == ProofingLevel.IAL3:
            onsite = [r for r in backed if r.method == ONSITE_BIOMETRIC_METHOD]
            assert any(r.details["biometric_compared"] for r in onsite), case
        if case.status not in COOLING_OR_LATER:
            continue
        snapshot = case_snapshot_hash(case)
        live = [
            a
            for a in approvals
            if a.invalidated_at is None
            and a.decision == Decision.APPROVED
            and a.snapshot_hash == snapshot
        ]
        assert len(live) >= req.approvals_required, case
        officers = [a for a in live if Role.SECURITY_OFFICER in a.roles]
        assert len(officers) >= req.min_security_officer_approvals, case
        if req.tenant_approver_required_when_msp and case.opened_via_provider_id:
            assert any(not a.via_grant for a in live), case
    assert verify_chain(tenant.pk, tenant.slug).intact


SMALL = st.sampled_from(range(21))
OPS = st.tuples(
    st.sampled_from(
        ["decide"] * 3
        + ["send", "verify", "verify", "attest", "confirm", "prove", "prove", "attend", "attend"]
        + ["context"]
        + ["assert", "assert", "open", "submit", "submit", "cool", "cancel", "raise_tier"]
    ),
    SMALL,
    SMALL,
    SMALL,
    st.booleans(),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=6, max_size=24))
def test_random_service_sequences_keep_every_promise(world, ops):
    fresh_accounts(world)
    # Each example starts with one case per subject. For four of them a security officer sends
    # a code to the owner's long-held address and reads it back (S2), the manager attests from
    # their own session (S3), then submits; the IAL3 admin's case also gets a provider's
    # passing proofing verdict (S4), which is not the onsite session R-06 asks for, so its
    # submission is refused. The fifth case holds only an S4 asserted before verifiers
    # existed (a legacy row, as the migration kept it), which counts for nothing: its
    # submission is refused too. The random steps then add verifier calls, context and
    # asserted results, approve, deny, cancel, raise tiers … in any order, by fitting and
    # unfitting actors alike. (Prefix steps use b % 4 == 0, so `a` indexes all of the
    # example's cases in opening order.)
    prefix = [
        step
        for n in range(4)
        for step in (
            ("open", 0, n, n, True),
            ("send", 2, n, 4, True),  # b=4: the owner's long-held email
            ("verify", 2, n, 0, True),
            ("attest", 2, n, 0, True),
            ("confirm", 2, n, 0, True),
            *([("prove", 2, n, 0, True)] if n == 2 else []),
            ("submit", 2, n, 0, True),
        )
    ] + [("open", 0, 4, 1, True), ("assert", 0, 4, 8, True), ("submit", 0, 4, 8, True)]
    for op in prefix + ops:
        try:
            with transaction.atomic():
                run(world, op)
        except (DomainError, IntegrityError):
            pass  # a refusal is a fine outcome; what matters is the state it leaves
    cases = RecoveryCase.objects.for_tenant(world["tenant"]).filter(account__in=world["accounts"])
    statuses = set(cases.values_list("status", flat=True))
    verifiers = set(
        Evidence.objects.filter(case__in=cases, result="accepted").values_list(
            "verifier", flat=True
        )
    )
    ial3 = cases.filter(account=world["accounts"][2]).order_by("pk").first()
    event(f"IAL3 admin's first case: {ial3.status if ial3 else None}")
    legacy = cases.filter(account=world["accounts"][4]).order_by("pk").first()
    event(f"case opened with a legacy S4 only: {legacy.status if legacy else None}")
    event(f"reached cooling-off or ready: {bool(statuses & COOLING_OR_LATER)}")
    for verifier in sorted(verifiers):
        event(f"accepted by {verifier}")
    assert_promises_kept(world)

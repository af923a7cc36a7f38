"""THREATS.md scenarios as service-level tests (the parts the workflow owns today)."""

from datetime import timedelta

import pytest
from django.urls import get_resolver
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus, Route
from recovery.cases.methods import method_get
from recovery.cases.models import Evidence
from recovery.cases.services import (
    APPROVALS_PER_HOUR,
    VELOCITY_THRESHOLD,
    accepted_classes,
    case_open,
    case_submit,
    context_record,
)
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import challenge_send
from recovery.policy.errors import PolicyInvalid
from recovery.policy.services import policy_draft_create
from tenants.choices import Role
from tenants.exceptions import PolicyDenied

from ..factories import make_account_with, staff
from .casework import attended_passed, contact, decide, signal

pytestmark = pytest.mark.django_db


def alerts(tenant, kind):
    return AuditEvent.objects.filter(tenant=tenant, action="alert.raised", data__type=kind)


def test_as02_sim_swap_attempt_raises_an_alert(acme):
    agent = staff(Role.AGENT, tenant=acme)
    victim = make_account_with(acme, groups=["Finance"])
    swapped = contact(victim, sim_days=2)
    case = case_open(actor=agent, account=victim, case_type="mfa_reset", channel="phone")
    with pytest.raises(PolicyDenied) as refused:
        challenge_send(actor=agent, case=case, contact_method=swapped)
    assert refused.value.code == "evidence.sim_change_recent"
    assert alerts(acme, "sim_swap_recovery_attempt").count() == 1
    # The attacker holding the new SIM gets no code to read back, and nothing counts.
    assert not VerificationChallenge.objects.filter(case=case).exists()
    assert not Evidence.objects.filter(case=case).exists()


def earlier_decisions(tenant, approver, opener, count, **extra):
    """`count` decisions `approver` already made on cases `opener` opened (history rows)."""
    from recovery.cases.models import Approval

    filler = case_open(
        actor=opener, account=make_account_with(tenant), case_type="unlock", channel="phone"
    )
    Approval.objects.bulk_create(
        Approval(
            tenant=tenant,
            case=filler,
            approver=approver,
            approver_person=approver.person_id,
            case_opened_by=opener,
            case_opened_by_person=opener.person_id,
            roles=["supervisor"],
            via_grant=False,
            decision="approved",
            reason="x",
            snapshot_hash="x",
            step_up={},
            expires_at=timezone.now(),
            invalidated_at=timezone.now(),
            **extra,
        )
        for _ in range(count)
    )


def pending_cfo_case(tenant, agent):
    cfo = make_account_with(tenant, groups=["Finance"])
    case = case_open(actor=agent, account=cfo, case_type="mfa_reset", channel="phone")
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    return case_submit(actor=agent, case=case)


def test_as04_one_approver_clearing_one_agents_cases_raises_velocity_alert(acme):
    agent = staff(Role.AGENT, tenant=acme)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    earlier_decisions(acme, supervisor, agent, VELOCITY_THRESHOLD - 2)
    case = pending_cfo_case(acme, agent)
    decide(case, supervisor)
    assert not alerts(acme, "approval_velocity").exists()  # one below the threshold
    earlier_decisions(acme, supervisor, agent, 1)
    case = pending_cfo_case(acme, agent)
    decide(case, supervisor)
    assert alerts(acme, "approval_velocity").get().data["approvals"] == VELOCITY_THRESHOLD + 1


def test_r26_approvers_have_an_hourly_cap(acme):
    agent = staff(Role.AGENT, tenant=acme)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    case = pending_cfo_case(acme, agent)
    earlier_decisions(acme, supervisor, staff(Role.AGENT, tenant=acme), APPROVALS_PER_HOUR)
    with pytest.raises(PolicyDenied) as capped:
        decide(case, supervisor)
    assert capped.value.code == "approval.hourly_cap"


def test_as12_no_override_route_exists():
    patterns = [str(p.pattern) for p in get_resolver().url_patterns]

    def walk(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            yield route
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern, route)

    routes = list(walk(get_resolver()))
    assert patterns and routes
    assert not [
        r
        for r in routes
        if any(w in r.lower() for w in ("override", "emergency", "bypass", "skip"))
    ]


def test_as12_exception_under_time_pressure_still_needs_two_officers_and_the_wait(acme):
    agent = staff(Role.AGENT, tenant=acme)
    director = make_account_with(acme, admin_roles=["Global Administrator"])
    case = case_open(
        actor=agent,
        account=director,
        case_type="exception",
        channel="phone",
        claimant_statement="Outage costs £1m/hour, the CEO authorised bypassing checks, INC-4711",
        justification="Caller says the CEO authorised an emergency bypass during the outage.",
    )
    assert (case.tier, case.route) == ("T2", Route.SECURITY)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    # The caller's story is context; it moves nothing.
    context_record(
        actor=officer, case=case, topic="authorisation", statement="says the CEO approved it"
    )
    with pytest.raises(PolicyDenied) as nothing_yet:
        case_submit(actor=officer, case=case)
    assert nothing_yet.value.code == "evidence.insufficient"
    signal(case, officer, "S2")
    signal(case, officer, "S3")
    case_submit(actor=officer, case=case)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    with pytest.raises(PolicyDenied):
        decide(case, supervisor, "urgent!")
    for _ in range(2):
        approver = staff(Role.SECURITY_OFFICER, tenant=acme)
        decide(case, approver, "verified")
    case.refresh_from_db()
    assert case.status == CaseStatus.COOLING_OFF
    assert case.cooling_off_until >= timezone.now() + timedelta(hours=23)


def test_as12_lowering_the_t2_matrix_is_refused_below_the_floor(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    weaker = (
        "schema_version: 1\n"
        "tier_rules: {default: T0, admin_roles: T2, staff_subject: T2, delegations: T1,\n"
        "  mailbox_types: {shared: T1, functional: T1}, groups: {T2: [helpdesk]}}\n"
        "defaults:\n"
        "  accepted_classes: [S1, S2, S3, S5]\n  min_signal_classes: 1\n"
        "  s4_alone_suffices: false\n  approvals_required: 0\n"
        "  approver_roles: [supervisor, security_officer]\n"
        "  min_security_officer_approvals: 0\n  tenant_approver_required_when_msp: false\n"
        "  cooling_off_seconds: 0\n  s5_waives_cooling_off: true\n"
        "  quarantine_seconds: 1209600\n"
        "  artifact_lifetimes: {sms: 600, voice: 600, email: 86400, temporary_access_pass: 3600}\n"
        "  max_failed_attempts: 5\n  repeat_case_window_seconds: 86400\n"
        "  repeat_after_denial_window_seconds: 259200\n"
    )
    with pytest.raises(PolicyInvalid) as refused:
        policy_draft_create(actor=admin, tenant=acme, text=weaker)
    assert any(
        rule.startswith("R-16.T2") or rule.startswith("R-20") for rule in refused.value.rules
    ), refused.value.rules
    rejected = AuditEvent.objects.filter(tenant=acme, action="policy.rejected").get()
    assert rejected.data["code"]


def test_as14_admin_recovery_goes_to_security_and_a_password_is_not_evidence(acme):
    agent = staff(Role.AGENT, tenant=acme)
    admin = make_account_with(acme, admin_roles=["Super Administrator"], proofing_level="IAL3")
    case = case_open(actor=agent, account=admin, case_type="mfa_reset", channel="phone")
    assert case.route == Route.SECURITY
    with pytest.raises(PolicyDenied) as standard_queue:
        context_record(actor=agent, case=case, topic="password", statement="knew the password")
    assert standard_queue.value.code == "case.security_queue_only"
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    password = context_record(
        actor=officer, case=case, topic="S5 password", statement="knew the old password"
    )
    assert (password.result, password.reason_code) == ("context", "knowledge_based")
    signal(case, officer, "S2")
    signal(case, officer, "S3")

    def refused_for_want_of_onsite():
        with pytest.raises(PolicyDenied) as attended:
            case_submit(actor=officer, case=case)
        assert attended.value.code == "evidence.attended_s4_required"

    refused_for_want_of_onsite()
    # An S4 that is not an onsite session with biometric comparison does not recover an IAL3
    # admin: neither a provider's passing verdict nor a referee seeing a video.
    signal(case, officer, "S4")
    attended_passed(case, mode="remote_video")
    assert accepted_classes(case) == {"S2", "S3", "S4"}
    refused_for_want_of_onsite()
    onsite = attended_passed(case, mode="onsite")
    assert (onsite.method, onsite.verifier, onsite.details["biometric_compared"]) == (
        "attended_onsite",
        "attended_session",
        True,
    )
    assert case_submit(actor=officer, case=case).status == CaseStatus.PENDING_APPROVAL


def test_caller_id_and_voice_are_never_signals(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    for method in ("caller_id", "callerid", "voice_match", "face_check"):
        assert method_get(method) is None  # not in the catalogue: no verifier can name it
        fact = context_record(
            actor=agent, case=case, topic=method, statement="number matched; voice sounded right"
        )
        assert (fact.result, fact.signal_class, fact.verifier) == ("context", "context", "")
    assert accepted_classes(case) == set()
    with pytest.raises(PolicyDenied) as refused:
        case_submit(actor=agent, case=case)  # T0 needs one signal: context is none
    assert refused.value.code == "evidence.insufficient"

"""Cases and people for the console's verifier tests: trusted referees, T1 cases that accept
S4, attended sessions run through the real service, and AI-drafted cases."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_open
from recovery.proofing.attended import (
    attended_coercion_answer,
    attended_complete,
    attended_start,
)
from recovery.proofing.models import AttendedSession
from tenants.choices import Role
from tenants.models import Membership, Tenant, User
from tenants.services import referee_certify

from ..factories import api_key, make_account_with, make_user, member, staff
from ..recovery.challenges.helpers import Setup, open_case
from ..recovery.verifiers import enrolled

FINANCE = {"groups": ["finance"]}  # T1: accepts S4, and S4 alone is enough
DOCUMENTS = ["passport", "employee_badge"]
STEPS = ["document_inspected", "live_challenge_watched"]


def referee(tenant: Tenant, *, certified: bool = True, also: str | None = None) -> User:
    """A trusted referee of `tenant`, certified for 30 days by a tenant admin (or never), and
    with `also` a second role."""
    user = make_user()
    member(user, Role.TRUSTED_REFEREE, tenant=tenant)
    if also:
        member(user, also, tenant=tenant)
    if certified:
        referee_certify(
            actor=staff(Role.TENANT_ADMIN, tenant=tenant),
            membership=Membership.objects.get(user=user, tenant=tenant, role=Role.TRUSTED_REFEREE),
            until=timezone.now() + timedelta(days=30),
        )
    return user


def t1_case(tenant: Tenant, *, agent: User | None = None, enrolment: bool = True) -> Setup:
    """A T1 case collecting evidence (S4 accepted), on an account with a mobile and an email
    held for a year and, unless told otherwise, an enrolment reference (R-05)."""
    s = open_case(tenant, agent=agent, **FINANCE)
    if enrolment:
        enrolled(s.account)
    assert s.case.tier == "T1"
    return s


def attended_open(case: RecoveryCase, by: User, mode: str = "remote_video") -> AttendedSession:
    return attended_start(
        actor=by, case=case, mode=mode, reason="The caller has no code channel left."
    )


def attended_done(case: RecoveryCase, by: User, mode: str = "remote_video") -> Evidence:
    """An S4 from an attended session run to the end by the referee `by`."""
    session = attended_open(case, by, mode)
    attended_coercion_answer(actor=by, session=session, observed=False)
    evidence = attended_complete(
        actor=by,
        session=session,
        documents_presented=DOCUMENTS,
        steps_completed=STEPS,
        live_challenge_passed=True,
        biometric_compared=mode == "onsite",
    )
    assert evidence is not None and evidence.result == "accepted", evidence
    return evidence


def ai_drafted(tenant: Tenant) -> RecoveryCase:
    """A case an AI assistant opened through its key: nobody has taken it yet (R-66)."""
    principal = api_key(tenant, kind="ai_assistant").key.principal
    account = make_account_with(tenant)
    case = case_open(actor=principal, account=account, case_type="unlock", channel="api")
    assert case.taken_by_id is None
    return case

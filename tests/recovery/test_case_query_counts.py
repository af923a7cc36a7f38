"""Opening a case, sending and checking a code and approving cost the same queries at any
history size."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recovery.cases.choices import CaseStatus, Verifier
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import approval_decide, case_open, case_submit
from recovery.challenges.services import challenge_send, challenge_verify
from tenants.choices import Role

from ..factories import make_account_with, staff, step_up
from .casework import code_in, contact, signal

pytestmark = pytest.mark.django_db


def add_history(tenant, opener, count: int) -> None:
    """`count` earlier cases, each with one evidence row (asserted before verifiers existed),
    on other accounts of the tenant."""
    account = make_account_with(tenant)
    cases = RecoveryCase.objects.bulk_create(
        RecoveryCase(
            tenant=tenant,
            account=account,
            case_type="unlock",
            channel="phone",
            status=CaseStatus.CLOSED,
            tier="T0",
            route="standard",
            policy_version=0,
            policy_source="platform_default",
            opened_by=opener,
            opened_by_person=opener.person_id,
        )
        for _ in range(count)
    )
    Evidence.objects.bulk_create(
        Evidence(
            tenant=tenant,
            case=case,
            signal_class="S5",
            method="push",
            result="accepted",
            verifier=Verifier.LEGACY_ASSERTION,
            collected_by=opener,
            digest="0" * 64,
        )
        for case in cases
    )


def lifecycle_queries(tenant, agent) -> dict[str, int]:
    supervisor = staff(Role.SUPERVISOR, tenant=tenant)  # a fresh TOTP device each time
    account = make_account_with(tenant, groups=["Finance"])
    email = contact(account, "email", "a@x.test")
    counts = {}
    with CaptureQueriesContext(connection) as opened:
        case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    counts["open"] = len(opened)
    with CaptureQueriesContext(connection) as sent:
        challenge = challenge_send(actor=agent, case=case, contact_method=email)
    counts["send"] = len(sent)
    code = code_in(mail.outbox[-1].body)
    with CaptureQueriesContext(connection) as recorded:
        challenge_verify(actor=agent, case=case, challenge=challenge, code=code)
    counts["evidence"] = len(recorded)
    signal(case, agent, "S3")
    case_submit(actor=agent, case=case)
    proof = step_up(supervisor)
    with CaptureQueriesContext(connection) as approved:
        approval_decide(
            actor=supervisor, case=case, decision="approved", reason="ok", step_up=proof
        )
    counts["approve"] = len(approved)
    return counts


def test_query_counts_do_not_grow_with_earlier_cases_and_evidence(acme):
    agent = staff(Role.AGENT, tenant=acme)
    add_history(acme, agent, 1)
    lifecycle_queries(acme, agent)  # warm per-process caches (content types)
    small = lifecycle_queries(acme, agent)
    add_history(acme, agent, 1000)
    large = lifecycle_queries(acme, agent)
    assert small == large, (small, large)
    assert small["open"] <= 25 and small["send"] <= 25 and small["evidence"] <= 25
    assert small["approve"] <= 40

"""R-66: a case an AI assistant drafts triggers nothing until a person takes it.

No owner notice when it opens, no code and no attestation link; a human agent takes it
(`case_take`, `POST …/cases/<id>/take/`), which records `case.taken` and sends the held-back
"case opened" notice. Whoever took it worked it, so they may not approve it.
"""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_submit, case_take
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import attestation_request, challenge_send
from recovery.notifications.models import OwnerNotice
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied

from ..api.conftest import api, key_client, staff_api_client
from ..factories import (
    api_key,
    make_account_with,
    make_user,
    member,
    notices_planned,
    staff,
    unique,
)
from .casework import contact, decide, signal

pytestmark = pytest.mark.django_db

OWNER_EMAIL = "owner@acme.example"


def events(tenant, action: str, case: RecoveryCase) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(tenant=tenant, action=action, target_id=str(case.pk)).order_by(
            "seq"
        )
    )


def drafted(tenant, **attributes) -> RecoveryCase:
    """A case an AI assistant opened on an account with an email and a manager held for years."""
    person = uuid.uuid4()
    manager = make_account_with(tenant, external_id=unique("mgr"), person_id=person)
    make_user(person_id=str(person))
    account = make_account_with(tenant, manager_external_id=manager.external_id, **attributes)
    contact(account, "email", OWNER_EMAIL)
    contact(account, "manager", f"{unique('boss')}@acme.example")
    assistant = api_key(tenant, kind="ai_assistant").key.principal
    return case_open(actor=assistant, account=account, case_type="unlock", channel="api")


def test_an_ai_drafted_case_has_no_taker_and_sends_no_owner_notice(acme):
    case = drafted(acme)
    assert (case.taken_by_id, case.taken_at) == (None, None)
    assert notices_planned(acme) == []  # the worker plans nothing for a draft
    assert not OwnerNotice.objects.filter(case=case).exists()
    [opened] = events(acme, "case.opened", case)
    assert opened.actor_type == "ai" and opened.data["drafted_by_ai"] is True


def test_a_person_opening_a_case_has_taken_it_and_the_owner_hears_at_once(acme):
    agent = staff(Role.AGENT, tenant=acme)
    account = make_account_with(acme)
    contact(account, "email", OWNER_EMAIL)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    assert case.taken_by_id == agent.pk and case.taken_at is not None
    notices_planned(acme)  # what a worker does once the opening has committed
    assert OwnerNotice.objects.filter(case=case, event="case_opened").exists()
    assert not events(acme, "case.taken", case)


def test_no_code_and_no_attestation_leave_before_a_person_takes_the_case(acme):
    case = drafted(acme)
    agent = staff(Role.AGENT, tenant=acme)
    email = case.account.contact_methods.get(kind="email")
    mail.outbox.clear()

    with pytest.raises(PolicyDenied) as code_refused:
        challenge_send(actor=agent, case=case, contact_method=email)
    with pytest.raises(PolicyDenied) as link_refused:
        attestation_request(actor=agent, case=case)

    assert code_refused.value.code == link_refused.value.code == "case.not_taken"
    assert not VerificationChallenge.objects.filter(case=case).exists()
    assert not mail.outbox
    refused = events(acme, "verification.challenge_refused", case)
    assert [(e.data["code"], e.data["kind"]) for e in refused] == [
        ("case.not_taken", "code"),
        ("case.not_taken", "attestation"),
    ]


def test_taking_the_case_sends_the_opened_notice_and_unblocks_codes(acme):
    case = drafted(acme)
    agent = staff(Role.AGENT, tenant=acme)

    case = case_take(actor=agent, case=case)
    notices_planned(acme)  # what a worker does once the taking has committed

    assert case.taken_by_id == agent.pk and case.taken_at is not None
    [taken] = events(acme, "case.taken", case)
    assert taken.actor_id == str(agent.pk) and taken.actor_type == "human"
    notices = OwnerNotice.objects.filter(case=case)
    assert {(n.event, n.address) for n in notices if n.recipient == "owner"} == {
        ("case_opened", OWNER_EMAIL)
    }
    email = case.account.contact_methods.get(kind="email")
    assert challenge_send(actor=agent, case=case, contact_method=email).status == "open"


def test_only_a_person_who_may_work_the_case_takes_it_and_only_once(acme, globex):
    case = drafted(acme)
    for principal in (
        api_key(acme).key.principal,
        api_key(acme, kind="ai_assistant").key.principal,
    ):
        with pytest.raises(PolicyDenied) as refused:
            case_take(actor=principal, case=case)
        assert refused.value.code == "case.taker_not_human"
    for outsider in (staff(Role.AGENT, tenant=globex), staff(Role.AUDITOR, tenant=acme)):
        with pytest.raises(PolicyDenied):
            case_take(actor=outsider, case=case)
    assert RecoveryCase.objects.get(pk=case.pk).taken_by_id is None

    case_take(actor=staff(Role.AGENT, tenant=acme), case=case)
    with pytest.raises(InvalidInput) as again:
        case_take(actor=staff(Role.AGENT, tenant=acme), case=case)
    assert again.value.code == "case.already_taken"
    assert len(events(acme, "case.taken", case)) == 1


def test_a_case_a_person_opened_cannot_be_taken_over(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(
        actor=agent, account=make_account_with(acme), case_type="unlock", channel="phone"
    )
    with pytest.raises(InvalidInput) as refused:
        case_take(actor=staff(Role.AGENT, tenant=acme), case=case)
    assert refused.value.code == "case.already_taken"
    assert RecoveryCase.objects.get(pk=case.pk).taken_by_id == agent.pk


def test_the_taker_of_an_ai_drafted_case_cannot_approve_it_under_any_account(acme):
    case = drafted(acme, groups=["Finance"])  # T1: one approval by a supervisor
    assert case.tier == "T1"
    taker = staff(Role.SUPERVISOR, tenant=acme)
    case = case_take(actor=taker, case=case)
    signal(case, taker, "S2")
    signal(case, taker, "S3")
    case = case_submit(actor=taker, case=case)
    second_account = make_user(person_id=str(taker.person_id))
    member(second_account, Role.SUPERVISOR, tenant=acme)

    for who in (taker, second_account):
        with pytest.raises(PolicyDenied) as refused:
            decide(case, who)
        assert refused.value.code == "sod.approver_is_taker"
    violations = events(acme, "policy.violation", case)
    assert [v.data["code"] for v in violations] == ["sod.approver_is_taker"] * 2

    decide(case, staff(Role.SUPERVISOR, tenant=acme))
    assert RecoveryCase.objects.get(pk=case.pk).status == "cooling_off"


def test_taking_over_the_api_is_for_people_only(acme):
    case = drafted(acme)
    url = api(acme, f"cases/{case.pk}/take/")

    by_ai = key_client(acme, kind="ai_assistant").post(url)
    by_key = key_client(acme).post(url)
    assert (by_ai.status_code, by_ai.json()["code"]) == (403, "ai.action_blocked")
    assert (by_key.status_code, by_key.json()["code"]) == (403, "auth.staff_only")
    assert RecoveryCase.objects.get(pk=case.pk).taken_by_id is None

    agent = staff(Role.AGENT, tenant=acme)
    taken = staff_api_client(agent).post(url)
    assert taken.status_code == 200, taken.content
    assert taken.json()["id"] == case.pk and taken["ETag"]
    assert RecoveryCase.objects.get(pk=case.pk).taken_by_id == agent.pk

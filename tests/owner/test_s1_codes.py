"""S1: a saved recovery code read back to the agent (`recovery_code_check`).

Checked against the keyed digests of the account's current set; single use by compare-and-set
(exactly one of two concurrent checks wins); wrong ones count, and the policy's limit (never
above 5) locks saved codes for the case (R-53); one answer for every wrong code (R-14); the
set's contact method carries the quarantine (R-04); the owner hears how many codes remain.
"""

from __future__ import annotations

import json
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.choices import EvidenceResult, Verifier
from recovery.cases.methods import CATALOGUE
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_cancel
from recovery.notifications.models import NoticeEvent, OwnerNotice
from recovery.notifications.services import notice_send
from recovery.owner.models import RecoveryCode, RecoveryCodeCheck
from recovery.owner.signals import recovery_code_check
from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied

from ..conftest import signed_in_client
from ..factories import api_key, make_tenant, notices_planned, staff
from .case_owner import (
    default_policy_with,
    enrolled_owner,
    open_case,
    policy_applied,
)

WRONG = "ZZZZ-ZZZZ-ZZZZZ"


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def wrong_code(owner) -> str:
    """A well-formed code that is none of the owner's."""
    code = WRONG
    assert code.replace("-", "") not in owner.codes
    return code


@pytest.fixture
def owner(acme):
    return enrolled_owner(acme)


@pytest.fixture
def opened(owner):
    return open_case(owner)


# --- a match ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_saved_code_read_back_records_accepted_s1_with_its_check(owner, opened):
    agent, case = opened
    code = owner.codes[3]

    evidence = recovery_code_check(actor=agent, case=case, code=code)

    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S1",
        "recovery_code",
        EvidenceResult.ACCEPTED,
    )
    check = RecoveryCodeCheck.objects.get(case=case)
    assert (evidence.verifier, evidence.verifier_ref) == (Verifier.OWNER_PORTAL, check.pk)
    assert check.matched and check.evidence == evidence and check.checked_by == agent
    assert evidence.contact_method == owner.code_set.contact
    assert evidence.collected_by == agent and evidence.details == {"remaining": 9}
    used = RecoveryCode.objects.get(pk=check.code_id)
    assert used.used_at is not None and used.used_for_id == case.pk
    assert RecoveryCode.objects.filter(code_set=owner.code_set, used_at__isnull=True).count() == 9
    (event,) = events(owner.tenant, "owner.code_used")
    assert event.data["remaining"] == 9 and event.data["evidence"] == evidence.pk
    assert event.target_id == str(case.pk)


@pytest.mark.django_db
def test_the_code_is_matched_however_the_agent_types_it(owner, opened):
    agent, case = opened
    code = owner.codes[0]
    typed = f" {code[:4].lower()} {code[4:8]}-{code[8:].lower()} ".replace("0", "o")
    evidence = recovery_code_check(actor=agent, case=case, code=typed)
    assert evidence.result == EvidenceResult.ACCEPTED


@pytest.mark.django_db
def test_the_owner_is_told_a_code_was_used_and_how_many_remain(owner, opened):
    agent, case = opened
    recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    notices_planned(case.tenant)  # what a worker does once it has committed
    notices = OwnerNotice.objects.filter(case=case, event=NoticeEvent.CODE_USED)
    assert {n.recipient for n in notices} == {"owner"}
    assert notices.count() == 2  # the email and the mobile on record
    mail.outbox.clear()
    for notice in notices:
        notice_send(notice_id=notice.pk)
    (message,) = mail.outbox
    assert "Saved recovery codes left: 9." in message.body
    assert "/not-me/" in message.body
    for code in owner.codes:
        assert code not in message.body


# --- single use -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_used_code_is_refused_like_a_wrong_one_and_recorded_as_reuse(owner, opened):
    agent, case = opened
    code = owner.codes[0]
    recovery_code_check(actor=agent, case=case, code=code)

    with pytest.raises(InvalidInput) as again:
        recovery_code_check(actor=agent, case=case, code=code)
    with pytest.raises(InvalidInput) as wrong:
        recovery_code_check(actor=agent, case=case, code=wrong_code(owner))

    assert again.value.code == wrong.value.code == "recovery_code.invalid"
    assert again.value.message == wrong.value.message
    reasons = [e.data["reason"] for e in events(owner.tenant, "owner.code_refused")]
    assert reasons == ["used", "unknown"]
    assert len(events(owner.tenant, "token.reuse_attempt")) == 1
    alerts = [e.data["type"] for e in events(owner.tenant, "alert.raised")]
    assert "token_reuse" in alerts
    assert Evidence.objects.filter(case=case, result=EvidenceResult.ACCEPTED).count() == 1
    assert RecoveryCodeCheck.objects.filter(case=case, matched=False).count() == 2


@pytest.mark.django_db
def test_a_code_used_on_one_case_does_not_count_on_another(owner):
    agent, first = open_case(owner)
    code = owner.codes[1]
    recovery_code_check(actor=agent, case=first, code=code)
    case_cancel(actor=agent, case=first, reason="caller hung up")
    officer = staff(Role.SECURITY_OFFICER, tenant=owner.tenant)  # a repeat case: security queue
    _officer, second = open_case(owner, officer)
    with pytest.raises(InvalidInput) as refused:
        recovery_code_check(actor=officer, case=second, code=code)
    assert refused.value.code == "recovery_code.invalid"


def _race(cases_and_agents, code) -> list[str]:
    start, outcomes = threading.Barrier(len(cases_and_agents)), []

    def check(agent, case):
        try:
            start.wait()
            recovery_code_check(actor=agent, case=case, code=code)
            outcomes.append("accepted")
        except DomainError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=check, args=pair) for pair in cases_and_agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_checks_of_one_code_at_once_on_one_case_accept_exactly_once(committed):
    tenant = make_tenant()
    owner = enrolled_owner(tenant)
    agent, case = open_case(owner)
    other = staff(Role.AGENT, tenant=tenant)

    outcomes = _race([(agent, case), (other, case)], owner.codes[0])

    assert outcomes == ["accepted", "recovery_code.invalid"]
    assert Evidence.objects.filter(case=case, result=EvidenceResult.ACCEPTED).count() == 1
    assert RecoveryCodeCheck.objects.filter(case=case, matched=True).count() == 1
    assert verify_chain(tenant.pk, tenant.slug).intact


def test_two_checks_of_one_code_at_once_on_two_cases_accept_exactly_once(committed):
    """Two cases of one account: their case locks do not serialise the checks, so only the
    compare-and-set on `used_at` decides."""
    tenant = make_tenant()
    owner = enrolled_owner(tenant)
    agent, first = open_case(owner)
    # A second case on the account is a repeat: it goes to the security queue.
    other, second = open_case(owner, staff(Role.SECURITY_OFFICER, tenant=tenant))

    outcomes = _race([(agent, first), (other, second)], owner.codes[0])

    assert outcomes == ["accepted", "recovery_code.invalid"]
    accepted = Evidence.objects.filter(
        case__in=[first, second], result=EvidenceResult.ACCEPTED, method="recovery_code"
    )
    assert accepted.count() == 1
    code = RecoveryCode.objects.get(code_set=owner.code_set, used_at__isnull=False)
    assert code.used_for_id == accepted.get().case_id
    assert RecoveryCodeCheck.objects.filter(code=code).count() == 1


# --- attempts and one answer for all (R-14) ----------------------------------------


@pytest.mark.django_db
def test_wrong_codes_count_and_the_fifth_locks_saved_codes_for_the_case(owner, opened):
    agent, case = opened
    for attempt in range(4):
        with pytest.raises(InvalidInput) as refused:
            recovery_code_check(actor=agent, case=case, code=wrong_code(owner))
        assert refused.value.code == "recovery_code.invalid", attempt
    with pytest.raises(PolicyDenied) as fifth:
        recovery_code_check(actor=agent, case=case, code=wrong_code(owner))
    assert fifth.value.code == "recovery_code.locked"
    # Locked: even a right code is not looked at, and stays usable for another case.
    with pytest.raises(PolicyDenied) as locked:
        recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    assert locked.value.code == "recovery_code.locked"
    assert not RecoveryCode.objects.filter(code_set=owner.code_set, used_at__isnull=False).exists()
    assert RecoveryCodeCheck.objects.filter(case=case).count() == 5
    (locked_event,) = events(owner.tenant, "owner.codes_locked")
    assert locked_event.data == {"wrong": 5, "limit": 5}
    assert "recovery_codes_locked" in [e.data["type"] for e in events(owner.tenant, "alert.raised")]
    assert not Evidence.objects.filter(case=case).exists()


@pytest.mark.django_db
def test_the_limit_is_the_policys_when_lower(acme):
    policy_applied(
        acme, default_policy_with("  max_failed_attempts: 5 ", "  max_failed_attempts: 2 ")
    )
    owner = enrolled_owner(acme)
    agent, case = open_case(owner)
    with pytest.raises(InvalidInput):
        recovery_code_check(actor=agent, case=case, code=wrong_code(owner))
    with pytest.raises(PolicyDenied) as second:
        recovery_code_check(actor=agent, case=case, code=wrong_code(owner))
    assert second.value.code == "recovery_code.locked"


@pytest.mark.django_db
def test_every_wrong_code_gets_the_same_answer(acme):
    owner = enrolled_owner(acme)
    stranger = enrolled_owner(acme)
    agent, case = open_case(owner)
    used = owner.codes[0]
    recovery_code_check(actor=agent, case=case, code=used)
    old_codes = owner.codes
    # A new set replaces the old one (regenerated before this case is imaginable: the case is
    # closed first, then a new one opened).
    case_cancel(actor=agent, case=case, reason="restart")
    renewed = enrolled_owner_again(owner)
    agent, case = open_case(renewed, staff(Role.SECURITY_OFFICER, tenant=acme))  # a repeat
    answers = []
    for typed in (wrong_code(owner), used, old_codes[5], stranger.codes[0]):
        with pytest.raises(InvalidInput) as refused:
            recovery_code_check(actor=agent, case=case, code=typed)
        answers.append((refused.value.code, refused.value.message))
    assert len(set(answers)) == 1 and answers[0][0] == "recovery_code.invalid"
    reasons = [e.data["reason"] for e in events(acme, "owner.code_refused")]
    assert reasons[-4:] == ["unknown", "replaced_set", "replaced_set", "unknown"]


def enrolled_owner_again(owner):
    """The same owner issues a new set of codes (replacing the old one), held for 400 days."""
    from recovery.owner.codes import codes_issue

    from .case_owner import Owner, enrolled_ago
    from .owners import enrolled_client, portal_session

    enrolled_client(owner.account)
    code_set, codes = codes_issue(session=portal_session(owner.account))
    enrolled_ago(code_set.contact)
    mail.outbox.clear()
    return Owner(owner.tenant, owner.account, codes=codes, code_set=code_set)


@pytest.mark.django_db
def test_a_malformed_entry_is_an_input_error_that_does_not_count(owner, opened):
    agent, case = opened
    for typed in ("", "12345", "ABCD-EFGH-JKMN", "ABCD-EFGH-JKMNP-Q", "ÀBCD-EFGH-JKMNP"):
        with pytest.raises(InvalidInput) as refused:
            recovery_code_check(actor=agent, case=case, code=typed)
        assert refused.value.code == "recovery_code.input_invalid"
    assert not RecoveryCodeCheck.objects.filter(case=case).exists()


# --- what the code proves here ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_set_enrolled_inside_the_quarantine_is_used_up_but_does_not_count(acme):
    owner = enrolled_owner(acme, days=3)
    agent, case = open_case(owner)
    evidence = recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    assert evidence.result == EvidenceResult.REJECTED
    assert evidence.reason_code == "contact_changed_in_quarantine"
    assert RecoveryCode.objects.filter(code_set=owner.code_set, used_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_no_saved_codes_means_nothing_to_check(acme):
    owner = enrolled_owner(acme, codes=False)
    agent, case = open_case(owner)
    with pytest.raises(PolicyDenied) as refused:
        recovery_code_check(actor=agent, case=case, code=WRONG)
    assert refused.value.code == "recovery_code.not_enrolled"
    assert not RecoveryCodeCheck.objects.filter(case=case).exists()


@pytest.mark.django_db
def test_a_policy_without_saved_codes_refuses_before_looking(acme):
    text = default_policy_with(
        "  accepted_classes: [S1, S2, S3, S5]\n",
        "  accepted_classes: [S1, S2, S3, S5]\n  accepted_methods: ["
        + ", ".join(m.name for m in CATALOGUE if m.signal_class in ("S2", "S3", "S5"))
        + "]\n",
    )
    policy_applied(acme, text)
    owner = enrolled_owner(acme)
    agent, case = open_case(owner)
    with pytest.raises(PolicyDenied) as refused:
        recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    assert refused.value.code == "evidence.method_not_accepted"
    assert not RecoveryCode.objects.filter(code_set=owner.code_set, used_at__isnull=False).exists()


@pytest.mark.django_db
def test_only_a_person_who_may_work_the_open_case_checks_codes(acme, globex, owner, opened):
    agent, case = opened
    assistant = api_key(acme, kind="ai_assistant").key.principal
    with pytest.raises(PolicyDenied) as blocked:
        recovery_code_check(actor=assistant, case=case, code=owner.codes[0])
    assert blocked.value.code == "ai.action_blocked"
    outsider = staff(Role.AGENT, tenant=globex)
    with pytest.raises(DomainError):
        recovery_code_check(actor=outsider, case=case, code=owner.codes[0])
    case_cancel(actor=agent, case=case, reason="done")
    with pytest.raises(InvalidInput) as closed:
        recovery_code_check(
            actor=agent, case=RecoveryCase.objects.get(pk=case.pk), code=owner.codes[0]
        )
    assert closed.value.code == "case.wrong_state"
    assert not RecoveryCode.objects.filter(code_set=owner.code_set, used_at__isnull=False).exists()


@pytest.mark.django_db
def test_nothing_stored_holds_a_code(owner, opened):
    agent, case = opened
    recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    with pytest.raises(InvalidInput):
        recovery_code_check(actor=agent, case=case, code=owner.codes[0])
    stored = json.dumps(
        [
            list(AuditEvent.objects.filter(tenant=owner.tenant).values_list("data", flat=True)),
            list(Evidence.objects.filter(case=case).values()),
            list(RecoveryCode.objects.filter(code_set=owner.code_set).values()),
        ],
        default=str,
    )
    for code in owner.codes:
        assert code not in stored


# --- API and console --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_checks_a_code_and_answers_alike_for_every_wrong_one(owner, opened):
    agent, case = opened
    client = signed_in_client(agent)
    url = f"/api/v1/t/{owner.tenant.slug}/cases/{case.pk}/recovery-code/"

    ok = client.post(url, {"code": owner.codes[2]}, content_type="application/json")
    again = client.post(url, {"code": owner.codes[2]}, content_type="application/json")
    wrong = client.post(url, {"code": WRONG}, content_type="application/json")
    asserted = client.post(
        url,
        {"code": WRONG, "verified": True, "result": "accepted", "matched": True},
        content_type="application/json",
    )

    assert ok.status_code == 200, ok.content
    body = ok.json()
    assert body["check"]["matched"] is True
    assert body["evidence"]["method"] == "recovery_code"
    assert body["evidence"]["result"] == "accepted"
    assert body["evidence"]["verifier"] == "owner_portal"
    assert owner.codes[2] not in ok.content.decode()
    assert again.status_code == wrong.status_code == asserted.status_code == 400
    assert again.json() == wrong.json() == asserted.json()
    assert wrong.json()["code"] == "recovery_code.invalid"
    assert Evidence.objects.filter(case=case, result=EvidenceResult.ACCEPTED).count() == 1


@pytest.mark.django_db
def test_the_case_page_checks_a_code_read_back(owner, opened):
    agent, case = opened
    client: Client = signed_in_client(agent)
    page = client.get(f"/t/{owner.tenant.slug}/cases/{case.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="verifier-saved-code"' in html and "recovery-code-code" in html

    done = client.post(
        f"/t/{owner.tenant.slug}/cases/{case.pk}/recovery-code/",
        {"recovery-code-code": owner.codes[4]},
        follow=True,
    )
    assert done.status_code == 200
    assert "Signal S1 accepted." in done.content.decode()
    refused = client.post(
        f"/t/{owner.tenant.slug}/cases/{case.pk}/recovery-code/",
        {"recovery-code-code": owner.codes[4]},
    )
    assert refused.status_code == 400
    assert "recovery_code.invalid" in refused.content.decode()

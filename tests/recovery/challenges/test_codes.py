"""S2 one-time codes: sent only to contacts on record, stored only hashed, used once, in time,
with a limited number of wrong tries; the agent learns only "wrong or expired"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from recovery.cases.choices import EvidenceResult
from recovery.cases.models import Evidence
from recovery.challenges.choices import ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import challenge_send, challenge_verify
from recovery.models import ContactMethod
from tenants.exceptions import DomainError, PolicyDenied

from ...factories import api_key, make_account
from ..casework import contact
from .helpers import EMAIL, MOBILE, code_in, events, last_email, open_case, sms_sent, stored_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def sms_outbox(settings, tmp_path):
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def reload(challenge):
    return VerificationChallenge.objects.get(pk=challenge.pk)


def refusal(call) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call()
    return refused.value


# --- sending --------------------------------------------------------------------------------


def test_sms_code_lands_in_the_outbox_and_is_never_stored_in_clear(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)

    (sms,) = sms_sent(sms_outbox)
    assert sms["to"] == MOBILE and sms["voice"] is False
    code = code_in(sms["body"])
    assert len(code) == 6
    row = reload(challenge)
    assert row.code_hash and row.code_hash != code and code not in row.code_hash
    assert check_password(code, row.code_hash)
    assert row.channel == "sms" and row.status == ChallengeStatus.OPEN
    assert code not in stored_text(acme)
    (sent,) = events(acme, "verification.challenge_sent")
    assert sent.data["contact"] == s.mobile.masked == "***01"
    assert MOBILE not in stored_text(acme)


def test_desk_phone_gets_a_voice_call(acme, sms_outbox):
    s = open_case(acme)
    desk = contact(s.account, "desk_phone", "+15550100999")
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=desk)
    (call,) = sms_sent(sms_outbox)
    assert call["voice"] is True and call["to"] == "+15550100999"
    assert reload(challenge).channel == "voice"
    assert len(code_in(call["body"])) == 6


def test_email_code_lands_in_mail_outbox_with_only_the_masked_hint_recorded(acme):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)

    message = last_email()
    assert message.to == [EMAIL]
    code = code_in(message.body)
    assert len(code) == 8
    assert "/verify/" in message.body
    # What it is for, never which facts matched: no account identifiers in it.
    assert s.account.username not in message.body and s.account.external_id not in message.body
    assert code not in stored_text(acme)
    (sent,) = events(acme, "verification.challenge_sent")
    assert sent.data["contact"] == "j***@example.test" and sent.data["link"] is True
    assert EMAIL not in stored_text(acme)
    assert reload(challenge).link_hash and reload(challenge).link_hash not in message.body


def test_lifetimes_are_the_policy_values_within_the_r31_ceilings(acme, sms_outbox):
    s = open_case(acme)
    sms = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    email = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    assert sms.expires_at - sms.created_at == timedelta(minutes=10)
    assert email.expires_at - email.created_at == timedelta(hours=24)
    assert reload(sms).expires_at == sms.expires_at  # what the caller holds is what is stored


def test_the_database_refuses_an_sms_code_living_longer_than_ten_minutes(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationChallenge.objects.filter(pk=challenge.pk).update(
            expires_at=challenge.created_at + timedelta(minutes=11)
        )


@pytest.mark.parametrize(
    ("make_contact", "code"),
    [
        (
            lambda a: contact(a, "mobile", "+15550100777", age_days=3),
            "contact_changed_in_quarantine",
        ),
        (lambda a: contact(a, "mobile", "+15550100777", sim_days=2), "sim_change_recent"),
        (
            lambda a: contact(make_account(a.tenant), "email", "x@example.test"),
            "channel_not_in_system_of_record",
        ),
    ],
    ids=["quarantine", "sim-swap", "another-account"],
)
def test_a_contact_that_cannot_carry_a_signal_is_refused_with_its_reason(
    acme, sms_outbox, make_contact, code
):
    s = open_case(acme)
    bad = make_contact(s.account)
    refused = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=bad))
    assert isinstance(refused, PolicyDenied) and refused.code == f"evidence.{code}"
    assert sms_sent(sms_outbox) == [] and mail.outbox == []
    assert not VerificationChallenge.objects.filter(case=s.case).exists()
    (recorded,) = events(acme, "verification.challenge_refused")
    assert recorded.data["code"] == f"evidence.{code}"
    alerts = [e.data["type"] for e in events(acme, "alert.raised")]
    assert alerts == (["sim_swap_recovery_attempt"] if code == "sim_change_recent" else [])


def test_a_contact_added_during_the_case_is_refused(acme, sms_outbox):
    s = open_case(acme)
    added = ContactMethod.objects.create(
        tenant=acme,
        account=s.account,
        kind="mobile",
        value="+15550100888",
        source="hris",
        registered_at=timezone.now(),
    )
    refused = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=added))
    assert refused.code == "evidence.contact_added_during_case"
    assert sms_sent(sms_outbox) == []


def test_a_manager_contact_cannot_carry_a_code(acme):
    s = open_case(acme)
    boss = contact(s.account, "manager", "boss@example.test")
    refused = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=boss))
    assert refused.code == "challenge.channel_cannot_carry_code"
    assert mail.outbox == []


def test_a_failed_delivery_is_refused_recorded_and_leaves_nothing_usable(acme, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    s = open_case(acme)
    refused = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=s.email))
    assert refused.code == "challenge.delivery_failed"
    row = VerificationChallenge.objects.get(case=s.case)
    assert row.status == ChallengeStatus.UNDELIVERED
    (recorded,) = events(acme, "verification.challenge_refused")
    assert recorded.data["code"] == "challenge.delivery_failed"
    assert recorded.data["challenge"] == row.pk
    assert events(acme, "verification.challenge_sent") == []


def test_a_new_code_supersedes_the_open_one_for_that_contact(acme, sms_outbox):
    s = open_case(acme)
    first = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    second = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    old_code, new_code = (code_in(m["body"]) for m in sms_sent(sms_outbox))
    assert reload(first).status == ChallengeStatus.SUPERSEDED
    refused = refusal(
        lambda: challenge_verify(actor=s.agent, case=s.case, challenge=first, code=old_code)
    )
    assert refused.code == "challenge.code_invalid"
    evidence = challenge_verify(actor=s.agent, case=s.case, challenge=second, code=new_code)
    assert evidence.result == EvidenceResult.ACCEPTED


def test_sends_per_case_are_limited(acme, sms_outbox):
    s = open_case(acme)
    for _ in range(5):
        challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    refused = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile))
    assert refused.code == "challenge.send_limit"
    assert len(sms_sent(sms_outbox)) == 5


# --- verifying ------------------------------------------------------------------------------


def test_the_right_code_records_accepted_s2_evidence_once(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])

    evidence = challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)

    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S2",
        "sms_code",
        "accepted",
    )
    assert evidence.contact_method_id == s.mobile.pk and evidence.collected_by == s.agent
    row = reload(challenge)
    assert row.status == ChallengeStatus.VERIFIED and row.verified_via == "code"
    assert row.evidence_id == evidence.pk and row.verified_at is not None
    (verified,) = events(acme, "verification.challenge_verified")
    assert verified.data["evidence"] == evidence.pk and verified.data["result"] == "accepted"
    assert code not in stored_text(acme)


def test_spaces_and_dashes_in_the_typed_code_are_ignored(acme):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    code = code_in(last_email().body)
    typed = f"{code[:4]} - {code[4:]}"
    evidence = challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=typed)
    assert evidence.method == "email_code" and evidence.result == "accepted"


def test_wrong_codes_up_to_the_limit_disable_the_challenge_for_good(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    codes = []
    for _ in range(5):
        refused = refusal(
            lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=wrong)
        )
        codes.append(refused.code)
    assert codes == ["challenge.code_invalid"] * 4 + ["challenge.locked"]
    row = reload(challenge)
    assert (row.status, row.attempts, row.max_attempts) == (ChallengeStatus.DISABLED, 5, 5)
    assert [e.data["attempts"] for e in events(acme, "verification.challenge_failed")] == [
        1,
        2,
        3,
        4,
    ]
    assert len(events(acme, "verification.challenge_disabled")) == 1

    # The right code can no longer succeed, and this case sends no new one.
    refused = refusal(
        lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)
    )
    assert refused.code == "challenge.locked"
    again = refusal(lambda: challenge_send(actor=s.agent, case=s.case, contact_method=s.email))
    assert again.code == "challenge.locked"
    assert not Evidence.objects.filter(case=s.case).exists()


def test_an_expired_code_is_refused_by_database_time_like_a_wrong_one(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])
    wrong = refusal(
        lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code="000000x")
    )
    VerificationChallenge.objects.filter(pk=challenge.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    expired = refusal(
        lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)
    )

    assert expired.code == wrong.code == "challenge.code_invalid"
    assert expired.message == wrong.message  # the agent learns "wrong or expired", no more
    assert reload(challenge).status == ChallengeStatus.EXPIRED
    reasons = [e.data["reason"] for e in events(acme, "verification.challenge_failed")]
    assert reasons == ["wrong_code", "expired"]
    assert not Evidence.objects.filter(case=s.case).exists()


def test_a_used_code_presented_again_is_a_reuse_attempt_with_an_alert(acme, sms_outbox):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])
    challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)

    refused = refusal(
        lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)
    )

    assert refused.code == "challenge.code_invalid"
    (reuse,) = events(acme, "token.reuse_attempt")
    assert reuse.data["challenge"] == challenge.pk
    assert [e.data for e in events(acme, "alert.raised")] == [
        {"type": "token_reuse", "challenge": challenge.pk, "via": "code"}
    ]
    assert Evidence.objects.filter(case=s.case).count() == 1


def test_a_code_for_one_case_does_not_verify_on_another(acme, sms_outbox):
    s = open_case(acme)
    other = open_case(acme, agent=s.agent)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])
    refused = refusal(
        lambda: challenge_verify(actor=s.agent, case=other.case, challenge=challenge, code=code)
    )
    assert refused.code == "challenge.code_invalid"
    assert reload(challenge).status == ChallengeStatus.OPEN


def test_an_ai_assistant_can_neither_send_nor_verify(acme, sms_outbox):
    s = open_case(acme)
    assistant = api_key(acme, kind="ai_assistant").key.principal
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    code = code_in(sms_sent(sms_outbox)[0]["body"])
    for call in (
        lambda: challenge_send(actor=assistant, case=s.case, contact_method=s.mobile),
        lambda: challenge_verify(actor=assistant, case=s.case, challenge=challenge, code=code),
    ):
        assert refusal(call).code == "ai.action_blocked"
    assert reload(challenge).status == ChallengeStatus.OPEN


def test_only_someone_who_may_work_the_case_can_send_or_verify(acme, sms_outbox):
    from tenants.choices import Role

    from ...factories import staff

    s = open_case(acme)
    auditor = staff(Role.AUDITOR, tenant=acme)
    refused = refusal(lambda: challenge_send(actor=auditor, case=s.case, contact_method=s.mobile))
    assert refused.code == "case.role_required"
    assert sms_sent(sms_outbox) == []

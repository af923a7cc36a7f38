"""The owner's confirmation link and the manager's attestation, through the real pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from recovery.cases.models import Evidence
from recovery.challenges.choices import ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import attestation_request, challenge_send, challenge_verify
from tenants.choices import Role
from tenants.exceptions import DomainError

from ...conftest import signed_in_client
from ...factories import make_account_with, staff
from ...pages import page
from ..casework import contact
from .helpers import (
    MANAGER_EMAIL,
    code_in,
    events,
    last_email,
    link_token_in,
    open_case,
    open_managed_case,
    stored_text,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.recovery.challenges.urls")]


def reload(challenge):
    return VerificationChallenge.objects.get(pk=challenge.pk)


# --- the owner's link -----------------------------------------------------------------------


def emailed_challenge(tenant):
    s = open_case(tenant)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    return s, challenge, link_token_in(last_email().body)


def test_the_link_is_a_256_bit_token_stored_only_as_its_hash(acme):
    _s, challenge, token = emailed_challenge(acme)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    row = reload(challenge)
    assert row.link_hash and token not in row.link_hash
    assert token not in stored_text(acme)


def test_get_shows_a_button_and_changes_nothing(acme):
    _s, challenge, token = emailed_challenge(acme)
    before = events(acme, "verification.challenge_sent")
    response = Client().get(f"/verify/{token}/")
    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert response["Cache-Control"].startswith("max-age=0")
    assert reload(challenge).status == ChallengeStatus.OPEN
    assert not Evidence.objects.filter(tenant=acme).exists()
    assert events(acme, "verification.challenge_sent") == before
    assert events(acme, "verification.challenge_verified") == []


def test_the_owners_post_counts_like_the_right_code(acme):
    s, challenge, token = emailed_challenge(acme)
    response = Client().post(f"/verify/{token}/")
    assert response.status_code == 200 and b"recorded" in response.content
    evidence = Evidence.objects.get(case=s.case)
    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S2",
        "email_code",
        "accepted",
    )
    assert evidence.collected_by == s.agent
    row = reload(challenge)
    assert row.status == ChallengeStatus.VERIFIED and row.verified_via == "link"
    (verified,) = events(acme, "verification.challenge_verified")
    assert verified.actor_label == "account-owner" and verified.data["via"] == "link"


def test_the_link_works_once_and_a_second_use_is_a_reuse_attempt(acme):
    s, _challenge, token = emailed_challenge(acme)
    assert Client().post(f"/verify/{token}/").status_code == 200
    unknown = Client().post("/verify/not-a-token-at-all/")
    second = Client().post(f"/verify/{token}/")
    assert second.status_code == unknown.status_code == 404
    assert page(second) == page(unknown)  # a used link looks like an unknown one
    assert Evidence.objects.filter(case=s.case).count() == 1
    assert len(events(acme, "token.reuse_attempt")) == 1
    assert [e.data["type"] for e in events(acme, "alert.raised")] == ["token_reuse"]
    assert Client().get(f"/verify/{token}/").status_code == 404


def test_the_code_is_dead_once_the_link_was_used(acme):
    s, challenge, token = emailed_challenge(acme)
    code = code_in(last_email().body)
    Client().post(f"/verify/{token}/")
    with pytest.raises(DomainError) as refused:
        challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=code)
    assert refused.value.code == "challenge.code_invalid"
    assert len(events(acme, "token.reuse_attempt")) == 1


def test_an_expired_link_is_refused(acme):
    s, challenge, token = emailed_challenge(acme)
    VerificationChallenge.objects.filter(pk=challenge.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert Client().get(f"/verify/{token}/").status_code == 404
    assert Client().post(f"/verify/{token}/").status_code == 404
    assert not Evidence.objects.filter(case=s.case).exists()
    assert reload(challenge).status == ChallengeStatus.EXPIRED


def test_an_sms_code_has_no_link(acme, settings, tmp_path):
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.mobile)
    assert reload(challenge).link_hash is None
    assert "/verify/" not in settings.SMS_OUTBOX_PATH.read_text()


# --- the manager's attestation --------------------------------------------------------------


def requested(tenant):
    s = open_managed_case(tenant)
    challenge = attestation_request(actor=s.agent, case=s.case)
    message = last_email()
    assert message.to == [MANAGER_EMAIL]
    return s, challenge, link_token_in(message.body, "attest")


def test_the_request_goes_to_the_manager_contact_on_record_with_a_hashed_link(acme):
    s, challenge, token = requested(acme)
    row = reload(challenge)
    assert row.kind == "attestation" and row.attester_person == s.manager.person_id
    assert row.expires_at - row.created_at <= timedelta(hours=24)
    assert token not in stored_text(acme)
    (sent,) = events(acme, "verification.attestation_requested")
    assert sent.data["contact"] == s.manager_contact.masked
    assert MANAGER_EMAIL not in stored_text(acme)


def test_the_link_leads_to_sign_in_first(acme):
    _s, _challenge, token = requested(acme)
    response = Client().get(f"/attest/{token}/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_only_the_manager_signed_in_as_themselves_records_s3(acme):
    s, challenge, token = requested(acme)
    browser = signed_in_client(s.manager)
    page = browser.get(f"/attest/{token}/")
    assert page.status_code == 200 and s.account.display_name.encode() in page.content
    assert not Evidence.objects.filter(case=s.case).exists()  # a GET changes nothing

    response = browser.post(f"/attest/{token}/")

    assert response.status_code == 200
    evidence = Evidence.objects.get(case=s.case)
    assert (evidence.signal_class, evidence.method, evidence.result) == (
        "S3",
        "manager_attestation",
        "accepted",
    )
    assert evidence.contact_method_id == s.manager_contact.pk
    assert evidence.details["attested_by"] == s.manager.username
    row = reload(challenge)
    assert row.status == ChallengeStatus.VERIFIED and row.confirmed_by == s.manager
    (confirmed,) = events(acme, "verification.attestation_confirmed")
    assert confirmed.actor_label == s.manager.username

    again = browser.post(f"/attest/{token}/")
    assert again.status_code == 404
    assert len(events(acme, "token.reuse_attempt")) == 1
    assert Evidence.objects.filter(case=s.case).count() == 1


def test_anyone_else_signed_in_is_refused_and_recorded(acme):
    s, challenge, token = requested(acme)
    intruder = staff(Role.SUPERVISOR, tenant=acme)
    browser = signed_in_client(intruder)
    assert browser.get(f"/attest/{token}/").status_code == 403
    assert events(acme, "policy.violation") == []  # a GET records nothing

    response = browser.post(f"/attest/{token}/")

    assert response.status_code == 403
    assert not Evidence.objects.filter(case=s.case).exists()
    (violation,) = events(acme, "policy.violation")
    assert violation.data["code"] == "attestation.wrong_person"
    assert violation.actor_label == intruder.username
    assert [e.data["type"] for e in events(acme, "alert.raised")] == ["attestation_wrong_person"]
    assert reload(challenge).status == ChallengeStatus.OPEN  # still there for the manager
    assert signed_in_client(s.manager).post(f"/attest/{token}/").status_code == 200


def test_the_agent_cannot_attest_even_holding_the_link(acme):
    s, _challenge, token = requested(acme)
    response = signed_in_client(s.agent).post(f"/attest/{token}/")
    assert response.status_code == 403
    assert not Evidence.objects.filter(case=s.case).exists()


def refusal_of(tenant, **attributes) -> str:
    s = open_case(tenant, **attributes)
    with pytest.raises(DomainError) as refused:
        attestation_request(actor=s.agent, case=s.case)
    assert mail.outbox == []
    return refused.value.code


def test_no_manager_contact_on_record_is_refused(acme):
    assert refusal_of(acme) == "attestation.no_manager_contact"


def test_a_manager_without_a_sign_in_is_refused(acme):
    manager_account = make_account_with(acme)  # no person id: not staff
    s = open_case(acme, manager_external_id=manager_account.external_id)
    contact(s.account, "manager", MANAGER_EMAIL)
    with pytest.raises(DomainError) as refused:
        attestation_request(actor=s.agent, case=s.case)
    assert refused.value.code == "attestation.manager_not_staff"
    (recorded,) = events(acme, "verification.challenge_refused")
    assert recorded.data["code"] == "attestation.manager_not_staff"


def test_a_manager_contact_in_quarantine_is_refused(acme):
    s = open_managed_case(acme)
    s.manager_contact.registered_at = timezone.now() - timedelta(days=2)
    s.manager_contact.save(update_fields=["registered_at"])
    with pytest.raises(DomainError) as refused:
        attestation_request(actor=s.agent, case=s.case)
    assert refused.value.code == "evidence.contact_changed_in_quarantine"


def test_the_agent_cannot_be_the_attesting_manager(acme):
    # The manager themself opens the case on their report's account: they may not attest to it.
    s = open_managed_case(acme, manager_opens=True)
    with pytest.raises(DomainError) as refused:
        attestation_request(actor=s.manager, case=s.case)
    assert refused.value.code == "sod.attester_is_party"


def test_an_attestation_link_is_bound_to_its_kind(acme):
    s, _challenge, token = requested(acme)
    assert Client().get(f"/verify/{token}/").status_code == 404
    assert Client().post(f"/verify/{token}/").status_code == 404
    assert not Evidence.objects.filter(case=s.case).exists()

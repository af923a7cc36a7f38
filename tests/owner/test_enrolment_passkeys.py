"""Passkeys in the enrolment session: registered only with user verification, from this
origin, over a challenge the server kept, in a format the tenant allows; each is a contact
method under quarantine, announced to every existing address, and "this wasn't me" on that
notice freezes the account and takes it back. A counter that goes back disables a passkey."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from recovery.cases.services import case_open
from recovery.models import ContactMethod, ProtectedAccount
from recovery.notifications.models import NoticeEvent, OwnerNotice
from recovery.notifications.services import notice_send, repudiation_token
from recovery.owner import webauthn
from recovery.owner.choices import PasskeyStatus, PortalSessionStatus
from recovery.owner.enrolment import EnrolmentRefused, enrolment_link_send
from recovery.owner.models import OwnerPasskey, OwnerPortalSession, RecoveryCodeSet
from recovery.owner.passkeys import passkey_mark_cloned
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from tenants.choices import Role

from ..factories import notices_planned, staff, step_up
from .owners import enrolled_client, owner_account, portal_session
from .softkey import SoftKey

pytestmark = pytest.mark.django_db

OPTIONS = "/owner/passkeys/register/options/"
REGISTER = "/owner/passkeys/register/"


@pytest.fixture
def account(acme) -> ProtectedAccount:
    return owner_account(acme, kinds=("email", "mobile", "desk_phone"))


@pytest.fixture
def owner(account) -> Client:
    return enrolled_client(account)


@pytest.fixture
def key() -> SoftKey:
    return SoftKey(origin=webauthn.expected_origin()[0], rp_id=webauthn.rp_id())


def options_of(client: Client) -> str:
    response = client.post(OPTIONS)
    assert response.status_code == 200, response.content
    return response.content.decode()


def register(client: Client, credential: str, label: str = ""):
    body = json.dumps({"credential": json.loads(credential), "label": label})
    return client.post(REGISTER, body, content_type="application/json")


def enrol_passkey(client: Client, key: SoftKey, **create) -> OwnerPasskey:
    response = register(client, key.create(options_of(client), **create), "phone")
    assert response.status_code == 200, response.content
    return OwnerPasskey.objects.get(credential_id=key.id)


def refusals(account: ProtectedAccount) -> list[str]:
    events = AuditEvent.objects.filter(
        tenant_id=account.tenant_id, action="owner.passkey_refused", data__account=account.pk
    )
    return [e.data["reason"] for e in events.order_by("seq")]


def activate_policy(tenant, extra: str) -> None:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8") + extra
    author, approver = (staff(Role.TENANT_ADMIN, tenant=tenant) for _ in range(2))
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


# --- registration ----------------------------------------------------------------------------


def test_options_require_user_verification_and_exclude_existing_passkeys(owner, key):
    options = json.loads(options_of(owner))
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "direct"
    assert options["excludeCredentials"] == []
    enrol_passkey(owner, key)
    again = json.loads(options_of(owner))
    assert [c["id"] for c in again["excludeCredentials"]] == [key.id]


def test_a_passkey_is_registered_with_its_facts_and_its_own_contact_method(account, owner, key):
    key.sign_count, key.backed_up = 3, True
    passkey = enrol_passkey(owner, key)

    assert passkey.status == PasskeyStatus.ACTIVE and passkey.label == "phone"
    assert passkey.aaguid == "0badc0de-0bad-c0de-0bad-c0de0badc0de"
    assert passkey.sign_count == 3
    assert passkey.backup_eligible and passkey.backup_state
    assert passkey.attestation_format == "none"
    assert passkey.registered_in == portal_session(account)
    contact = passkey.contact
    assert (contact.kind, contact.source, contact.value) == ("passkey", "owner_portal", key.id)
    assert not contact.is_notification and contact.replaced_at is None
    assert timezone.now() - contact.registered_at < timedelta(minutes=1)
    [added] = AuditEvent.objects.filter(action="owner.passkey_added", data__passkey=passkey.pk)
    assert added.data["user_verified"] is True and added.data["aaguid"] == passkey.aaguid


def test_adding_a_passkey_notifies_every_existing_address_and_not_the_passkey(account, owner, key):
    passkey = enrol_passkey(owner, key)
    notices_planned(account.tenant)  # what a worker does once it has committed
    notices = OwnerNotice.objects.filter(account=account, event=NoticeEvent.PASSKEY_ADDED)
    addresses = ContactMethod.objects.filter(
        account=account, kind__in=["email", "mobile", "desk_phone"]
    )
    assert sorted(n.contact_id for n in notices) == sorted(c.pk for c in addresses)
    assert all(n.case_id is None for n in notices)
    assert passkey.contact_id not in {n.contact_id for n in notices}

    email_notice = notices.get(contact__kind="email")
    mail.outbox.clear()
    assert notice_send(notice_id=email_notice.pk) == "sent"
    [message] = mail.outbox
    assert "A passkey was added to your account" in message.body
    assert f"/not-me/{repudiation_token(email_notice)}/" in message.body
    assert AuditEvent.objects.filter(
        action="notice.sent", target_id=str(account.pk), data__notice=email_notice.pk
    ).exists()


@pytest.mark.parametrize(
    ("bend", "reason"),
    [
        ("origin", "origin_mismatch"),
        ("rp_id", "rp_id_mismatch"),
        ("no_user_verification", "user_not_verified"),
        ("reused_options", "challenge_missing"),
        ("expired_options", "challenge_missing"),
        ("other_challenge", "challenge_mismatch"),
    ],
)
def test_a_registration_that_does_not_verify_saves_nothing(account, owner, key, bend, reason):
    options = options_of(owner)
    if bend == "origin":
        credential = key.create(options, origin="https://vouchsafe.attacker.example")
    elif bend == "rp_id":
        bent = json.loads(options)
        bent["rp"]["id"] = "attacker.example"
        credential = key.create(json.dumps(bent))
    elif bend == "no_user_verification":
        key.user_verified = False
        credential = key.create(options)
    elif bend == "reused_options":
        assert register(owner, key.create(options)).status_code == 200
        credential = SoftKey(origin=key.origin).create(options)
    elif bend == "expired_options":
        cache.delete(f"owner:webauthn:register:{portal_session(account).pk}")
        credential = key.create(options)
    else:
        bent = json.loads(options)
        bent["challenge"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        credential = key.create(json.dumps(bent))
    before = OwnerPasskey.objects.filter(account=account).count()
    response = register(owner, credential)
    assert response.status_code == 400
    assert response.json()["code"] == f"passkey.{reason}"
    assert OwnerPasskey.objects.filter(account=account).count() == before
    assert refusals(account)[-1] == reason


def test_a_malformed_answer_is_refused(account, owner):
    options_of(owner)
    response = owner.post(REGISTER, "{not json", content_type="application/json")
    assert response.status_code == 400
    response = register(owner, json.dumps({"id": "x", "rawId": "y", "type": "public-key"}))
    assert response.status_code == 400
    assert not OwnerPasskey.objects.filter(account=account).exists()


def test_an_attestation_format_the_policy_does_not_allow_is_refused(acme, account, owner, key):
    activate_policy(acme, "owner_portal:\n  allowed_attestation_formats: [none]\n")
    response = register(owner, key.create(options_of(owner), fmt="packed"))
    assert response.status_code == 400
    assert response.json()["code"] == "passkey.attestation_format_not_allowed"
    assert refusals(account) == ["attestation_format_not_allowed"]
    assert not OwnerPasskey.objects.filter(account=account).exists()

    passkey = enrol_passkey(owner, SoftKey(origin=key.origin), fmt="none")
    assert passkey.attestation_format == "none"


def test_packed_self_attestation_is_accepted_by_default(owner, key):
    assert enrol_passkey(owner, key, fmt="packed").attestation_format == "packed"


def test_the_same_credential_cannot_be_registered_twice(account, owner, key):
    enrol_passkey(owner, key)
    response = register(owner, key.create(options_of(owner)))
    assert response.json()["code"] == "passkey.already_registered"
    assert OwnerPasskey.objects.filter(account=account).count() == 1


def test_a_case_opened_during_the_session_stops_enrolment(acme, account, owner, key):
    options = options_of(owner)
    case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    response = register(owner, key.create(options))
    assert response.status_code == 403
    assert response.json()["code"] == "enrolment.open_case"
    assert owner.post(OPTIONS).status_code == 403
    assert not OwnerPasskey.objects.filter(account=account).exists()
    assert refusals(account) == ["enrolment.open_case"]


def test_a_new_passkey_is_quarantined_but_not_for_the_session_that_added_it(account, owner, key):
    enrol_passkey(owner, key)
    # The same session may go on (saved codes next) ...
    assert owner.post("/owner/codes/").status_code == 200
    # ... but no new enrolment starts inside the quarantine of what it added.
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_link_send(account=account, who=Actor.system("test"), via="test")
    assert refused.value.code == "enrolment.contact_in_quarantine"


def test_an_ended_session_registers_nothing(account, owner, key):
    options = options_of(owner)
    OwnerPortalSession.objects.filter(account=account).update(status=PortalSessionStatus.ENDED)
    assert register(owner, key.create(options)).status_code == 403
    assert not OwnerPasskey.objects.filter(account=account).exists()


# --- removal ---------------------------------------------------------------------------------


def test_removing_a_passkey_closes_its_contact_and_notifies(account, owner, key):
    passkey = enrol_passkey(owner, key)
    page = owner.get(f"/owner/passkeys/{passkey.pk}/remove/")
    assert page.status_code == 200
    passkey.refresh_from_db()
    assert passkey.status == PasskeyStatus.ACTIVE  # a GET changes nothing

    response = owner.post(f"/owner/passkeys/{passkey.pk}/remove/")
    assert response.status_code == 302
    passkey.refresh_from_db()
    assert passkey.status == PasskeyStatus.REMOVED and passkey.removed_at
    assert passkey.contact.replaced_at is not None
    notices_planned(account.tenant)  # what a worker does once it has committed
    removed = OwnerNotice.objects.filter(account=account, event=NoticeEvent.PASSKEY_REMOVED)
    assert removed.count() == 3
    assert owner.post(f"/owner/passkeys/{passkey.pk}/remove/").status_code == 404


def test_another_accounts_passkey_cannot_be_removed(acme, owner, key):
    other_account = owner_account(acme)
    other = enrolled_client(other_account)
    theirs = enrol_passkey(other, key)
    assert owner.post(f"/owner/passkeys/{theirs.pk}/remove/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == PasskeyStatus.ACTIVE


# --- clones ----------------------------------------------------------------------------------


def test_a_counter_that_goes_back_is_a_clone_and_disables_the_passkey(account, owner, key):
    passkey = enrol_passkey(owner, key)
    challenge = b"c" * 32
    options = webauthn.assertion_options([passkey], challenge)
    first = webauthn.assertion_verify(key.get(options, sign_count=7), challenge, passkey)
    assert first.new_sign_count == 7
    OwnerPasskey.objects.filter(pk=passkey.pk).update(sign_count=7)
    passkey.refresh_from_db()

    with pytest.raises(webauthn.PasskeyCloned) as cloned:
        webauthn.assertion_verify(key.get(options, sign_count=5), challenge, passkey)
    assert (cloned.value.stored, cloned.value.presented) == (7, 5)
    # A forged answer (bad signature) is a refusal, never a clone: it cannot disable a passkey.
    forged = SoftKey(origin=key.origin, credential_id=key.credential_id)
    with pytest.raises(webauthn.PasskeyRefused) as refused:
        webauthn.assertion_verify(forged.get(options, sign_count=1), challenge, passkey)
    assert not isinstance(refused.value, webauthn.PasskeyCloned)

    assert passkey_mark_cloned(passkey=passkey, presented_sign_count=5, context="test")
    passkey.refresh_from_db()
    assert passkey.status == PasskeyStatus.CLONED
    assert passkey.contact.replaced_at is not None
    detected = AuditEvent.objects.filter(action="owner.passkey_clone_detected")
    assert detected.filter(data__passkey=passkey.pk).count() == 1
    alert = AuditEvent.objects.get(action="alert.raised", data__type="passkey_cloned")
    assert alert.data["passkey"] == passkey.pk
    assert not passkey_mark_cloned(passkey=passkey, presented_sign_count=5)


# --- "this wasn't me" on an account notice ------------------------------------------------


def test_not_me_on_an_account_notice_freezes_and_takes_back_what_was_enrolled(account, owner, key):
    passkey = enrol_passkey(owner, key)
    assert owner.post("/owner/codes/").status_code == 200
    code_set = RecoveryCodeSet.objects.get(account=account, replaced_at__isnull=True)
    notices_planned(account.tenant)  # what a worker does once it has committed
    notice = OwnerNotice.objects.filter(account=account, event=NoticeEvent.PASSKEY_ADDED).first()
    url = f"/not-me/{repudiation_token(notice)}/"

    ask = Client().get(url)
    assert ask.status_code == 200 and b"passkeys and saved recovery codes" in ask.content
    account.refresh_from_db()
    assert account.frozen_at is None  # a GET changes nothing

    assert Client().post(url).status_code == 200
    account.refresh_from_db()
    passkey.refresh_from_db()
    code_set.refresh_from_db()
    assert account.frozen_at is not None
    assert passkey.status == PasskeyStatus.REMOVED and passkey.contact.replaced_at
    assert code_set.replaced_at is not None
    assert portal_session(account).status == PortalSessionStatus.ENDED
    assert owner.get("/owner/codes/").status_code == 403  # the session is gone
    [event] = AuditEvent.objects.filter(action="owner.account_repudiated", data__notice=notice.pk)
    assert event.data["passkeys_removed"] == [passkey.pk]
    assert event.data["code_sets_removed"] == [code_set.pk]
    assert AuditEvent.objects.filter(
        action="alert.raised", data__type="account_repudiation", data__notice=notice.pk
    ).exists()

    assert Client().post(url).status_code == 200  # a second click changes nothing more
    assert AuditEvent.objects.filter(action="owner.account_repudiated").count() == 1


def test_not_me_keeps_passkeys_older_than_the_quarantine(account, owner, key):
    old = enrol_passkey(owner, key)
    ContactMethod.objects.filter(pk=old.contact_id).update(
        registered_at=timezone.now() - timedelta(days=30)
    )
    newer = enrol_passkey(owner, SoftKey(origin=key.origin))
    notices_planned(account.tenant)  # what a worker does once it has committed
    notice = OwnerNotice.objects.filter(account=account, event=NoticeEvent.PASSKEY_ADDED).last()
    assert Client().post(f"/not-me/{repudiation_token(notice)}/").status_code == 200
    old.refresh_from_db()
    newer.refresh_from_db()
    assert old.status == PasskeyStatus.ACTIVE
    assert newer.status == PasskeyStatus.REMOVED

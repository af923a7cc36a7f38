"""After an MFA reset the owner registers the new authenticator in the artifact session opened
by the temporary access pass (R-11); a T2 account accepts only a phishing-resistant one.

The passkey is made by a software authenticator (tests/owner/softkey.py, a P-256 key) that
answers the server's real creation options, so every check of the registration runs.
"""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from recovery.artifacts.models import RecoveryArtifact
from recovery.models import ContactMethod, ProtectedAccount
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import repudiation_token
from recovery.owner.binding import (
    AUTHENTICATOR_METHODS,
    PHISHING_RESISTANT,
    BindingRefused,
    authenticator_allowed,
    owner_authenticator_bind,
)
from recovery.owner.choices import PasskeyStatus, PortalSessionStatus
from recovery.owner.models import OwnerPasskey
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import notices_planned, staff
from .binding_helpers import events, mfa_session, outbound_texts, tables_containing
from .softkey import SoftKey

pytestmark = pytest.mark.django_db

ORIGIN = "http://localhost:8000"
OPTIONS_URL = "/owner/recovery/passkey/options/"
BIND_URL = "/owner/recovery/authenticator/"


@pytest.fixture
def sms_outbox(settings, tmp_path):
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    settings.PUBLIC_BASE_URL = ORIGIN
    settings.WEBAUTHN_RP_ID = ""
    settings.WEBAUTHN_ORIGINS = []
    return settings.SMS_OUTBOX_PATH


def options_for(client: Client) -> str:
    response = client.post(OPTIONS_URL, "{}", content_type="application/json")
    assert response.status_code == 200, response.content
    return response.content.decode()


def bind(client: Client, credential: str | None, method: str = "passkey"):
    body = {"method": method, "credential": json.loads(credential) if credential else None}
    return client.post(BIND_URL, json.dumps(body), content_type="application/json")


def test_the_pass_opens_an_mfa_session_where_the_owner_binds_a_passkey(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    session = recovery.session
    assert session.purpose == "mfa" and session.case_id == recovery.case.pk
    page = recovery.client.get("/owner/recovery/")
    assert page.status_code == 200 and b'id="recovery-passkey"' in page.content

    key = SoftKey(origin=ORIGIN)
    options = options_for(recovery.client)
    assert json.loads(options)["authenticatorSelection"]["userVerification"] == "required"
    response = bind(recovery.client, key.create(options))

    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "next": "/owner/recovery/"}
    passkey = OwnerPasskey.objects.get(account=recovery.case.account)
    assert passkey.credential_id == key.id and passkey.registered_in_id == session.pk
    contact = ContactMethod.objects.get(pk=passkey.contact_id)
    assert (contact.kind, contact.source, contact.is_notification) == (
        "passkey",
        "owner_portal",
        False,
    )
    [event] = events(acme, "owner.authenticator_bound", recovery.case)
    artifact = RecoveryArtifact.objects.get(case=recovery.case)
    assert event.data["artifact_hash"] == artifact.secret_hash
    assert event.data["credential_id"] == key.id and event.data["phishing_resistant"] is True
    assert "connector" in event.data
    session.refresh_from_db()
    assert session.bound_at is not None and session.bound_detail["credential_id"] == key.id
    # The notices: every address held before the case, none added since.
    notices_planned(acme)  # what a worker does once it has committed
    notices = OwnerNotice.objects.filter(case=recovery.case, event="authenticator_bound")
    held = set(
        recovery.case.account.contact_methods.filter(
            kind__in=["email", "mobile"], registered_at__lt=recovery.case.created_at
        ).values_list("pk", flat=True)
    )
    assert {n.contact_id for n in notices if n.recipient == "owner"} == held and held
    # The agent sees that it happened, and when; not the credential.
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))
    case_page = agent.get(f"/t/{acme.slug}/cases/{recovery.case.pk}/")
    assert b"New passkey bound by the owner at" in case_page.content
    assert key.id.encode() not in case_page.content
    # One binding per session: neither new options nor a second passkey.
    refused = recovery.client.post(OPTIONS_URL, "{}", content_type="application/json")
    assert refused.status_code == 409 and refused.json()["code"] == "binding.already_bound"
    again = bind(recovery.client, SoftKey(origin=ORIGIN).create(options))
    assert again.status_code == 403 and again.json()["code"] == "binding.already_bound"
    assert OwnerPasskey.objects.filter(account=recovery.case.account).count() == 1


def test_the_pass_is_used_once_and_a_wrong_one_opens_nothing(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    assert Client().post("/owner/pass/", {"access_pass": recovery.token}).status_code == 410
    assert Client().post("/owner/pass/", {"access_pass": "not-a-pass"}).status_code == 410
    assert Client().get("/owner/pass/").status_code == 200
    assert recovery.token not in str(events(acme, "owner.session_started")[-1].data)


def test_a_refused_passkey_is_recorded_and_the_session_stays_usable(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    options = options_for(recovery.client)
    wrong_site = SoftKey(origin="https://vouchsafe.example.evil")
    response = bind(recovery.client, wrong_site.create(options))
    assert response.status_code == 400 and response.json()["code"] == "passkey.origin_mismatch"
    no_uv = SoftKey(origin=ORIGIN, user_verified=False)
    response = bind(recovery.client, no_uv.create(options))
    assert response.status_code == 400 and response.json()["code"] == "passkey.user_not_verified"
    reasons = [e.data["reason"] for e in events(acme, "owner.binding_refused", recovery.case)]
    assert reasons == ["passkey.origin_mismatch", "passkey.user_not_verified"]
    assert not OwnerPasskey.objects.filter(account=recovery.case.account).exists()
    good = SoftKey(origin=ORIGIN)
    assert bind(recovery.client, good.create(options_for(recovery.client))).status_code == 200


def test_a_challenge_from_another_session_is_refused(acme, sms_outbox):
    """The registration is bound to this session's own challenge, kept server-side."""
    first = mfa_session(acme, sms_outbox)
    second = mfa_session(acme, sms_outbox)
    key = SoftKey(origin=ORIGIN)
    answer_for_first = key.create(options_for(first.client))
    response = bind(second.client, answer_for_first)
    assert response.status_code == 400 and response.json()["code"] == "passkey.challenge_mismatch"
    assert not OwnerPasskey.objects.filter(credential_id=key.id).exists()


# --- T2: phishing-resistant only -------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(AUTHENTICATOR_METHODS))
def test_t2_allows_only_phishing_resistant_methods(method):
    decision = authenticator_allowed(tier="T2", method=method)
    if method in PHISHING_RESISTANT:
        assert decision.allowed
    else:
        assert (decision.allowed, decision.code) == (False, "binding.not_phishing_resistant")
    assert {"passkey"} == PHISHING_RESISTANT
    lower = authenticator_allowed(tier="T1", method=method)
    assert lower.allowed == (method == "passkey")
    if method != "passkey":
        assert lower.code == "binding.method_unavailable"  # only passkeys are bound here


def t2_now(recovery) -> None:
    """The account is privileged now (the system of record gave it an admin role since the
    case was opened): the binding follows the higher tier."""
    ProtectedAccount.objects.filter(pk=recovery.case.account_id).update(
        admin_roles=["Global Administrator"]
    )


def test_a_t2_account_refuses_a_method_that_is_not_phishing_resistant(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    t2_now(recovery)
    page = recovery.client.get("/owner/recovery/")
    assert b"only a phishing-resistant sign-in method can be added" in page.content

    for method in ("totp", "sms", "push"):
        response = bind(recovery.client, None, method=method)
        assert response.status_code == 403
        assert response.json()["code"] == "binding.not_phishing_resistant"
    refusals = events(acme, "owner.binding_refused", recovery.case)
    assert [e.data["reason"] for e in refusals] == ["binding.not_phishing_resistant"] * 3
    assert {e.data["tier"] for e in refusals} == {"T2"}
    with pytest.raises(BindingRefused) as caught:
        owner_authenticator_bind(session=recovery.session, method="totp", credential_json="{}")
    assert caught.value.code == "binding.not_phishing_resistant"
    # A passkey is phishing-resistant: it is accepted for the same T2 account.
    key = SoftKey(origin=ORIGIN)
    assert bind(recovery.client, key.create(options_for(recovery.client))).status_code == 200
    bound = events(acme, "owner.authenticator_bound", recovery.case)[-1]
    assert bound.data["tier"] == "T2" and bound.data["phishing_resistant"] is True


def test_a_t0_account_is_told_other_methods_are_not_bound_here(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    response = bind(recovery.client, None, method="totp")
    assert response.status_code == 403 and response.json()["code"] == "binding.method_unavailable"


def test_nothing_secret_leaves_the_session(acme, sms_outbox):
    recovery = mfa_session(acme, sms_outbox)
    key = SoftKey(origin=ORIGIN)
    assert bind(recovery.client, key.create(options_for(recovery.client))).status_code == 200
    assert tables_containing(recovery.token) == []  # the pass is kept only as a hash
    assert recovery.token not in outbound_texts()  # emails; the pass went by text only
    assert not [m for m in mail.outbox if recovery.token in m.body]


def test_this_wasnt_me_takes_back_the_passkey_bound_after_the_recovery(acme, sms_outbox):
    """Whoever bound a passkey with the recovery keeps nothing once the owner repudiates."""
    recovery = mfa_session(acme, sms_outbox)
    key = SoftKey(origin=ORIGIN)
    assert bind(recovery.client, key.create(options_for(recovery.client))).status_code == 200
    notices_planned(acme)  # what a worker does once it has committed
    notice = OwnerNotice.objects.filter(case=recovery.case, event="authenticator_bound").first()

    page = Client().post(f"/not-me/{repudiation_token(notice)}/")

    assert page.status_code == 200
    passkey = OwnerPasskey.objects.get(account=recovery.case.account)
    assert passkey.status == PasskeyStatus.REMOVED
    assert ContactMethod.objects.get(pk=passkey.contact_id).replaced_at is not None
    recovery.session.refresh_from_db()
    assert recovery.session.status == PortalSessionStatus.ENDED
    [event] = events(acme, "case.repudiated", recovery.case)
    assert event.data["passkeys_removed"] == [passkey.pk]
    assert recovery.client.get("/owner/recovery/").status_code == 403

"""After execution the owner chooses the new password in the artifact session (R-10, R-11,
R-12), and the connector sets it in the real directory (Debian's slapd, started here).

What the directory holds is read back with ldap3 and proved by binding with the password; what
Vouchsafe holds is searched, every table of the database, for the password's text.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.utils import timezone

from audit.context import Actor
from recovery.artifacts.models import RecoveryArtifact
from recovery.artifacts.services import artifact_issue
from recovery.cases.models import RecoveryCase
from recovery.connectors import webhook
from recovery.connectors.base import CAPABILITY_MISSING, Capability
from recovery.connectors.webhook import WebhookConnector
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from recovery.owner.binding import BindingRefused, owner_authenticator_bind, owner_password_set
from recovery.owner.choices import PortalSessionStatus
from recovery.owner.models import OwnerPortalSession
from recovery.policy.selectors import policy_active
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import notices_planned, staff
from ..ldap_server import OLD_PASSWORD
from ..recovery.casework import contact
from .binding_helpers import (  # noqa: F401 - slapd is a fixture
    GOOD_PASSWORD,
    events,
    executed_password_reset,
    ldap_connector_for,
    outbound_texts,
    password_session,
    slapd,
    tables_containing,
)

pytestmark = pytest.mark.django_db

PASSWORD_URL = "/owner/recovery/password/"


def choose(recovery, password: str, again: str | None = None):
    return recovery.client.post(
        PASSWORD_URL, {"password": password, "password_again": password if again is None else again}
    )


@pytest.fixture
def ldap_acme(acme, slapd, monkeypatch):  # noqa: F811
    ldap_connector_for(acme, slapd, monkeypatch)
    return acme


# --- the password really is set, by the owner, and only there -------------------------------


def test_the_password_the_owner_chooses_is_set_in_the_directory(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    locked = slapd.read(recovery.dn)
    assert locked["userpassword"] == [f"{{CRYPT}}!vouchsafe-case-{recovery.case.pk}".encode()]
    assert locked["shadowlastchange"] == [b"0"]  # the recovery asked for a change

    page = recovery.client.get("/owner/recovery/")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = choose(recovery, GOOD_PASSWORD)

    assert response.status_code == 302 and response.url == "/owner/recovery/"
    assert slapd.can_bind(recovery.dn, GOOD_PASSWORD)  # the directory really has it
    assert not slapd.can_bind(recovery.dn, OLD_PASSWORD)
    entry = slapd.read(recovery.dn)
    assert entry["userpassword"][0].startswith(b"{SSHA}")  # hashed by the directory itself
    assert entry["shadowlastchange"] != [b"0"]  # and no longer "must change"
    session = recovery.session
    assert session.bound_at is not None and session.bound_detail["credential"] == "password"
    [event] = events(ldap_acme, "owner.password_set", recovery.case)
    artifact = RecoveryArtifact.objects.get(case=recovery.case)
    assert event.data["artifact_hash"] == artifact.secret_hash
    assert event.data["artifact"] == artifact.pk and event.data["session"] == session.pk
    assert event.data["connector"]["kind"] == "ldap" and event.data["connector"]["ok"] is True
    assert recovery.dn in event.data["credential_id"]
    assert event.actor_label == "account-owner"
    done = recovery.client.get("/owner/recovery/")
    assert done.status_code == 200 and b"Your new password was set at" in done.content


def test_the_password_is_nowhere_but_in_the_directory(ldap_acme, slapd, caplog):  # noqa: F811
    secret = "marble quiet orchard 7 spoons"
    recovery = password_session(ldap_acme, slapd)
    choose(recovery, "short")  # a refused attempt first: it must leave no trace either
    refused_page = choose(recovery, secret + " x", again=secret)  # mismatch, re-rendered
    assert secret.encode() not in refused_page.content
    response = choose(recovery, secret)
    assert response.status_code == 302
    assert slapd.can_bind(recovery.dn, secret)

    assert tables_containing(secret) == []  # audit trail, sessions, notices, auditlog …
    assert tables_containing("spoons") == []
    assert secret not in outbound_texts()
    assert secret not in caplog.text
    agent = signed_in_client(staff(Role.AGENT, tenant=ldap_acme))
    page = agent.get(f"/t/{ldap_acme.slug}/cases/{recovery.case.pk}/")
    assert page.status_code == 200
    assert secret.encode() not in page.content
    when = timezone.localtime(recovery.session.bound_at).strftime("%H:%M")
    assert f"Password set by the owner at {when}".encode() in page.content


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("correct horse", "password.too_short"),  # 13 < the default 15
        ("x" * 10 + " plum " + "y" * 120, "password.too_long"),
        ("ManchesterUnited", "password.breached"),  # Django's common-password list
        ("abababababababababab", "password.repetitive"),
        ("bell\x07tower\tsaffron", "password.invalid_characters"),
    ],
)
def test_a_password_breaking_a_rule_is_refused_with_its_code(ldap_acme, slapd, password, code):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    before = slapd.read(recovery.dn)

    response = choose(recovery, password)

    assert response.status_code == 400
    assert slapd.read(recovery.dn)["userpassword"] == before["userpassword"]
    [refused] = events(ldap_acme, "owner.binding_refused", recovery.case)
    assert refused.data["reason"] == code and code in refused.data["reasons"]
    assert password not in str(refused.data)
    # Nothing is lost: the same session sets a good password afterwards.
    assert recovery.session.bound_at is None
    assert choose(recovery, GOOD_PASSWORD).status_code == 302
    assert slapd.can_bind(recovery.dn, GOOD_PASSWORD)


def test_a_password_containing_the_username_is_refused(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    username = recovery.case.account.username  # "<external id>@example.test"
    local = username.split("@")[0].upper()
    for password in (f"my {username} forever", f"{local} is my name ok"):
        response = choose(recovery, password)
        assert response.status_code == 400
        assert b"Do not put your username in your password." in response.content
    reasons = [e.data["reason"] for e in events(ldap_acme, "owner.binding_refused")]
    assert reasons == ["password.contains_username"] * 2
    assert not slapd.can_bind(recovery.dn, f"my {username} forever")


def test_the_tenant_minimum_length_applies(ldap_acme, slapd, monkeypatch):  # noqa: F811
    from recovery.policy.rules import OwnerPortalRules, TenantPolicy

    recovery = password_session(ldap_acme, slapd)
    rules = OwnerPortalRules(password_min_length=20)
    monkeypatch.setattr(TenantPolicy, "owner_portal", property(lambda self: rules))
    assert policy_active(ldap_acme).owner_portal.password_min_length == 20
    response = choose(recovery, "nineteen characters")  # 19
    assert response.status_code == 400
    assert events(ldap_acme, "owner.binding_refused")[-1].data["reason"] == "password.too_short"
    assert choose(recovery, "twenty-one characters").status_code == 302


def test_a_password_in_the_breached_file_is_refused(ldap_acme, slapd, settings, tmp_path):  # noqa: F811
    import hashlib

    leaked = "river piano candle sixteen"

    def sha1(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest().upper()  # noqa: S324 - the list's key

    digests = [sha1(f"filler {n}") for n in range(500)] + [sha1(leaked)]
    path = tmp_path / "pwned.txt"
    path.write_text("".join(f"{d}:{n + 1}\n" for n, d in enumerate(sorted(digests))))
    settings.BREACHED_PASSWORDS_FILE = str(path)
    recovery = password_session(ldap_acme, slapd)

    assert choose(recovery, leaked).status_code == 400
    assert events(ldap_acme, "owner.binding_refused")[-1].data["reason"] == "password.breached"
    assert not slapd.can_bind(recovery.dn, leaked)
    assert choose(recovery, GOOD_PASSWORD).status_code == 302


def test_an_unreadable_breached_file_fails_closed(ldap_acme, slapd, settings, tmp_path):  # noqa: F811
    settings.BREACHED_PASSWORDS_FILE = str(tmp_path / "missing.txt")
    recovery = password_session(ldap_acme, slapd)
    assert choose(recovery, GOOD_PASSWORD).status_code == 400
    reason = events(ldap_acme, "owner.binding_refused")[-1].data["reason"]
    assert reason == "password.breach_list_unavailable"
    assert not slapd.can_bind(recovery.dn, GOOD_PASSWORD)


# --- connectors that cannot set a password ---------------------------------------------------


def test_the_manual_connector_refuses_with_a_coded_error_and_the_page_says_where_to_go(acme):
    recovery = password_session(acme)  # no connector configured: manual
    page = recovery.client.get("/owner/recovery/")
    assert page.status_code == 200 and b'name="password"' not in page.content
    assert b"does not let this service set your password" in page.content

    response = choose(recovery, GOOD_PASSWORD)
    assert response.status_code == 409
    [refused] = events(acme, "owner.binding_refused", recovery.case)
    assert refused.data["reason"] == CAPABILITY_MISSING
    assert refused.data["connector"]["kind"] == "manual"
    assert recovery.session.bound_at is None
    assert tables_containing(GOOD_PASSWORD) == []


def test_the_webhook_connector_never_sends_a_password(acme, monkeypatch):
    sent = []

    def enqueue(**kwargs):
        sent.append(kwargs)
        return "delivery-1", True

    # A recording outbox for this test only (monkeypatch puts the real one back after it).
    monkeypatch.setattr(webhook, "_outbox", enqueue)
    connector = WebhookConnector(
        tenant=acme, settings={"url": "https://hooks.example.test/x", "secret_env": "X"}
    )
    result = connector.password_set(
        account=ProtectedAccount(external_id="e1", username="u1"), password=GOOD_PASSWORD
    )
    assert not result.ok and result.detail["code"] == CAPABILITY_MISSING
    assert Capability.PASSWORD_SET not in connector.capabilities
    assert sent == []  # nothing queued for anyone's automation
    assert GOOD_PASSWORD not in str(result)


# --- a password session binds a password, nothing else; and the other way --------------


def test_a_password_session_cannot_enrol_an_authenticator(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    for url in ("/owner/recovery/passkey/options/", "/owner/recovery/authenticator/"):
        response = recovery.client.post(url, "{}", content_type="application/json")
        assert response.status_code == 403
    refused = events(ldap_acme, "owner.session_refused", recovery.case)
    assert [e.data["reason"] for e in refused] == ["wrong_purpose", "wrong_purpose"]
    # The service refuses it too, whoever calls it.
    with pytest.raises(BindingRefused) as caught:
        owner_authenticator_bind(session=recovery.session, method="passkey", credential_json="{}")
    assert caught.value.code == "binding.wrong_purpose"
    [recorded] = events(ldap_acme, "owner.binding_refused", recovery.case)
    assert recorded.data["reason"] == "binding.wrong_purpose"
    assert recovery.session.bound_at is None
    assert not recovery.case.account.passkeys.exists()


def test_a_password_session_cannot_use_the_enrolment_passkey_pages(ldap_acme, slapd):  # noqa: F811
    """R-12 also through the enrolment area's own passkey and code pages, and its service."""
    from recovery.owner.passkeys import passkey_registration_begin

    recovery = password_session(ldap_acme, slapd)
    for url in ("/owner/passkeys/register/options/", "/owner/passkeys/register/", "/owner/codes/"):
        response = recovery.client.post(url, "{}", content_type="application/json")
        assert response.status_code == 403, url
    assert not recovery.case.account.passkeys.exists()
    assert not recovery.case.account.code_sets.exists()
    with pytest.raises(Exception) as caught:
        passkey_registration_begin(session=recovery.session)
    assert getattr(caught.value, "code", "")  # a coded domain refusal, not a crash


def test_an_mfa_session_cannot_set_a_password(acme, slapd, monkeypatch, settings, tmp_path):  # noqa: F811
    from .binding_helpers import mfa_session

    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    ldap_connector_for(acme, slapd, monkeypatch)
    dn, _uid, number = slapd.add_person()
    recovery = mfa_session(acme, settings.SMS_OUTBOX_PATH, external_id=number)

    response = choose(recovery, GOOD_PASSWORD)
    assert response.status_code == 403
    assert events(acme, "owner.session_refused", recovery.case)[-1].data["reason"] == (
        "wrong_purpose"
    )
    with pytest.raises(BindingRefused) as caught:
        owner_password_set(session=recovery.session, password=GOOD_PASSWORD)
    assert caught.value.code == "binding.wrong_purpose"
    assert not slapd.can_bind(dn, GOOD_PASSWORD) and slapd.can_bind(dn, OLD_PASSWORD)
    assert tables_containing(GOOD_PASSWORD) == []


# --- the session is bound to its case, its artifact and its time ----------------------------


def test_a_session_acts_only_on_its_own_case(ldap_acme, slapd):  # noqa: F811
    first = password_session(ldap_acme, slapd)
    second = password_session(ldap_acme, slapd)

    assert choose(first, GOOD_PASSWORD).status_code == 302

    assert slapd.can_bind(first.dn, GOOD_PASSWORD)
    assert not slapd.can_bind(second.dn, GOOD_PASSWORD)  # the other account is untouched
    assert second.session.bound_at is None
    assert [e.target_id for e in events(ldap_acme, "owner.password_set")] == [str(first.case.pk)]
    # The second owner's cookie opens only the second session.
    page = second.client.get("/owner/recovery/")
    assert page.status_code == 200 and b"Your new password was set" not in page.content
    # A session used once cannot bind again.
    assert choose(first, "another fine password here").status_code == 409
    assert events(ldap_acme, "owner.binding_refused", first.case)[-1].data["reason"] == (
        "binding.already_bound"
    )
    assert slapd.can_bind(first.dn, GOOD_PASSWORD)


def test_a_used_link_opens_no_second_session(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    again = Client().post(f"/recover/{recovery.token}/")
    assert again.status_code == 410
    assert OwnerPortalSession.objects.filter(case=recovery.case).count() == 1


def test_a_newer_artifact_supersedes_the_open_session(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    case = RecoveryCase.objects.get(pk=recovery.case.pk)
    req = policy_active(ldap_acme).requirements(case.tier, case.case_type)
    with transaction.atomic():
        artifact_issue(case=case, req=req, actor=Actor.system("test-reissue"))

    assert choose(recovery, GOOD_PASSWORD).status_code == 409
    reason = events(ldap_acme, "owner.binding_refused", case)[-1].data["reason"]
    assert reason == "binding.session_superseded"
    assert not slapd.can_bind(recovery.dn, GOOD_PASSWORD)


def test_an_expired_session_is_refused(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    session = recovery.session
    artifact = session.artifact
    assert session.expires_at <= artifact.expires_at  # never outlives its artifact
    assert session.expires_at <= session.activated_at + timedelta(minutes=30)
    OwnerPortalSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert choose(recovery, GOOD_PASSWORD).status_code == 403  # the portal page refuses
    with pytest.raises(BindingRefused) as caught:  # and so does the service
        owner_password_set(session=session, password=GOOD_PASSWORD)
    assert caught.value.code == "binding.session_expired"
    assert not slapd.can_bind(recovery.dn, GOOD_PASSWORD)


def test_a_repudiated_case_binds_nothing(ldap_acme, slapd):  # noqa: F811
    from recovery.cases.services.repudiation import case_repudiate

    recovery = password_session(ldap_acme, slapd)
    notices_planned(recovery.case.tenant)  # what a worker does once the execution committed
    case_repudiate(notice=OwnerNotice.objects.filter(case=recovery.case).first())
    with pytest.raises(BindingRefused) as caught:  # the repudiation ended the session
        owner_password_set(session=recovery.session, password=GOOD_PASSWORD)
    assert caught.value.code == "binding.session_expired"
    # Had a session survived it, the ended case would still refuse (defence in depth).
    OwnerPortalSession.objects.filter(pk=recovery.session.pk).update(
        status=PortalSessionStatus.ACTIVE, ended_at=None
    )
    with pytest.raises(BindingRefused) as caught:
        owner_password_set(session=recovery.session, password=GOOD_PASSWORD)
    assert caught.value.code == "binding.case_ended"
    assert not slapd.can_bind(recovery.dn, GOOD_PASSWORD)


def test_a_staff_session_alone_cannot_set_a_password(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    agent = signed_in_client(staff(Role.AGENT, tenant=ldap_acme))
    response = agent.post(
        PASSWORD_URL, {"password": GOOD_PASSWORD, "password_again": GOOD_PASSWORD}
    )
    assert response.status_code == 403
    assert not slapd.can_bind(recovery.dn, GOOD_PASSWORD)


# --- every address held before the case hears of it -----------------------------------


def test_every_pre_existing_address_is_told_and_no_new_one(ldap_acme, slapd):  # noqa: F811
    recovery = password_session(ldap_acme, slapd)
    account = recovery.case.account
    newcomer = contact(account, "email", "new-address@example.test", age_days=0)
    held = set(
        account.contact_methods.filter(
            kind__in=["email", "mobile"],
            replaced_at__isnull=True,
            registered_at__lt=recovery.case.created_at,
        ).values_list("pk", flat=True)
    )
    assert len(held) >= 2

    assert choose(recovery, GOOD_PASSWORD).status_code == 302
    notices_planned(recovery.case.tenant)  # what a worker does once it has committed

    notices = OwnerNotice.objects.filter(case=recovery.case, event="password_set")
    told = {n.contact_id for n in notices if n.recipient == "owner"}
    assert told == held and newcomer.pk not in told
    assert all(n.account_id == account.pk for n in notices)
    from recovery.notifications.services import notice_send

    for notice in notices:
        notice_send(notice_id=notice.pk)
    sent = [m for m in mail.outbox if "Your password was changed" in m.body]
    assert sent and all(GOOD_PASSWORD not in m.body for m in sent)


def test_the_owner_binds_as_the_restricted_app_role(ldap_acme, slapd, app_role):  # noqa: F811
    """Row-level security on: the link, the session and the binding find their tenant from the
    token and the cookie alone."""
    from django.db import connection

    from ..approle import as_app_role

    case, token, dn = executed_password_reset(ldap_acme, slapd)
    client = Client()
    with connection.cursor() as cursor:  # no scope left over from the setup
        cursor.execute("SELECT set_config('vouchsafe.tenant_ids', '', true)")
    with as_app_role(None):
        assert client.post(f"/recover/{token}/").status_code == 302
        assert client.get("/owner/recovery/").status_code == 200
        response = client.post(
            PASSWORD_URL, {"password": GOOD_PASSWORD, "password_again": GOOD_PASSWORD}
        )
        assert response.status_code == 302
    assert slapd.can_bind(dn, GOOD_PASSWORD)
    assert events(ldap_acme, "owner.password_set", case)

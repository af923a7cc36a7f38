"""Enrolment links: sent only to an address on record (R-03, R-04), refused while a case is
open, the account is frozen or a contact changed inside the quarantine; single use, expiring by
database time; the self-service page answers alike whether the account exists or not."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db.models.functions import Now
from django.test import Client
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from recovery.cases.services import case_open
from recovery.models import ContactMethod, ProtectedAccount
from recovery.owner.choices import PortalSessionKind, PortalSessionStatus
from recovery.owner.enrolment import EnrolmentRefused, enrolment_invite, enrolment_link_send
from recovery.owner.models import OwnerPortalSession
from recovery.owner.sessions import cookie_name
from tenants.choices import Role
from tenants.exceptions import PolicyDenied

from ..api.conftest import staff_api_client
from ..factories import make_tenant, staff
from ..recovery.casework import contact
from .owners import ENROL_PATH, last_link_token, owner_account, portal_session

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


@pytest.fixture
def account(acme) -> ProtectedAccount:
    return owner_account(acme)


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


def actions(account: ProtectedAccount, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            tenant_id=account.tenant_id, action=action, data__account=account.pk
        ).order_by("seq")
    )


def refused_codes(account: ProtectedAccount) -> list[str]:
    return [e.data["code"] for e in actions(account, "owner.enrolment_refused")]


# --- sending -------------------------------------------------------------------------------


def test_link_goes_to_the_email_on_record_and_only_its_digest_is_kept(account, agent):
    session = enrolment_invite(actor=agent, account=account)

    assert len(mail.outbox) == 1
    email = ContactMethod.objects.get(account=account, kind="email")
    assert mail.outbox[0].to == [email.value]
    token = last_link_token()
    session.refresh_from_db()
    assert session.kind == PortalSessionKind.ENROLMENT
    assert session.status == PortalSessionStatus.PENDING
    assert session.sent_to_id == email.pk
    assert session.link_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(AuditEvent.objects.filter(tenant_id=account.tenant_id).values())
    lifetime = session.link_expires_at - session.created_at
    assert timedelta(hours=23) < lifetime <= timedelta(hours=24)
    [sent] = actions(account, "owner.enrolment_link_sent")
    assert sent.data["to"] == email.masked and sent.data["via"] == "staff_invite"


def test_link_goes_to_the_mobile_when_no_email_is_on_record(acme, settings, tmp_path):
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    account = owner_account(acme, kinds=("mobile", "desk_phone"))
    session = enrolment_link_send(account=account, who=SYSTEM, via="test")
    assert session.sent_to.kind == "mobile"
    assert f"/{ENROL_PATH}/" in settings.SMS_OUTBOX_PATH.read_text()
    assert mail.outbox == []


def test_refused_while_the_account_has_an_open_case(account, agent):
    case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_invite(actor=agent, account=account)
    assert refused.value.code == "enrolment.open_case"
    assert mail.outbox == []
    assert refused_codes(account) == ["enrolment.open_case"]  # recorded despite the refusal
    assert not OwnerPortalSession.objects.filter(account=account).exists()


def test_refused_while_the_account_is_frozen(account, agent):
    ProtectedAccount.objects.filter(pk=account.pk).update(frozen_at=timezone.now())
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_invite(actor=agent, account=account)
    assert refused.value.code == "enrolment.account_frozen"
    assert mail.outbox == []


@pytest.mark.parametrize(
    "change",
    ["new_contact", "replaced_contact", "sim_change"],
)
def test_refused_with_a_contact_change_inside_the_quarantine(account, agent, change):
    mobile = ContactMethod.objects.get(account=account, kind="mobile")
    if change == "new_contact":
        contact(account, "email", "second@example.test", age_days=2)
    elif change == "replaced_contact":
        ContactMethod.objects.filter(pk=mobile.pk).update(
            replaced_at=timezone.now() - timedelta(days=1)
        )
    else:
        ContactMethod.objects.filter(pk=mobile.pk).update(
            sim_changed_at=timezone.now() - timedelta(days=1)
        )
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_invite(actor=agent, account=account)
    assert refused.value.code == "enrolment.contact_in_quarantine"
    assert mail.outbox == []


def test_a_contact_changed_before_the_quarantine_does_not_block(account, agent):
    contact(account, "email", "second@example.test", age_days=15)  # quarantine: 14 days
    enrolment_invite(actor=agent, account=account)
    assert len(mail.outbox) == 1


def test_refused_without_an_email_or_mobile_on_record(acme, agent):
    account = owner_account(acme, kinds=("desk_phone", "manager"))
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_invite(actor=agent, account=account)
    assert refused.value.code == "enrolment.no_address"


def test_staff_may_only_invite_for_a_contact_of_the_account(acme, account, agent):
    other = owner_account(acme)
    foreign = ContactMethod.objects.get(account=other, kind="email")
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_invite(actor=agent, account=account, contact=foreign)
    assert refused.value.code == "enrolment.channel_not_allowed"
    assert mail.outbox == []


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.TRUSTED_REFEREE])
def test_only_agents_and_admins_invite(acme, account, role):
    with pytest.raises(PolicyDenied):
        enrolment_invite(actor=staff(role, tenant=acme), account=account)
    assert mail.outbox == []


def test_staff_of_another_tenant_cannot_invite(account):
    outsider = staff(Role.TENANT_ADMIN, tenant=make_tenant())
    with pytest.raises(PolicyDenied) as refused:
        enrolment_invite(actor=outsider, account=account)
    assert refused.value.code == "tenant.no_access"


def test_a_new_link_ends_the_previous_one(account, agent):
    first = enrolment_invite(actor=agent, account=account)
    old_token = last_link_token()
    enrolment_invite(actor=agent, account=account)
    first.refresh_from_db()
    assert first.status == PortalSessionStatus.ENDED
    assert Client().post(f"/{ENROL_PATH}/{old_token}/").status_code == 410
    assert refused_codes(account) == ["enrolment.link_invalid"]


# --- opening the link ------------------------------------------------------------------------


def test_get_shows_a_button_and_changes_nothing(account, agent):
    session = enrolment_invite(actor=agent, account=account)
    response = Client().get(f"/{ENROL_PATH}/{last_link_token()}/")
    assert response.status_code == 200
    assert b"<form" in response.content and b'method="post"' in response.content
    session.refresh_from_db()
    assert session.status == PortalSessionStatus.PENDING
    assert cookie_name() not in response.cookies


def test_the_link_opens_a_portal_session_once(account, agent):
    enrolment_invite(actor=agent, account=account)
    token = last_link_token()
    first = Client().post(f"/{ENROL_PATH}/{token}/")
    assert first.status_code == 302 and first["Location"] == "/owner/"
    cookie = first.cookies[cookie_name()]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    session = portal_session(account)
    assert session.status == PortalSessionStatus.ACTIVE and session.activated_at is not None
    assert session.token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()

    again = Client().post(f"/{ENROL_PATH}/{token}/")
    assert again.status_code == 410
    assert cookie_name() not in again.cookies
    assert refused_codes(account) == ["enrolment.link_invalid"]


def test_the_link_expires_by_database_time(account, agent):
    session = enrolment_invite(actor=agent, account=account)
    OwnerPortalSession.objects.filter(pk=session.pk).update(
        link_expires_at=Now() - timedelta(seconds=1)
    )
    response = Client().post(f"/{ENROL_PATH}/{last_link_token()}/")
    assert response.status_code == 410
    session.refresh_from_db()
    assert session.status == PortalSessionStatus.PENDING and session.token_hash is None


def test_an_unknown_link_is_refused(db):
    assert Client().post(f"/{ENROL_PATH}/not-a-real-token/").status_code == 410


def test_a_case_opened_after_the_link_was_sent_stops_it(account, agent):
    session = enrolment_invite(actor=agent, account=account)
    case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    response = Client().post(f"/{ENROL_PATH}/{last_link_token()}/")
    assert response.status_code == 403
    assert cookie_name() not in response.cookies
    session.refresh_from_db()
    assert session.status == PortalSessionStatus.ENDED
    assert refused_codes(account) == ["enrolment.open_case"]


def test_a_staff_session_is_not_an_owner_session(acme, client):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    client.force_login(admin)
    assert client.get("/owner/codes/").status_code == 403
    assert client.post("/owner/passkeys/register/options/").status_code == 403


# --- self-service request ------------------------------------------------------------------


def _ask(client: Client, tenant_slug: str, username: str):
    return client.post(f"/owner/t/{tenant_slug}/enrol/", {"username": username})


def _page(response) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_self_service_answers_alike_whether_the_account_exists_or_not(acme, account):
    known = _ask(Client(), acme.slug, account.username.upper())
    assert len(mail.outbox) == 1  # usernames are matched without case
    unknown = _ask(Client(), acme.slug, "nobody@example.test")
    assert len(mail.outbox) == 1
    assert known.status_code == unknown.status_code == 200
    assert _page(known) == _page(unknown)
    [sent] = actions(account, "owner.enrolment_link_sent")
    assert sent.data["via"] == "self_service"


def test_self_service_refusal_looks_like_success(acme, account, agent):
    case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    refused = _ask(Client(), acme.slug, account.username)
    unknown = _ask(Client(), acme.slug, "nobody@example.test")
    assert mail.outbox == []
    assert _page(refused) == _page(unknown)
    assert refused_codes(account) == ["enrolment.open_case"]


def test_self_service_is_rate_limited(acme, account):
    client = Client()
    answers = [_ask(client, acme.slug, account.username).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert len(mail.outbox) == 3


def test_self_service_for_an_unknown_tenant_is_not_found(db):
    assert Client().get("/owner/t/no-such-tenant/enrol/").status_code == 404


# --- API -------------------------------------------------------------------------------------


def _invite_url(tenant, account) -> str:
    return f"/api/v1/t/{tenant.slug}/accounts/{account.pk}/enrolment-invite/"


def test_api_agent_invites(acme, account, agent):
    client = staff_api_client(agent)
    response = client.post(_invite_url(acme, account), {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sent_to"] == ContactMethod.objects.get(account=account, kind="email").masked
    assert "token" not in str(body) and len(mail.outbox) == 1


def test_api_refusal_has_its_code(acme, account, agent):
    ProtectedAccount.objects.filter(pk=account.pk).update(frozen_at=timezone.now())
    client = staff_api_client(agent)
    response = client.post(_invite_url(acme, account), {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "enrolment.account_frozen"


def test_api_other_tenant_account_is_not_found(acme, agent):
    other = owner_account(make_tenant())
    client = staff_api_client(agent)
    response = client.post(_invite_url(acme, other), {}, format="json")
    assert response.status_code == 404
    assert mail.outbox == []


def test_api_contact_of_another_account_is_refused(acme, account, agent):
    other = ContactMethod.objects.get(account=owner_account(acme), kind="email")
    client = staff_api_client(agent)
    body = {"contact_method_id": other.pk}
    response = client.post(_invite_url(acme, account), body, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "enrolment.channel_not_allowed"
    assert mail.outbox == []


def test_api_key_cannot_invite(acme, account):
    from ..api.conftest import key_client

    response = key_client(acme).post(_invite_url(acme, account), {}, format="json")
    assert response.status_code == 403
    assert mail.outbox == []

"""Staff passkeys through the console views: sign-in as the second factor, adding (first, and
a further one after proving an active one), removing, and approving a replacement."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tenants.choices import PasskeyReplacementStatus, Role, StaffPasskeyStatus
from tenants.models import StaffPasskey, StaffPasskeyReplacement, User
from tenants.passkeys import staff_passkey_remove

from ..conftest import signed_in_client
from ..factories import PASSWORD, staff
from ..owner.softkey import SoftKey
from ..staffkey import soft_key, staff_passkey_enrol

pytestmark = pytest.mark.django_db

VERIFY, SIGN_IN_OPTIONS, SIGN_IN = (
    "/account/otp/",
    "/account/passkey/sign-in/options/",
    "/account/passkey/sign-in/",
)
PASSKEYS, REGISTER_OPTIONS, REGISTER = (
    "/account/passkeys/",
    "/account/passkeys/register/options/",
    "/account/passkeys/register/",
)


@pytest.fixture
def agent(acme) -> User:
    return staff(Role.AGENT, tenant=acme)


def password_step(user: User, next_url: str = "") -> Client:
    client = Client()
    data = {"username": user.username, "password": PASSWORD}
    response = client.post("/login/" + (f"?next={next_url}" if next_url else ""), data)
    assert response.status_code == 302, response.content
    return client


def answer(client: Client, options_url: str, key: SoftKey) -> str:
    response = client.get(options_url)
    assert response.status_code == 200, response.content
    return key.get(response.content.decode())


def test_a_password_session_signs_in_with_a_passkey(agent):
    key = staff_passkey_enrol(agent)
    client = password_step(agent, next_url="/account/preferences/")
    page = client.get(VERIFY + "?next=/account/preferences/")
    assert b"data-passkey-sign-in" in page.content
    response = client.post(
        SIGN_IN,
        {"assertion": answer(client, SIGN_IN_OPTIONS, key), "next": "/account/preferences/"},
    )
    assert response.status_code == 302 and response.url == "/account/preferences/"
    assert client.get("/").status_code == 200  # verified: the console opens


def test_a_passkey_answer_without_the_sessions_challenge_does_not_sign_in(agent):
    key = staff_passkey_enrol(agent)
    client = password_step(agent)
    client.get(SIGN_IN_OPTIONS)
    foreign = key.get(json.dumps({"challenge": "AAAAAAAAAAAAAAAAAAAAAA", "rpId": "localhost"}))
    response = client.post(SIGN_IN, {"assertion": foreign})
    assert response.status_code == 302 and response.url.startswith(VERIFY)
    assert client.get("/").url.startswith(VERIFY)  # still not signed in


def test_the_sessions_challenge_is_answered_once(agent):
    key = staff_passkey_enrol(agent)
    client = password_step(agent)
    options = client.get(SIGN_IN_OPTIONS).content.decode()
    client.post(SIGN_IN, {"assertion": soft_key().get(options)})  # not one of hers: refused
    response = client.post(SIGN_IN, {"assertion": key.get(options)})  # the same challenge
    assert response.url.startswith(VERIFY)
    assert client.get("/").url.startswith(VERIFY)


def test_the_totp_page_offers_no_passkey_to_a_user_without_one(agent):
    assert b"data-passkey-sign-in" not in password_step(agent).get(VERIFY).content


def test_the_passkeys_page_needs_a_completed_sign_in(agent):
    assert password_step(agent).get(PASSKEYS).url.startswith(VERIFY)


def test_a_signed_in_user_adds_a_first_passkey_and_removes_it(agent):
    client = signed_in_client(agent)
    key = soft_key()
    options = client.post(REGISTER_OPTIONS)
    assert options.status_code == 200, options.content
    registered = client.post(
        REGISTER,
        json.dumps(
            {"credential": json.loads(key.create(options.content.decode())), "label": "Mine"}
        ),
        content_type="application/json",
    )
    assert registered.status_code == 200 and registered.json()["next"] == PASSKEYS
    passkey = StaffPasskey.objects.get(user=agent)
    assert passkey.name == "Mine" and passkey.credential_id == key.id
    assert b"Mine" in client.get(PASSKEYS).content
    client.post(f"/account/passkeys/{passkey.pk}/remove/")
    passkey.refresh_from_db()
    assert passkey.status == StaffPasskeyStatus.REMOVED


def test_a_second_passkey_is_added_only_after_proving_the_first(agent):
    first = staff_passkey_enrol(agent)
    client = signed_in_client(agent)
    assert client.post(REGISTER_OPTIONS).status_code == 403
    proven = client.post(
        "/account/passkeys/add/",
        {"step_up_assertion": answer(client, "/account/passkeys/step-up/options/", first)},
    )
    assert proven.status_code == 302
    options = client.post(REGISTER_OPTIONS)
    assert options.status_code == 200, options.content
    second = soft_key()
    client.post(
        REGISTER,
        json.dumps({"credential": json.loads(second.create(options.content.decode()))}),
        content_type="application/json",
    )
    assert StaffPasskey.objects.filter(user=agent, status=StaffPasskeyStatus.ACTIVE).count() == 2


def test_removing_the_passkey_of_the_session_ends_its_verification(agent):
    key = staff_passkey_enrol(agent)
    client = password_step(agent)
    client.post(SIGN_IN, {"assertion": answer(client, SIGN_IN_OPTIONS, key)})
    assert client.get("/").status_code == 200
    staff_passkey_remove(user=agent, passkey_id=StaffPasskey.objects.get(user=agent).pk)
    assert client.get("/").url.startswith(VERIFY)


def test_an_officer_approves_a_replacement_with_their_passkey(agent, acme):
    staff_passkey_enrol(agent)
    staff_passkey_remove(user=agent, passkey_id=StaffPasskey.objects.get(user=agent).pk)
    requester = signed_in_client(agent)
    requester.post("/account/passkeys/replacement/", {"reason": "lost"})
    replacement = StaffPasskeyReplacement.objects.get(requester=agent)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    officer_key = staff_passkey_enrol(officer)
    client = signed_in_client(officer)
    assert agent.username.encode() in client.get(PASSKEYS).content
    base = f"/account/passkeys/replacements/{replacement.pk}/"
    assert signed_in_client(agent).get(base + "options/").status_code == 403  # not their own
    client.post(
        base + "approve/", {"step_up_assertion": answer(client, base + "options/", officer_key)}
    )
    replacement.refresh_from_db()
    assert replacement.status == PasskeyReplacementStatus.APPROVED
    assert replacement.approved_by == officer
    options = requester.post(REGISTER_OPTIONS)
    assert options.status_code == 200, options.content


def test_a_replacement_is_refused_while_a_passkey_is_active(agent):
    staff_passkey_enrol(agent)
    client = signed_in_client(agent)
    client.post("/account/passkeys/replacement/", {"reason": "just because"})
    assert not StaffPasskeyReplacement.objects.filter(requester=agent).exists()

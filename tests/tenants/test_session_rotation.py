"""The session key changes at every privilege change (issue 17 item 7): the password step, the
second factor (TOTP or passkey) and a step-up; the key it had before no longer signs anyone in."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from tenants.choices import Role
from tenants.incident import incident_state
from tenants.models import User

from ..api.conftest import staff_api_client
from ..conftest import signed_in_client
from ..factories import PASSWORD, staff, totp_token
from ..staffkey import staff_passkey_enrol

pytestmark = pytest.mark.django_db

LOGIN, VERIFY = "/login/", "/account/otp/"
SIGN_IN_OPTIONS, SIGN_IN = "/account/passkey/sign-in/options/", "/account/passkey/sign-in/"


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def with_session(key: str) -> Client:
    """A fresh client presenting `key` as its session cookie (someone who kept the old one)."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    return client


def assert_old_key_signs_nobody_in(old_key: str, page: str) -> None:
    response = with_session(old_key).get(page)
    assert response.status_code == 302 and response.url.startswith(LOGIN), response


def password_step(user: User) -> Client:
    client = Client()
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == VERIFY, response.content
    return client


@pytest.fixture
def agent(acme) -> User:
    return staff(Role.AGENT, tenant=acme)


def test_the_password_step_rotates_the_session_key(agent):
    client = Client()
    before = client.session.session_key  # an anonymous session that exists before sign-in
    client.cookies[settings.SESSION_COOKIE_NAME] = before
    response = client.post(LOGIN, {"username": agent.username, "password": PASSWORD})
    assert response.status_code == 302
    assert session_key(client) != before


def test_the_totp_step_rotates_the_session_key(agent):
    client = password_step(agent)
    before = session_key(client)
    response = client.post(VERIFY, {"token": totp_token(agent)})
    assert response.status_code == 302 and response.url == "/", response.content
    assert session_key(client) != before
    assert client.get("/").status_code == 200
    assert_old_key_signs_nobody_in(before, "/")


def test_a_passkey_second_factor_rotates_the_session_key(agent):
    key = staff_passkey_enrol(agent)
    client = password_step(agent)
    options = client.get(SIGN_IN_OPTIONS)
    assert options.status_code == 200, options.content
    before = session_key(client)
    response = client.post(SIGN_IN, {"assertion": key.get(options.content.decode())})
    assert response.status_code == 302, response.content
    assert session_key(client) != before
    assert client.get("/").status_code == 200
    assert_old_key_signs_nobody_in(before, "/")


def test_a_console_step_up_rotates_the_session_key(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    client = signed_in_client(officer)
    before = session_key(client)
    response = client.post(
        f"/t/{acme.slug}/incident/switch/",
        {
            "switch": "freeze",
            "reason": "suspected social engineering",
            "token": totp_token(officer),
        },
    )
    assert response.status_code == 302, response.content
    assert incident_state(acme).frozen
    assert session_key(client) != before
    assert client.get(f"/t/{acme.slug}/incident/").status_code == 200
    assert_old_key_signs_nobody_in(before, f"/t/{acme.slug}/incident/")


def test_a_refused_step_up_keeps_the_session_key(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    client = signed_in_client(officer)
    before = session_key(client)
    client.post(
        f"/t/{acme.slug}/incident/switch/",
        {"switch": "freeze", "reason": "suspected social engineering", "token": "000000"},
    )
    assert not incident_state(acme).frozen
    assert session_key(client) == before


def test_a_step_up_over_the_api_on_a_staff_session_rotates_the_session_key(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    client = staff_api_client(officer)
    before = session_key(client)
    response = client.post(
        f"/api/v1/t/{acme.slug}/incident/",
        {"switch": "freeze", "reason": "suspected social engineering", "otp": totp_token(officer)},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert session_key(client) != before
    assert client.get(f"/api/v1/t/{acme.slug}/incident/").status_code == 200
    stale = APIClient()
    stale.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stale.get(f"/api/v1/t/{acme.slug}/incident/").status_code == 401

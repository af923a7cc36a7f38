"""An audit outage cannot buy unlimited guesses: a failed sign-in or step-up is counted (and
locks the account at the limit) even when its audit event cannot be written, and the attempt
is refused with `auth.audit_unavailable`. Sign-in success is recorded before the session is
verified, so a failed record leaves no signed-in session either."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from audit.signals import event_recorded
from tenants.choices import Role
from tenants.exceptions import StepUpFailed
from tenants.models import User
from tenants.stepup import step_up_verify

from ..factories import PASSWORD, staff, totp_token
from ..staffkey import staff_passkey_enrol
from .test_auth import is_signed_in, password_step, post_password, user_wrong_token

pytestmark = pytest.mark.django_db

CODE = "auth.audit_unavailable"
SIGN_IN_OPTIONS, PASSKEY_SIGN_IN = "/account/passkey/sign-in/options/", "/account/passkey/sign-in/"


class AuditDown(Exception):
    """What the audit store raises during the outage."""


def failing(*actions: str):
    """A receiver that makes the audit write of `actions` (only) fail."""

    def receiver(sender, event, **kwargs) -> None:
        if event.action in actions:
            raise AuditDown(f"audit store unavailable for {event.action}")

    return receiver


@pytest.fixture
def outage() -> Iterator[None]:
    """Failed sign-ins and lockouts cannot be recorded; every other event can."""
    receiver = failing("auth.login_failed", "auth.account_locked")
    event_recorded.connect(receiver, weak=False)
    yield
    event_recorded.disconnect(receiver)


@pytest.fixture
def agent(acme) -> User:
    return staff(Role.AGENT, tenant=acme)


def stored(user: User) -> User:
    return User.objects.get(pk=user.pk)


def recorded(user: User, action: str) -> int:
    return AuditEvent.objects.filter(
        action=action, target_type="tenants.User", target_id=str(user.pk)
    ).count()


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_a_wrong_password_is_counted_and_refused_when_it_cannot_be_recorded(agent, outage):
    response = post_password(Client(), agent.username, "wrong")
    assert response.status_code == 503
    assert f"({CODE})".encode() in response.content
    assert stored(agent).failed_attempts == 1  # committed although the record failed
    assert recorded(agent, "auth.login_failed") == 0


def test_guesses_during_an_outage_lock_the_account(agent, outage):
    for attempt in range(1, settings.STAFF_LOCKOUT_THRESHOLD):
        assert post_password(Client(), agent.username, "wrong").status_code == 503
        assert stored(agent).failed_attempts == attempt
    assert post_password(Client(), agent.username, "wrong").status_code == 503
    assert stored(agent).locked_until > timezone.now()
    # The right password is refused now, as after any lock; nothing was signed in.
    client = Client()
    response = post_password(client, agent.username, PASSWORD)
    assert response.status_code == 200 and b"this account is locked" in response.content
    assert not is_signed_in(client, agent)
    assert recorded(agent, "auth.account_locked") == 0


def test_a_wrong_sign_in_code_is_counted_and_ends_the_password_session(agent, outage):
    client = password_step(agent)
    response = client.post("/account/otp/", {"token": user_wrong_token(agent)})
    assert response.status_code == 302 and response.url == "/login/"
    assert any(CODE in message for message in flashed(response))
    assert not is_signed_in(client, agent)
    assert stored(agent).failed_attempts == 1


def test_a_sign_in_whose_success_cannot_be_recorded_leaves_no_verified_session(acme, agent):
    receiver = failing("auth.login_succeeded")
    event_recorded.connect(receiver, weak=False)
    try:
        client = password_step(agent)
        with pytest.raises(AuditDown):
            client.post("/account/otp/", {"token": totp_token(agent)})
    finally:
        event_recorded.disconnect(receiver)
    assert client.get(f"/t/{acme.slug}/").url.startswith("/account/otp/")


def test_a_refused_passkey_sign_in_is_counted_and_ends_the_password_session(agent, outage):
    staff_passkey_enrol(agent)
    client = password_step(agent)
    client.get(SIGN_IN_OPTIONS)
    response = client.post(PASSKEY_SIGN_IN, {"assertion": json.dumps({"id": "not-hers"})})
    assert response.status_code == 302 and response.url == "/login/"
    assert any(CODE in message for message in flashed(response))
    assert not is_signed_in(client, agent)
    assert stored(agent).failed_attempts == 1


def test_a_wrong_step_up_code_is_counted_and_refused_when_it_cannot_be_recorded(agent, outage):
    with pytest.raises(StepUpFailed) as refused:
        step_up_verify(user=agent, token=user_wrong_token(agent))
    assert refused.value.code == CODE
    assert stored(agent).failed_attempts == 1
    assert recorded(agent, "auth.login_failed") == 0


def test_without_an_outage_failures_are_counted_and_recorded_as_before(agent):
    assert post_password(Client(), agent.username, "wrong").status_code == 200
    assert stored(agent).failed_attempts == 1
    assert recorded(agent, "auth.login_failed") == 1

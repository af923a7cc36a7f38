"""Step-up: a fresh TOTP token inside the privileged request, and nothing else, proves presence."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tenants.choices import GrantStatus, Role
from tenants.exceptions import StepUpFailed
from tenants.models import User
from tenants.services import grant_approve
from tenants.stepup import PROOF_MAX_AGE, require_fresh_step_up, step_up_verify

from ..conftest import signed_in_client
from ..factories import (
    PASSWORD,
    make_user,
    member,
    requested_grant,
    staff,
    step_up,
    totp_token,
)

pytestmark = pytest.mark.django_db


def wrong_token(user: User) -> str:
    """A 6-digit code the user's TOTP device would refuse at any moment near now."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    near = {
        f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + d):06d}"
        for d in range(-3, 4)
    }
    return next(code for code in (f"{n}" * 6 for n in range(10)) if code not in near)


def refused(user: User, token: str) -> str:
    with pytest.raises(StepUpFailed) as failure:
        step_up_verify(user=user, token=token)
    return failure.value.code


def reload(user: User) -> User:
    return User.objects.get(pk=user.pk)


def user_events(user: User, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=action, target_type="tenants.User", target_id=str(user.pk)
        ).order_by("seq")
    )


# --- what counts as a step-up --------------------------------------------------------------


def test_fresh_totp_token_gives_a_proof_for_that_user(db):
    user = make_user()
    proof = step_up(user)
    assert proof.user_id == user.pk
    assert proof.device_type == "totp"
    assert proof.device_id == TOTPDevice.objects.get(user=user).persistent_id
    assert require_fresh_step_up(proof, user) is proof


def test_verified_session_alone_is_not_a_step_up(db):
    user = make_user()
    client = signed_in_client(user)
    assert client.session.get("otp_device_id")  # the session is fully OTP-verified
    with pytest.raises(StepUpFailed) as failure:
        require_fresh_step_up(None, user)
    assert failure.value.code == "stepup.required"


def test_email_otp_token_is_refused_for_step_up(db):
    user = make_user()
    device = EmailDevice.objects.create(user=user, name="mail", email="u@example.test")
    device.generate_challenge()
    device.refresh_from_db()
    assert device.token and device.token in mail.outbox[-1].body

    assert refused(user, device.token) == "stepup.invalid_token"

    assert device.verify_token(device.token)  # it was a valid email code, refused on purpose


@pytest.mark.parametrize(
    ("code", "expected"),
    [("654321", "stepup.invalid_token"), ("backup7x", "stepup.token_missing")],
    ids=["numeric-backup-code", "letter-backup-code"],
)
def test_static_backup_code_is_refused_for_step_up(db, code, expected):
    user = make_user()
    backup = StaticDevice.objects.create(user=user, name="Backup codes")
    backup.token_set.create(token=code)

    assert refused(user, code) == expected

    assert StaticToken.objects.filter(device=backup, token=code).exists()  # not consumed


def test_totp_token_used_for_sign_in_is_refused_for_step_up(db):
    user = make_user()
    token = totp_token(user)
    client = Client()
    client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert client.post("/account/otp/", {"token": token}).url == "/"

    assert refused(user, token) == "stepup.invalid_token"


def test_step_up_token_cannot_be_used_twice(db):
    user = make_user()
    token = totp_token(user)
    step_up_verify(user=user, token=token)
    assert refused(user, token) == "stepup.invalid_token"


def test_proof_issued_to_one_user_is_refused_for_another(db):
    alice, bob = make_user(), make_user()
    proof = step_up(alice)
    with pytest.raises(StepUpFailed) as failure:
        require_fresh_step_up(proof, bob)
    assert failure.value.code == "stepup.invalid_proof"


def test_proof_is_accepted_until_max_age_and_stale_after(db, monkeypatch):
    user = make_user()
    proof = step_up(user)

    monkeypatch.setattr("tenants.stepup.timezone.now", lambda: proof.verified_at + PROOF_MAX_AGE)
    assert require_fresh_step_up(proof, user) is proof

    later = proof.verified_at + PROOF_MAX_AGE + timedelta(seconds=1)
    monkeypatch.setattr("tenants.stepup.timezone.now", lambda: later)
    with pytest.raises(StepUpFailed) as failure:
        require_fresh_step_up(proof, user)
    assert failure.value.code == "stepup.stale"


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "otp_totp.totpdevice/999999999"},
        {"verified_at": "later"},
        {"device_type": "static"},
        {"user_id": "other"},
        {"signature": "forged"},
        {"nonce": "another"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_forged_proof_is_refused(db, change):
    user, other = make_user(), make_user()
    proof = step_up(user)
    if change.get("verified_at") == "later":
        change = {"verified_at": proof.verified_at + timedelta(seconds=60)}
    if change.get("user_id") == "other":
        change = {"user_id": other.pk}
        user = other  # a proof re-labelled for `other` and presented as theirs
    forged = dataclasses.replace(proof, **change)

    with pytest.raises(StepUpFailed) as failure:
        require_fresh_step_up(forged, user)
    assert failure.value.code == "stepup.invalid_proof"


# --- lockout -------------------------------------------------------------------------------


def test_failed_step_ups_lock_the_account(db):
    user = make_user()
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    bad = wrong_token(user)
    for _i in range(threshold - 1):
        assert refused(user, bad) == "stepup.invalid_token"
    assert reload(user).locked_until is None

    assert refused(user, "") == "stepup.token_missing"  # an empty code counts as well

    assert reload(user).locked_until is not None
    [locked] = user_events(user, "auth.account_locked")
    assert locked.data["kind"] == "step_up"
    kinds = [event.data["kind"] for event in user_events(user, "auth.login_failed")]
    assert kinds == ["step_up"] * threshold
    assert refused(user, totp_token(user)) == "stepup.account_locked"
    response = Client().post("/login/", {"username": user.username, "password": PASSWORD})
    assert b"this account is locked" in response.content


def test_successful_step_up_resets_the_failure_count(db):
    user = make_user()
    threshold = settings.STAFF_LOCKOUT_THRESHOLD
    User.objects.filter(pk=user.pk).update(failed_attempts=threshold - 1)
    user.refresh_from_db()

    step_up(user)

    assert reload(user).failed_attempts == 0
    assert refused(user, wrong_token(user)) == "stepup.invalid_token"
    assert reload(user).locked_until is None


# --- console grant approval ----------------------------------------------------------------


def approve(client: Client, grant, token: str | None):
    data = {} if token is None else {"token": token}
    return client.post(f"/t/{grant.tenant.slug}/grants/{grant.pk}/approve/", data, follow=True)


def status_of(grant) -> str:
    grant.refresh_from_db()
    return grant.status


def test_console_approval_with_wrong_token_leaves_grant_pending(acme, deskco):
    grant = requested_grant(deskco, acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    client = signed_in_client(admin)

    response = approve(client, grant, wrong_token(admin))

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == f"/t/{acme.slug}/grants/"
    assert b"stepup.invalid_token" in response.content
    assert status_of(grant) == GrantStatus.PENDING
    assert not AuditEvent.objects.filter(tenant=acme, action="grant.approved").exists()
    assert reload(admin).failed_attempts == 1


def test_console_approval_with_fresh_token_activates_grant(acme, deskco):
    grant = requested_grant(deskco, acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    client = signed_in_client(admin)

    response = approve(client, grant, totp_token(admin))

    assert response.status_code == 200
    assert b"Grant approved." in response.content
    assert status_of(grant) == GrantStatus.ACTIVE
    assert grant.approved_by_id == admin.pk
    [approved] = AuditEvent.objects.filter(tenant=acme, action="grant.approved")
    assert approved.actor_id == str(admin.pk)
    assert approved.data["step_up"]["device_type"] == "totp"


def test_console_approval_needs_a_token_even_in_a_verified_session(acme, deskco):
    grant = requested_grant(deskco, acme)
    client = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))

    response = approve(client, grant, None)

    assert b"stepup.required" in response.content
    assert status_of(grant) == GrantStatus.PENDING


def test_console_approval_refuses_the_token_used_to_sign_in(acme, deskco):
    grant = requested_grant(deskco, acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    token = totp_token(admin)
    client = Client()
    client.post("/login/", {"username": admin.username, "password": PASSWORD})
    assert client.post("/account/otp/", {"token": token}).url == "/"

    response = approve(client, grant, token)

    assert b"stepup.invalid_token" in response.content
    assert status_of(grant) == GrantStatus.PENDING


def test_console_approval_by_a_member_who_is_not_tenant_admin_is_refused(acme, deskco):
    grant = requested_grant(deskco, acme)
    agent = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(agent)

    response = approve(client, grant, totp_token(agent))

    assert b"tenant.admin_required" in response.content
    assert status_of(grant) == GrantStatus.PENDING


def test_console_approval_by_another_tenants_admin_is_not_found(acme, globex, deskco):
    grant = requested_grant(deskco, acme)
    outsider = staff(Role.TENANT_ADMIN, tenant=globex)
    client = signed_in_client(outsider)

    response = client.post(
        f"/t/{acme.slug}/grants/{grant.pk}/approve/", {"token": totp_token(outsider)}
    )
    assert response.status_code == 404
    wrong_tenant = client.post(
        f"/t/{globex.slug}/grants/{grant.pk}/approve/", {"token": totp_token(outsider)}
    )
    assert wrong_tenant.status_code == 404
    assert status_of(grant) == GrantStatus.PENDING


def test_console_approval_by_password_only_session_is_refused(acme, deskco):
    grant = requested_grant(deskco, acme)
    admin = make_user()
    member(admin, Role.TENANT_ADMIN, tenant=acme)
    client = Client()
    client.post("/login/", {"username": admin.username, "password": PASSWORD})

    response = client.post(
        f"/t/{acme.slug}/grants/{grant.pk}/approve/", {"token": totp_token(admin)}
    )

    assert (response.status_code, response.url) == (302, "/account/otp/")
    assert status_of(grant) == GrantStatus.PENDING


def test_one_step_up_proof_authorises_exactly_one_action(acme, deskco):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    first, second = requested_grant(deskco, acme), requested_grant(deskco, acme)
    proof = step_up(admin)
    grant_approve(actor=admin, grant=first, step_up=proof)
    with pytest.raises(StepUpFailed) as reused:
        grant_approve(actor=admin, grant=second, step_up=proof)
    assert reused.value.code == "stepup.proof_reused"
    assert status_of(second) == GrantStatus.PENDING

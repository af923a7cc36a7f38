"""Staff passkeys, the services: enrolment grounds, assertions (user verification, challenge,
replay, copied keys), removal, and replacement as a privileged act of a second person; each
change audited in the platform chain and e-mailed to the user."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from tenants import webauthn
from tenants.choices import PasskeyReplacementStatus, Role, StaffPasskeyStatus
from tenants.models import StaffPasskey, StaffPasskeyReplacement, User
from tenants.passkeys import (
    StaffPasskeyRefused,
    replacement_challenge,
    staff_assertion_reverify,
    staff_assertion_verify,
    staff_passkey_register,
    staff_passkey_registration_begin,
    staff_passkey_remove,
    staff_passkey_replacement_approve,
    staff_passkey_replacement_request,
    staff_passkey_replacements_to_approve,
    staff_passkey_sign_in,
)

from ..factories import make_user, member, staff
from ..staffkey import soft_key, staff_passkey_enrol, staff_sign

pytestmark = pytest.mark.django_db


def events(user: User, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(user.pk)).order_by("seq"))


@contextmanager
def refused(code: str) -> Iterator[None]:
    with pytest.raises(StaffPasskeyRefused) as error:
        yield
    assert error.value.code == code, error.value.detail


@pytest.fixture
def agent(acme) -> User:
    user = staff(Role.AGENT, tenant=acme)
    user.email = f"{user.username}@acme.example"
    user.save(update_fields=["email"])
    return user


def passkey_of(user: User) -> StaffPasskey:
    return StaffPasskey.objects.get(user=user, status=StaffPasskeyStatus.ACTIVE)


# --- enrolment -----------------------------------------------------------------------------


def test_first_passkey_is_registered_audited_and_announced(
    agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        key = staff_passkey_enrol(agent, name="Laptop")
    passkey = passkey_of(agent)
    assert passkey.credential_id == key.id and passkey.name == "Laptop" and passkey.confirmed
    [event] = events(agent, "auth.passkey_enrolled")
    assert event.tenant_id is None and event.data["ground"] == "first"
    assert [m.to for m in mail.outbox] == [[agent.email]]
    assert "Laptop" in mail.outbox[0].body


def test_a_second_passkey_needs_a_fresh_answer_from_an_active_one(agent):
    first = staff_passkey_enrol(agent)
    with refused("passkey.step_up_required"):
        staff_passkey_registration_begin(user=agent)
    staff_passkey_enrol(agent, proven_with=first)
    assert StaffPasskey.objects.filter(user=agent, status=StaffPasskeyStatus.ACTIVE).count() == 2
    assert events(agent, "auth.passkey_enrolled")[-1].data["ground"] == "step_up"


def test_registration_without_user_verification_is_refused(agent):
    start = staff_passkey_registration_begin(user=agent)
    key = soft_key()
    key.user_verified = False
    with refused("passkey.user_not_verified"):
        staff_passkey_register(
            user=agent, start=start, credential_json=key.create(start.options_json)
        )
    assert not StaffPasskey.objects.filter(user=agent).exists()


# --- assertions ----------------------------------------------------------------------------


def test_sign_in_with_the_passkey_records_the_device_and_moves_the_counter(agent):
    key = staff_passkey_enrol(agent)
    challenge = os.urandom(32)
    passkey = staff_passkey_sign_in(
        user=agent, challenge=challenge, credential_json=staff_sign(key, challenge)
    )
    passkey.refresh_from_db()
    assert passkey.sign_count == key.sign_count and passkey.last_used_at is not None
    [event] = events(agent, "auth.login_succeeded")
    assert event.data["device_type"] == "StaffPasskey"


def test_an_answer_without_user_verification_is_refused(agent):
    key = staff_passkey_enrol(agent)
    challenge = os.urandom(32)
    with refused("passkey.user_not_verified"):
        staff_assertion_verify(
            user=agent,
            challenge=challenge,
            credential_json=staff_sign(key, challenge, user_verified=False),
        )


def test_an_answer_over_another_challenge_is_refused(agent):
    key = staff_passkey_enrol(agent)
    with refused("passkey.challenge_mismatch"):
        staff_assertion_verify(
            user=agent, challenge=os.urandom(32), credential_json=staff_sign(key, os.urandom(32))
        )


def test_the_same_answer_is_accepted_once(agent):
    key = staff_passkey_enrol(agent)
    challenge = os.urandom(32)
    answer = staff_sign(key, challenge)
    staff_assertion_verify(user=agent, challenge=challenge, credential_json=answer)
    with refused("passkey.replayed"):
        staff_assertion_verify(user=agent, challenge=challenge, credential_json=answer)
    assert passkey_of(agent)  # a replay is refused; it does not suspend the passkey


def test_a_counter_that_does_not_grow_suspends_the_copied_passkey(
    agent, django_capture_on_commit_callbacks
):
    key = staff_passkey_enrol(agent)
    first = os.urandom(32)
    staff_assertion_verify(user=agent, challenge=first, credential_json=staff_sign(key, first))
    stored = key.sign_count
    again = os.urandom(32)
    with (
        django_capture_on_commit_callbacks(execute=True),
        refused("passkey.sign_count_not_increased"),
    ):
        staff_assertion_verify(
            user=agent, challenge=again, credential_json=staff_sign(key, again, sign_count=stored)
        )
    passkey = StaffPasskey.objects.get(user=agent)
    assert passkey.status == StaffPasskeyStatus.SUSPENDED and not passkey.confirmed
    [event] = events(agent, "auth.passkey_suspended")
    assert event.data["presented_sign_count"] == stored
    assert "suspended" in mail.outbox[-1].subject
    later = os.urandom(32)
    with refused("passkey.unknown_credential"):
        staff_assertion_verify(user=agent, challenge=later, credential_json=staff_sign(key, later))


def test_a_forged_signature_does_not_suspend_the_passkey(agent):
    key = staff_passkey_enrol(agent)
    forged = soft_key()
    forged.credential_id = key.credential_id
    challenge = os.urandom(32)
    with refused("passkey.bad_signature"):
        staff_assertion_verify(
            user=agent, challenge=challenge, credential_json=staff_sign(forged, challenge)
        )
    assert passkey_of(agent).status == StaffPasskeyStatus.ACTIVE


def test_another_users_passkey_is_not_accepted(agent, acme):
    key = staff_passkey_enrol(agent)
    other = staff(Role.AGENT, tenant=acme)
    challenge = os.urandom(32)
    with refused("passkey.unknown_credential"):
        staff_assertion_verify(
            user=other, challenge=challenge, credential_json=staff_sign(key, challenge)
        )


def test_a_stored_assertion_verifies_again_only_over_its_challenge(agent):
    key = staff_passkey_enrol(agent)
    challenge = os.urandom(32)
    assertion = staff_assertion_verify(
        user=agent, challenge=challenge, credential_json=staff_sign(key, challenge)
    )
    data = assertion.as_data()
    staff_assertion_reverify(data, challenge=challenge)
    with refused("passkey.challenge_mismatch"):
        staff_assertion_reverify(data, challenge=os.urandom(32))
    tampered = {**data, "authenticator_data": data["authenticator_data"][:-2] + "AA"}
    with pytest.raises(StaffPasskeyRefused):
        staff_assertion_reverify(tampered, challenge=challenge)


def test_a_stored_assertion_verifies_again_after_the_deployment_moved(agent, settings):
    """The origin was checked when the assertion was used; a verifier running later under
    another public address (a worker, a new port) still checks the signature, not the address."""
    key = staff_passkey_enrol(agent)
    challenge = os.urandom(32)
    data = staff_assertion_verify(
        user=agent, challenge=challenge, credential_json=staff_sign(key, challenge)
    ).as_data()
    settings.WEBAUTHN_ORIGINS = ["https://moved.example:8443"]
    settings.WEBAUTHN_RP_ID = "moved.example"
    staff_assertion_reverify(data, challenge=challenge)
    with refused("passkey.challenge_mismatch"):
        staff_assertion_reverify(data, challenge=os.urandom(32))


def test_a_refused_sign_in_counts_towards_the_lockout(agent):
    key = staff_passkey_enrol(agent)
    with pytest.raises(StaffPasskeyRefused):
        staff_passkey_sign_in(
            user=agent, challenge=os.urandom(32), credential_json=staff_sign(key, os.urandom(32))
        )
    agent.refresh_from_db()
    assert agent.failed_attempts == 1
    assert events(agent, "auth.login_failed")[-1].data["kind"] == "passkey"


# --- loss and replacement ------------------------------------------------------------------


@pytest.fixture
def lost(agent, django_capture_on_commit_callbacks) -> User:
    """The agent enrolled a passkey and removed it (lost)."""
    staff_passkey_enrol(agent)
    with django_capture_on_commit_callbacks(execute=True):
        staff_passkey_remove(user=agent, passkey_id=passkey_of(agent).pk)
    return agent


@pytest.fixture
def security_officer(acme) -> tuple[User, object]:
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    return officer, staff_passkey_enrol(officer)


def approval_step_up(approver: User, key, replacement: StaffPasskeyReplacement):
    challenge = replacement_challenge(replacement)
    return staff_assertion_verify(
        user=approver, challenge=challenge, credential_json=staff_sign(key, challenge)
    )


def test_removal_is_audited_announced_and_ends_the_passkey(lost):
    passkey = StaffPasskey.objects.get(user=lost)
    assert passkey.status == StaffPasskeyStatus.REMOVED and not passkey.confirmed
    [event] = events(lost, "auth.passkey_removed")
    assert event.data["active_left"] == 0
    assert "removed" in mail.outbox[-1].subject


def test_after_losing_every_passkey_a_new_one_needs_a_replacement(lost):
    with refused("passkey.replacement_required"):
        staff_passkey_registration_begin(user=lost)


def test_a_replacement_approved_by_a_second_person_lets_the_user_register(
    lost, security_officer, django_capture_on_commit_callbacks
):
    officer, officer_key = security_officer
    with django_capture_on_commit_callbacks(execute=True):
        replacement = staff_passkey_replacement_request(user=lost, reason="laptop stolen")
    assert "asked for a new" in mail.outbox[-1].subject
    assert staff_passkey_replacements_to_approve(actor=officer) == [replacement]
    with django_capture_on_commit_callbacks(execute=True):
        staff_passkey_replacement_approve(
            actor=officer,
            replacement_id=replacement.pk,
            step_up=approval_step_up(officer, officer_key, replacement),
        )
    assert mail.outbox[-1].to == [lost.email] and "approved" in mail.outbox[-1].subject
    [approved] = events(lost, "auth.passkey_replacement_approved")
    assert approved.actor_id == str(officer.pk) and approved.data["step_up"]["signature"]
    staff_passkey_enrol(lost)
    replacement.refresh_from_db()
    assert replacement.status == PasskeyReplacementStatus.USED
    assert passkey_of(lost).replacement_id == replacement.pk
    assert events(lost, "auth.passkey_enrolled")[-1].data["ground"] == "replacement"


def test_the_requester_cannot_approve_their_own_replacement(lost, acme):
    member(lost, Role.SECURITY_OFFICER, tenant=acme)
    replacement = staff_passkey_replacement_request(user=lost)
    with refused("passkey.replacement_same_person"):
        staff_passkey_replacement_approve(actor=lost, replacement_id=replacement.pk, step_up=None)


def test_another_account_of_the_same_person_cannot_approve(lost, acme):
    twin = make_user(person_id=str(lost.person_id))
    member(twin, Role.TENANT_ADMIN, tenant=acme)
    twin_key = staff_passkey_enrol(twin)
    replacement = staff_passkey_replacement_request(user=lost)
    assert staff_passkey_replacements_to_approve(actor=twin) == []
    with refused("passkey.replacement_same_person"):
        staff_passkey_replacement_approve(
            actor=twin,
            replacement_id=replacement.pk,
            step_up=approval_step_up(twin, twin_key, replacement),
        )


def test_a_supervisor_or_another_tenants_officer_cannot_approve(lost, acme, globex):
    replacement = staff_passkey_replacement_request(user=lost)
    for approver in (staff(Role.SUPERVISOR, tenant=acme), staff(Role.TENANT_ADMIN, tenant=globex)):
        key = staff_passkey_enrol(approver)
        with refused("passkey.replacement_not_authorised"):
            staff_passkey_replacement_approve(
                actor=approver,
                replacement_id=replacement.pk,
                step_up=approval_step_up(approver, key, replacement),
            )


def test_approval_needs_a_fresh_step_up_over_that_request(lost, security_officer):
    officer, officer_key = security_officer
    replacement = staff_passkey_replacement_request(user=lost)
    elsewhere = os.urandom(32)
    other_answer = staff_assertion_verify(
        user=officer, challenge=elsewhere, credential_json=staff_sign(officer_key, elsewhere)
    )
    with refused("passkey.step_up_stale"):
        staff_passkey_replacement_approve(
            actor=officer, replacement_id=replacement.pk, step_up=other_answer
        )
    assert not events(lost, "auth.passkey_replacement_approved")


def test_an_approved_replacement_is_time_limited(lost, security_officer):
    officer, officer_key = security_officer
    replacement = staff_passkey_replacement_request(user=lost)
    staff_passkey_replacement_approve(
        actor=officer,
        replacement_id=replacement.pk,
        step_up=approval_step_up(officer, officer_key, replacement),
    )
    start = staff_passkey_registration_begin(user=lost)
    StaffPasskeyReplacement.objects.filter(pk=replacement.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with refused("passkey.replacement_required"):
        staff_passkey_register(
            user=lost, start=start, credential_json=soft_key().create(start.options_json)
        )


def test_a_user_with_an_active_passkey_asks_for_no_replacement(agent):
    staff_passkey_enrol(agent)
    with refused("passkey.replacement_not_needed"):
        staff_passkey_replacement_request(user=agent)


def test_the_database_refuses_a_self_approved_replacement(lost, acme):
    replacement = staff_passkey_replacement_request(user=lost)
    with pytest.raises(IntegrityError), transaction.atomic():
        StaffPasskeyReplacement.objects.filter(pk=replacement.pk).update(
            status=PasskeyReplacementStatus.APPROVED, approved_by=lost, approved_in=acme
        )


def test_rp_and_origin_come_from_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://desk.example:8443"
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGINS = "", None
    assert webauthn.rp_id() == "desk.example"
    assert webauthn.expected_origin() == ["https://desk.example:8443"]

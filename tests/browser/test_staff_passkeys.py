"""Staff passkeys in a real browser: Chromium's virtual authenticator (CDP) registers a passkey
on the staff passkeys page and signs in with it as the second factor; a copy of the key (its
counter gone back) is refused and suspended; the approval and the execution of a case are
confirmed with the passkey (static/staff/passkey.js on the htmx forms)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from recovery.cases.models import Approval, RecoveryCase
from recovery.cases.services import case_release_cooled
from tenants.choices import Role, StaffPasskeyStatus
from tenants.models import StaffPasskey, User

from .. import factories
from ..recovery.casework import approved, submitted
from .authenticator import VirtualAuthenticator, authenticator_for
from .pages import sign_in, sign_out, submit


@pytest.fixture
def agent(transactional_db) -> User:
    return factories.staff(Role.AGENT, tenant=factories.make_tenant())


def enrol_in_page(page: Page, user: User, name: str = "work laptop") -> StaffPasskey:
    """Sign in with password and code, add a passkey on the passkeys page."""
    sign_in(page, user)
    page.goto("/account/passkeys/")
    page.get_by_label("Name (optional").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey added.")).to_be_visible()
    return StaffPasskey.objects.get(user=user, status=StaffPasskeyStatus.ACTIVE)


def passkey_sign_in(page: Page, user: User) -> None:
    """Password, then "Sign in with a passkey" on the verification page."""
    page.goto("/login/")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(factories.PASSWORD)
    submit(page)
    page.wait_for_url(re.compile(r"/account/otp/"))
    page.get_by_role("button", name="Sign in with a passkey").click()


def test_staff_enrols_a_passkey_and_signs_in_with_it(page: Page, webauthn_site, agent):
    key = authenticator_for(page)
    passkey = enrol_in_page(page, agent)
    assert key.credential_ids() == [passkey.credential_id] and passkey.name == "work laptop"
    expect(page.get_by_role("cell", name="work laptop")).to_be_visible()

    sign_out(page)
    passkey_sign_in(page, agent)
    page.wait_for_url(lambda url: "/account/otp/" not in url and "/login/" not in url)
    expect(page.get_by_role("link", name="Passkeys")).to_be_visible()
    event = AuditEvent.objects.filter(
        action="auth.login_succeeded", target_id=str(agent.pk)
    ).latest("seq")
    assert event.data["device_type"] == "StaffPasskey"
    passkey.refresh_from_db()
    assert passkey.sign_count == key.credentials()[0]["signCount"] > 0


def test_a_copied_passkey_is_refused_and_suspended(page: Page, webauthn_site, agent):
    key: VirtualAuthenticator = authenticator_for(page)
    passkey = enrol_in_page(page, agent)
    sign_out(page)
    passkey_sign_in(page, agent)
    page.wait_for_url(lambda url: "/account/otp/" not in url)
    sign_out(page)

    passkey.refresh_from_db()
    # A copy made before that sign-in holds the old counter: it presents the stored one again.
    key.set_sign_count(passkey.credential_id, passkey.sign_count - 1)
    passkey_sign_in(page, agent)
    expect(page.get_by_text("passkey.sign_count_not_increased")).to_be_visible()
    assert "/account/otp/" in page.url
    passkey.refresh_from_db()
    assert passkey.status == StaffPasskeyStatus.SUSPENDED


def test_a_supervisor_approves_a_case_with_a_passkey(page: Page, webauthn_site, agent):
    tenant = agent.memberships.get().tenant
    supervisor = factories.staff(Role.SUPERVISOR, tenant=tenant)
    authenticator_for(page)
    passkey = enrol_in_page(page, supervisor)
    case = submitted(tenant, agent, ("S2", "S3"), groups=["finance"])  # T1: one approval

    page.goto(f"/t/{tenant.slug}/review/{case.pk}/")
    page.locator("#id_approved-reason").fill("Manager confirmed on a call-back.")
    page.locator("form.decision-form[action$='/approve/'] button[type=submit]").click()
    expect(page.locator("#decision").get_by_role("status")).to_contain_text(
        f"You approved case {case.pk}"
    )
    approval = Approval.objects.get(case=case)
    assert (approval.approver, approval.decision) == (supervisor, "approved")
    event = AuditEvent.objects.get(action="approval.approved", target_id=str(case.pk))
    assert event.data["step_up"]["device_type"] == "passkey"
    assert event.data["step_up"]["device"] == passkey.credential_id


def test_an_agent_executes_a_case_with_a_passkey(page: Page, webauthn_site, agent):
    tenant = agent.memberships.get().tenant
    authenticator_for(page)
    enrol_in_page(page, agent)
    case = approved(submitted(tenant, agent, ("S2", "S3"), groups=["finance"]))
    assert set(factories.notices_sent(tenant)) <= {"sent"}  # the workers' job, played here
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case_release_cooled(case=case)
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"

    page.goto(f"/t/{tenant.slug}/cases/{case.pk}/")
    page.get_by_role("button", name="Confirm with your passkey and execute").click()
    expect(page.locator("#case-live .badge.status")).to_have_text("Executed (access active)")
    assert RecoveryCase.objects.get(pk=case.pk).status == "executed"
    event = AuditEvent.objects.get(action="case.executed", target_id=str(case.pk))
    assert event.data["step_up"]["device_type"] == "passkey"

"""After execution the owner binds the new credential in a real browser (R-11): types the
texted pass and adds a passkey made by Chromium's virtual authenticator, or opens the emailed
link and chooses the password, which the real slapd then accepts."""

from __future__ import annotations

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from recovery.owner.models import OwnerPasskey
from tenants.choices import Role

from ..factories import execute, make_tenant, staff
from ..owner.binding_helpers import (  # noqa: F401 - slapd is a fixture
    GOOD_PASSWORD,
    ldap_connector_for,
    pass_in,
    slapd,
)
from ..recovery.execution.helpers import link_token, owner_email, ready_case
from .authenticator import authenticator_for


@pytest.fixture
def sms_outbox(settings, tmp_path):
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def test_the_owner_types_the_pass_and_adds_a_passkey(
    page: Page, webauthn_site, sms_outbox, transactional_db
):
    tenant = make_tenant()
    case = ready_case(tenant, case_type="mfa_reset")
    execute(case, staff(Role.AGENT, tenant=tenant))
    key = authenticator_for(page)

    page.goto("/owner/pass/")
    page.get_by_label("Temporary access pass").fill(pass_in(sms_outbox))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Add your new sign-in method")).to_be_visible()
    page.get_by_role("button", name="Add a passkey").click()

    expect(page.get_by_text("Your new passkey was added at")).to_be_visible()
    [passkey] = OwnerPasskey.objects.filter(account=case.account)
    assert key.credential_ids() == [passkey.credential_id]


def test_the_owner_opens_the_link_and_chooses_the_password(
    page: Page,
    webauthn_site,
    slapd,  # noqa: F811 - the fixture imported above
    monkeypatch,
    transactional_db,
):
    tenant = make_tenant()
    ldap_connector_for(tenant, slapd, monkeypatch)
    dn, _uid, number = slapd.add_person()
    case = ready_case(tenant, case_type="password_reset", external_id=number)
    owner_email(case)
    execute(case, staff(Role.AGENT, tenant=tenant))
    link = next(m for m in reversed(mail.outbox) if "recovery link" in m.subject)

    page.goto(f"/recover/{link_token(link.body)}/")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Choose your new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password, again").fill("short")
    page.get_by_role("button", name="Set my new password").click()
    expect(page.get_by_role("alert")).to_contain_text("Use at least 15 characters")
    page.get_by_label("New password", exact=True).fill(GOOD_PASSWORD)
    page.get_by_label("New password, again").fill(GOOD_PASSWORD)
    page.get_by_role("button", name="Set my new password").click()

    expect(page.get_by_text("Your new password was set at")).to_be_visible()
    assert slapd.can_bind(dn, GOOD_PASSWORD)

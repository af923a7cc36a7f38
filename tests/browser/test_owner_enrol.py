"""The owner enrols in a real browser: Chromium's virtual authenticator (CDP) makes the passkey,
the portal verifies it. A cancelled prompt saves nothing and says so; a passkey made for
another origin than the one Vouchsafe expects is refused."""

from __future__ import annotations

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from audit.context import Actor
from audit.models import AuditEvent
from recovery.owner.enrolment import enrolment_link_send
from recovery.owner.models import OwnerPasskey, RecoveryCode

from ..factories import make_tenant
from ..owner.owners import owner_account, token_in
from .authenticator import VirtualAuthenticator, authenticator_for


@pytest.fixture
def account(transactional_db):
    return owner_account(make_tenant())


def open_enrolment(page: Page, account) -> None:
    """The owner opens the link from their email and continues (the GET only asks)."""
    enrolment_link_send(account=account, who=Actor.system("test"), via="test")
    page.goto(f"/owner/enrol/{token_in(mail.outbox[-1].body)}/")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Account security", level=1)).to_be_visible()


def add_passkey(page: Page, label: str = "") -> None:
    if label:
        page.get_by_label("Name (optional").fill(label)
    page.get_by_role("button", name="Add a passkey").click()


def test_owner_enrols_a_passkey_and_saved_codes(page: Page, webauthn_site, account):
    key = authenticator_for(page)
    open_enrolment(page, account)

    add_passkey(page, "work laptop")
    expect(page.get_by_text("Your passkey was added")).to_be_visible()
    expect(page.get_by_role("link", name="Remove work laptop")).to_be_visible()
    [passkey] = OwnerPasskey.objects.filter(account=account)
    assert key.credential_ids() == [passkey.credential_id]
    assert passkey.label == "work laptop"
    assert passkey.sign_count == key.credentials()[0]["signCount"]

    page.get_by_role("link", name="Create saved codes").click()
    page.get_by_role("button", name="Create my codes").click()
    expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    assert RecoveryCode.objects.filter(code_set__account=account).count() == 10


def test_a_cancelled_prompt_saves_nothing_and_says_so(page: Page, webauthn_site, account):
    key = authenticator_for(page)
    key.set_user_verified(False)  # the browser's prompt ends as when the person cancels it
    open_enrolment(page, account)

    add_passkey(page)
    expect(page.locator("#passkey-status")).to_have_text(
        "No passkey was saved: the request was cancelled or timed out. You can try again."
    )
    expect(page.get_by_role("button", name="Add a passkey")).to_be_enabled()
    assert not OwnerPasskey.objects.filter(account=account).exists()
    assert key.credentials() == []


def test_a_passkey_for_another_origin_is_refused(page: Page, webauthn_site_expecting, account):
    webauthn_site_expecting(["https://vouchsafe.example"])  # what the server would accept
    authenticator_for(page)
    open_enrolment(page, account)

    add_passkey(page)
    expect(page.locator("#passkey-status")).to_contain_text(
        "The passkey was created for another website address."
    )
    assert not OwnerPasskey.objects.filter(account=account).exists()
    refused = AuditEvent.objects.filter(action="owner.passkey_refused", data__account=account.pk)
    assert [e.data["reason"] for e in refused] == ["origin_mismatch"]


def test_helpers_list_and_clear_credentials(page: Page, webauthn_site, account):
    key: VirtualAuthenticator = authenticator_for(page)
    open_enrolment(page, account)
    add_passkey(page)
    expect(page.get_by_text("Your passkey was added")).to_be_visible()
    assert len(key.credentials()) == 1
    key.clear()
    assert key.credentials() == []

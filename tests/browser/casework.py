"""What the service desk does on a case page in the browser, shared by the end-to-end tests:
verify the caller with a code read back and with identity proofing, enrol a staff passkey."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core import mail
from playwright.sync_api import Page, expect

from ..recovery.casework import code_in


def code_read_back(
    page: Page, contact: str | re.Pattern[str] = re.compile("^Send a code to")
) -> None:
    """Send a code to the contact on record named by `contact` (the start of its button's
    name), read it from the owner's mailbox, check it."""
    sent = len(mail.outbox)
    page.locator("#verifier-code").get_by_role("button", name=contact).click()
    expect(page.locator("#messages")).to_contain_text("A code was sent to")
    assert len(mail.outbox) == sent + 1
    code = code_in(mail.outbox[-1].body)  # the owner reads it out on the phone
    box = page.locator("#case-verifiers input[name$='-code']")
    box.fill(code)
    box.locator("xpath=ancestor::form").get_by_role("button", name="Check the code").click()
    expect(page.locator("#messages")).to_contain_text("Signal S2 accepted.")


def identity_proofing(page: Page, person: Page) -> None:
    """Start identity proofing; the person opens the address on the provider's page."""
    page.get_by_role("button", name="Start identity proofing (S4)").click()
    link = page.locator("#messages a.proofing-link")
    expect(link).to_be_visible()
    person.goto(urlsplit(link.get_attribute("href")).path)  # the live server, not PUBLIC_BASE_URL
    person.get_by_role("button", name="The person matches the enrolment record").click()
    expect(person.get_by_role("status")).to_contain_text("the person matched")


def passkey_added(page: Page) -> None:
    """On the staff passkeys page of a signed-in person whose browser has an authenticator,
    add a passkey (each privileged step-up then uses it)."""
    page.goto("/account/passkeys/")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_text("Passkey added.")).to_be_visible()

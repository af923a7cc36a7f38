"""Every page of the owner portal, as an owner sees it on a 390 px phone: each passes the
accessibility check (tests/browser/pages.py) and fits the screen's width without sideways
scrolling of the whole page; in Spanish and French too.

The data comes from the real services and pages: an owner who enrolled a year ago (a passkey
and saved codes), opens a new enrolment link in the browser, a case with an in-app
confirmation and an identity provider sign-in waiting, and executed recoveries whose link or
texted pass opens an artifact session in the browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from audit.context import Actor
from recovery.models import ProtectedAccount
from recovery.notifications.models import NoticeEvent, OwnerNotice
from recovery.notifications.services import notice_send
from recovery.owner.confirmation import confirmation_request
from recovery.owner.enrolment import enrolment_link_send
from recovery.owner.idp_sign_in import idp_sign_in_request
from tenants.choices import Role

from ..factories import execute, make_tenant, notices_planned, staff, unique
from ..owner.binding_helpers import (  # noqa: F401 - slapd is a fixture
    executed_password_reset,
    ldap_connector_for,
    pass_in,
    slapd,
)
from ..owner.case_owner import confirm_token, enrolled_owner, open_case
from ..owner.oidc_helpers import LINK as IDP_LINK
from ..owner.oidc_helpers import (  # noqa: F401 - oidc and idp_secret are fixtures
    idp_config,
    idp_secret,
    oidc,
)
from ..owner.owners import token_in
from ..recovery.execution.helpers import ready_case
from .pages import accessibility_problems, html_lang, submit
from .test_responsive import PAGE_OVERFLOW_JS, PHONE, WIDEST_JS

NOT_ME_LINK = re.compile(r"/not-me/([^/\s]+)/")

# What the portal adds to the console's check (pages.py): one <main> with a skip link to it, a
# page title, and text that stands out from its background (WCAG AA: 4.5:1, or 3:1 for large
# text; disabled controls are exempt).
PORTAL_PROBLEMS_JS = """
() => {
  const problems = [];
  if (document.querySelectorAll('main').length !== 1) problems.push('not exactly one <main>');
  const skip = document.querySelector('a.skip[href^="#"]');
  if (!skip || !document.querySelector(skip.getAttribute('href'))) {
    problems.push('no skip link to the content');
  }
  if (!document.title.trim()) problems.push('no <title>');
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const backdrop = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || !el.getClientRects().length || el.closest(':disabled')) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    const [fg, bg] = [luminance(rgba(style.color)), luminance(backdrop(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`low contrast ${ratio.toFixed(2)}: ${el.textContent.trim().slice(0, 40)}`);
    }
  }
  return problems;
}
"""


@dataclass
class Walk:
    """The pages an owner went through, and what each one lacked."""

    problems: dict[str, list[str]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def open(self, page: Page, name: str, path: str, *, status: int = 200) -> None:
        response = page.goto(path)
        assert response is not None and response.status == status, (name, path)
        self.check(page, name)

    def check(self, page: Page, name: str) -> None:
        """The page now in `page`: accessible, and no wider than the phone's screen."""
        found = accessibility_problems(page) + page.evaluate(PORTAL_PROBLEMS_JS)
        extra = page.evaluate(PAGE_OVERFLOW_JS)
        if extra > 0:
            found.append(f"{extra}px wider than the screen: {page.evaluate(WIDEST_JS)}")
        if found:
            self.problems[name] = found
        self.seen.append(name)


def phone(new_page, locale: str = "en-US") -> Page:
    return new_page(viewport=PHONE, locale=locale)


def mailed_token(pattern: re.Pattern[str]) -> str:
    body = next(m.body for m in reversed(mail.outbox) if pattern.search(m.body))
    match = pattern.search(body)
    assert match
    return match.group(1)


def test_enrolment_pages(new_page, webauthn_site):
    """Welcome, ask for a link, open it, the home with a passkey and saved codes, new codes
    shown once, removing a passkey, "this wasn't me", and the page without a session."""
    tenant = make_tenant()
    owner = enrolled_owner(tenant, codes=True, passkeys=1)
    walk, page = Walk(), phone(new_page)

    walk.open(page, "welcome", "/owner/")
    walk.open(page, "enrol request", f"/owner/t/{tenant.slug}/enrol/")
    page.locator("#id_username").fill(owner.account.username)
    submit(page)
    expect(page.get_by_role("status")).to_contain_text("one-time link")
    walk.check(page, "enrol request sent")

    enrolment_link_send(account=owner.account, who=Actor.system("test"), via="test")
    walk.open(page, "enrol link", f"/owner/enrol/{token_in(mail.outbox[-1].body)}/")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Account security", level=1)).to_be_visible()
    expect(page.locator("ul.passkeys li")).to_have_count(1)
    expect(page.get_by_text("You have 10 unused codes")).to_be_visible()
    walk.check(page, "home with a passkey and saved codes")

    walk.open(page, "saved codes", "/owner/codes/")
    mail.outbox.clear()
    page.get_by_role("button", name="Replace my codes").click()
    expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    walk.check(page, "codes shown once")

    walk.open(page, "remove a passkey", f"/owner/passkeys/{owner.passkeys[0].pk}/remove/")
    notices_planned(owner.account.tenant)  # what a worker does once the codes were issued
    notice = OwnerNotice.objects.filter(
        account=owner.account, event=NoticeEvent.CODES_ISSUED, contact__kind="email"
    ).latest("pk")
    assert notice_send(notice_id=notice.pk) == "sent"  # what the worker does
    walk.open(page, "this wasn't me", f"/not-me/{mailed_token(NOT_ME_LINK)}/")
    expect(page.get_by_role("button", name="It wasn't me: stop it")).to_be_visible()

    walk.open(signed_out := phone(new_page), "session required", "/owner/codes/", status=403)
    expect(signed_out.get_by_role("alert")).to_contain_text("Your session has ended")
    assert walk.problems == {}, walk.problems
    assert len(walk.seen) == 10


def test_case_pages(new_page, webauthn_site, oidc, idp_secret):  # noqa: F811 - fixtures
    """The in-app confirmation with its field for the number, the identity provider sign-in an
    agent asked for, and the sign-in page of an organisation without a provider."""
    tenant = make_tenant()
    owner = enrolled_owner(tenant, codes=False, passkeys=1)
    walk, page = Walk(), phone(new_page)
    walk.open(page, "idp not configured", f"/owner/t/{tenant.slug}/sign-in/")
    expect(page.locator("#idp-not-configured")).to_be_visible()

    ProtectedAccount.objects.filter(pk=owner.account.pk).update(idp_subject=unique("sub"))
    idp_config(tenant, oidc)
    agent, case = open_case(owner)
    confirmation = confirmation_request(actor=agent, case=case)
    walk.open(page, "confirm", f"/owner/confirm/{confirm_token(mail.outbox[-1].body)}/")
    field = page.get_by_role("textbox", name="Number the agent reads to you", exact=True)
    expect(field).to_be_visible()
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(page.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    expect(page.get_by_text(confirmation.number, exact=True)).to_have_count(0)

    mail.outbox.clear()
    idp_sign_in_request(actor=agent, case=case)
    walk.open(page, "idp sign-in link", f"/owner/idp/{mailed_token(IDP_LINK)}/")
    expect(page.locator("#idp-continue")).to_be_visible()
    assert walk.problems == {}, walk.problems


@pytest.fixture
def sms_outbox(settings, tmp_path: Path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def test_recovery_pages(
    new_page,
    webauthn_site,
    slapd,  # noqa: F811 - the fixture imported above
    monkeypatch,
    sms_outbox,
):
    """After execution: the emailed link, choosing the password (the directory can set it),
    the page for the texted pass, adding the new passkey, and a page the session may not open."""
    walk = Walk()
    tenant = make_tenant()
    ldap_connector_for(tenant, slapd, monkeypatch)
    _case, token, _dn = executed_password_reset(tenant, slapd)
    page = phone(new_page)
    walk.open(page, "recovery link", f"/recover/{token}/")
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/owner/recovery/$"))
    expect(page.get_by_label("New password", exact=True)).to_be_visible()
    walk.check(page, "choose the password")
    walk.open(page, "not for a password session", "/owner/codes/", status=403)
    expect(page.get_by_role("alert")).to_contain_text("not part of what your link allows")

    mfa_tenant = make_tenant()
    case = ready_case(mfa_tenant, case_type="mfa_reset")
    execute(case, staff(Role.AGENT, tenant=mfa_tenant))
    page = phone(new_page)
    walk.open(page, "temporary access pass", "/owner/pass/")
    page.get_by_label("Temporary access pass").fill(pass_in(sms_outbox))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/owner/recovery/$"))
    expect(page.get_by_role("button", name="Add a passkey")).to_be_enabled()
    walk.check(page, "add the new passkey")
    assert walk.problems == {}, walk.problems


@pytest.mark.parametrize("language", ["es", "fr"])
def test_pages_in_spanish_and_french(new_page, webauthn_site, language):
    """The same pages in the owner's browser language: `lang` set, accessible, and the
    longer sentences still fit the phone."""
    tenant = make_tenant()
    owner = enrolled_owner(tenant, codes=True, passkeys=1)
    walk, page = Walk(), phone(new_page, locale=language)
    enrolment_link_send(account=owner.account, who=Actor.system("test"), via="test")
    pages = {
        "welcome": "/owner/",
        "enrol request": f"/owner/t/{tenant.slug}/enrol/",
        "idp not configured": f"/owner/t/{tenant.slug}/sign-in/",
        "temporary access pass": "/owner/pass/",
        "recovery link": f"/recover/{unique('token')}/",
        "enrol link": f"/owner/enrol/{token_in(mail.outbox[-1].body)}/",
    }
    for name, path in pages.items():
        walk.open(page, name, path)
        assert html_lang(page) == language, name
    submit(page)
    page.wait_for_url(re.compile(r"/owner/$"))
    expect(page.locator("ul.passkeys li")).to_have_count(1)
    walk.check(page, "home")
    walk.open(page, "saved codes", "/owner/codes/")
    walk.open(phone(new_page, locale=language), "session required", "/owner/codes/", status=403)
    walk.open(page, "invalid confirmation", f"/owner/confirm/{unique('token')}/", status=404)
    assert html_lang(page) == language
    assert walk.problems == {}, walk.problems


def test_the_walk_sees_what_a_portal_page_lacks(new_page):
    page = phone(new_page)
    page.set_content(
        "<html lang='en'><head><title>Portal</title></head><body><h1>One</h1>"
        "<p style='color: #999; background: #fff'>Faint</p>"
        "<div style='width: 600px'>Wide</div></body></html>"
    )
    walk = Walk()
    walk.check(page, "lacking")
    *found, overflow = walk.problems["lacking"]
    assert found == [
        "not exactly one <main>",
        "no skip link to the content",
        "low contrast 2.85: Faint",
    ]
    assert re.match(r"\d+px wider than the screen: \['div\.: Wide'\]", overflow), overflow

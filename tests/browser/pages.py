"""What the browser tests do on the pages (sign in, switch language, capture) and their data."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page

from tenants.models import BackgroundJob, JobStatus, Tenant, User

from .. import factories
from ..conftest import signed_in_client

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def authenticator_code(user: User) -> str:
    """The user's next TOTP code, waiting for the next 30 s step if this one is spent.

    A code is accepted once; the factory hands out the current step's code or the next one
    (within the device's tolerance), so a third code inside one step waits here instead.
    """
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    current_step = int((time.time() - device.t0) // device.step) + device.drift
    if device.last_t + 1 > current_step + device.tolerance:
        time.sleep(device.step - (time.time() - device.t0) % device.step + 0.1)
    return factories.totp_token(user)


def submit(page: Page, form: str = "main form") -> None:
    """Click the submit button of `form` (found by structure: the page may be in any language)."""
    page.locator(form).locator("button[type=submit]").first.click()


def sign_in(page: Page, user: User) -> None:
    """Password, then a fresh authenticator code, through the real sign-in pages."""
    page.goto("/login/")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(factories.PASSWORD)
    submit(page)
    page.wait_for_url(re.compile(r"/account/otp/"))
    page.locator("#id_token").fill(authenticator_code(user))
    submit(page)
    page.wait_for_url(lambda url: "/account/otp/" not in url)


def signed_in(page: Page, user: User) -> None:
    """Sign in through the same views with Django's test client and give the browser its
    session: quicker than the pages, for tests about something else (the flow and language
    tests use the pages)."""
    session = signed_in_client(user).cookies[settings.SESSION_COOKIE_NAME].value
    page.goto("/healthz")  # a page of the live server (plain text): the cookie's address
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": page.url}]
    )


def sign_out(page: Page) -> None:
    """The header's sign-out button."""
    submit(page, "header form[action='/logout/']")
    page.wait_for_url(re.compile(r"/login/"))


def switch_language(page: Page, code: str) -> None:
    """Choose `code` in the header's language menu and submit it; the same page comes back."""
    before = page.url
    page.locator("#lang-select").select_option(code)
    with page.expect_navigation():
        submit(page, "header form.lang")
    assert page.url == before


def html_lang(page: Page) -> str:
    return page.locator("html").get_attribute("lang") or ""


def failed_job(tenant: Tenant, user: User, started: datetime) -> BackgroundJob:
    """A finished job of `user` started at a known moment: its page shows that timestamp."""
    job = BackgroundJob.objects.create(
        tenant=tenant,
        created_by=user,
        kind="policy.simulate",
        status=JobStatus.FAILED,
        error="Stopped for the test.",
    )
    BackgroundJob.objects.filter(pk=job.pk).update(created_at=started, finished_at=started)
    return job


def screenshot(page: Page, name: str, directory: Path) -> Path:
    """Save the viewport as <directory>/<name>.png."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# Checks a page in the browser for what every console page must have: a language, one <h1>,
# headings that never skip a level, a name for every control, a label for every field.
_ACCESSIBILITY_PROBLEMS_JS = """
() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const named = (el) => (el.getAttribute('aria-label') || '').trim()
    || (el.getAttribute('aria-labelledby') || '').split(' ').some(
         (id) => id && (document.getElementById(id)?.textContent || '').trim())
    || (el.textContent || '').trim() || (el.getAttribute('title') || '').trim()
    || (el.tagName === 'INPUT' && (el.value || '').trim());
  if (!document.documentElement.lang) problems.push('<html> has no lang');
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one <h1>');
  let level = 0;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    const next = Number(h.tagName[1]);
    if (level && next > level + 1) problems.push(`heading skips a level: ${h.textContent.trim()}`);
    level = next;
  }
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !visible(el)) continue;
    if (['submit', 'button'].includes(el.type)) {
      if (!named(el)) problems.push('unnamed button input');
      continue;
    }
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`))
      || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!labelled) problems.push(`field without a label: ${el.name || el.id}`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (visible(el) && !named(el)) problems.push(`${el.tagName.toLowerCase()} without a name`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push(`image without alt: ${img.src}`);
  }
  return problems;
}
"""


def accessibility_problems(page: Page) -> list[str]:
    """What the page lacks for screen-reader and keyboard users (empty when it is fine)."""
    return page.evaluate(_ACCESSIBILITY_PROBLEMS_JS)

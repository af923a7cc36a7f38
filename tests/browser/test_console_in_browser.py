"""The console in a real browser: another tenant's case, the language menu, the time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open
from tenants.choices import Role
from tenants.models import Tenant, User

from .. import factories
from .pages import (
    failed_job,
    html_lang,
    sign_in,
    sign_out,
    signed_in,
    submit,
    switch_language,
)

# A job started at 13:30 UTC on 15 January 2024: 22:30 in Tokyo, no daylight saving there.
STARTED = datetime(2024, 1, 15, 13, 30, tzinfo=UTC)


def _case(tenant: Tenant) -> RecoveryCase:
    account = factories.make_account(tenant)
    agent = factories.staff(Role.AGENT, tenant=tenant)
    return case_open(actor=agent, account=account, case_type="unlock", channel="phone")


def _without_echoes(html: str) -> str:
    """The page without its per-response CSRF masks and the echoed path (language menu)."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'name="next" value="[^"]+"', "", html)
    return re.sub(r"X-CSRFToken(&quot;|\")\s*:\s*(&quot;|\")\w+", "", html)


def test_another_tenants_case_url_shows_the_not_found_page(page: Page):
    acme, globex = factories.make_tenant(), factories.make_tenant()
    own, theirs = _case(acme), _case(globex)
    signed_in(page, factories.staff(Role.AGENT, tenant=acme))

    mine = page.goto(f"/t/{acme.slug}/cases/{own.pk}/")
    assert mine.status == 200
    assert own.account.display_name in page.content()

    # In a tenant we may not see, and in our own: each looks exactly like what does not exist.
    pairs = (
        (f"/t/{globex.slug}/cases/{theirs.pk}/", f"/t/no-such-tenant/cases/{theirs.pk}/"),
        (f"/t/{acme.slug}/cases/{theirs.pk}/", f"/t/{acme.slug}/cases/{theirs.pk + 100_000}/"),
    )
    for foreign, missing in pairs:
        bodies = []
        for url in (foreign, missing):
            response = page.goto(url)
            assert response is not None and response.status == 404, url
            assert page.locator("main h1").inner_text() == "Not found"
            html = page.content()
            for detail in (theirs.account.display_name, theirs.account.username, globex.name):
                assert detail not in html, (url, detail)
            bodies.append(_without_echoes(html))
        assert bodies[0] == bodies[1], (foreign, missing)
    # Both attempts are on record in the owner's trail, none in ours.
    denied = AuditEvent.objects.filter(action="tenant.cross_access_denied")
    assert denied.filter(tenant=globex).count() == 2
    assert not denied.filter(tenant=acme).exists()


def _job_page(tenant: Tenant, user: User) -> str:
    return f"/t/{tenant.slug}/jobs/{failed_job(tenant, user, STARTED).pk}/"


def _shows(page: Page, lang: str, started: str, sign_out: str) -> None:
    """The page is in `lang`: its <html lang>, the menu's choice, a date in Django's own
    catalogue, and our sign-out button in ours (locale/)."""
    assert html_lang(page) == lang
    assert page.locator("#lang-select").input_value() == lang
    assert started in page.inner_text("main")
    assert page.locator("header form[action='/logout/'] button").inner_text() == sign_out


def test_the_language_menu_switches_the_console_and_is_kept_on_the_user(new_page):
    acme = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=acme)
    page = new_page()
    signed_in(page, agent)
    job_url = _job_page(acme, agent)
    page.goto(job_url)
    _shows(page, "en", "Jan. 15, 2024, 1:30 p.m.", "Sign out")

    switch_language(page, "es")
    _shows(page, "es", "15 de enero de 2024 a las 13:30", "Cerrar sesión")
    agent.refresh_from_db()
    assert agent.language == "es"

    # Kept on the user: signed in again through the pages, in another browser (English, and
    # without the language cookie).
    sign_out(page)
    page = new_page()
    sign_in(page, agent)
    page.goto(job_url)
    _shows(page, "es", "15 de enero de 2024 a las 13:30", "Cerrar sesión")

    switch_language(page, "fr")
    _shows(page, "fr", "15 janvier 2024 13:30", "Se déconnecter")
    agent.refresh_from_db()
    assert agent.language == "fr"


def test_a_time_zone_chosen_in_preferences_shows_times_in_that_zone(page: Page):
    acme = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=acme)
    signed_in(page, agent)
    job_url = _job_page(acme, agent)
    page.goto(job_url)
    assert "Jan. 15, 2024, 1:30 p.m." in page.inner_text("main")

    page.goto("/account/preferences/")
    page.locator("#id_time_zone").select_option("Asia/Tokyo")
    submit(page)
    expect(page.locator("#messages")).to_have_text("Your preferences are saved.")
    assert page.locator("#id_time_zone").input_value() == "Asia/Tokyo"
    agent.refresh_from_db()
    assert agent.time_zone == "Asia/Tokyo"

    page.goto(job_url)
    assert "Jan. 15, 2024, 10:30 p.m." in page.inner_text("main")
    assert "1:30 p.m." not in page.inner_text("main")

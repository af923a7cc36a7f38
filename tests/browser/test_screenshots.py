"""Screenshots of the console's and the owner portal's main pages for docs/screenshots/ (and
the README).

Every run takes the PNGs from a freshly built tenant (tests/browser/showcase.py) and fails if a
page does not answer 200 or its screenshot is not a 1280x800 PNG (390x844 for the phone).
`make screenshots` keeps them in docs/screenshots/; an ordinary test run writes them to a
temporary folder (a clean work tree).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from audit.context import Actor
from recovery.cases.services import case_open
from recovery.owner.confirmation import confirmation_request
from recovery.owner.enrolment import enrolment_link_send
from tenants.jobs import job_run
from tenants.models import BackgroundJob

from ..factories import make_tenant
from ..owner.binding_helpers import (  # noqa: F401 - slapd is a fixture
    executed_password_reset,
    ldap_connector_for,
    slapd,
)
from ..owner.case_owner import confirm_token
from ..owner.owners import token_in
from .conftest import VIEWPORT
from .pages import (
    DOCS_SCREENSHOTS,
    accessibility_problems,
    screenshot,
    signed_in,
    submit,
    switch_language,
)
from .showcase import Showcase, owner_enrolled, showcase
from .test_responsive import PHONE

# The T1 block of the default policy, with its number of signal classes left open.
T1_RULE = "  T1:\n    accepted_classes: [S1, S2, S3, S4, S5]\n    min_signal_classes: {}\n"
S4_ALONE = "    s4_alone_suffices: {}\n"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def _capture(page: Page, url: str, name: str, out: Path) -> Path:
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    assert accessibility_problems(page) == [], url
    return screenshot(page, name, out)


def _agent_pages(page: Page, show: Showcase, out: Path) -> list[Path]:
    slug = show.tenant.slug
    shots = [_capture(page, "/login/", "sign-in", out)]
    signed_in(page, show.agent)
    shots.append(_capture(page, f"/t/{slug}/workspace/?q=acme.example", "workspace", out))
    shots.append(_capture(page, f"/t/{slug}/cases/{show.open_case.pk}/", "case", out))
    return shots


def _referee_pages(page: Page, show: Showcase, out: Path) -> list[Path]:
    """The trusted referee's attended session: the live challenge and the coercion question."""
    slug, session = show.tenant.slug, show.attended
    signed_in(page, show.referee)
    return [
        _capture(page, f"/t/{slug}/cases/{session.case_id}/attended/{session.pk}/", "attended", out)
    ]


def _policy_pages(page: Page, show: Showcase, out: Path) -> list[Path]:
    slug = show.tenant.slug
    page.goto(f"/t/{slug}/policy/edit/")
    default = page.locator("#id_text").input_value()
    assert T1_RULE.format(2) in default
    # Below a platform floor: refused, with the problem at its line.
    page.locator("#id_text").fill(default.replace(T1_RULE.format(2), T1_RULE.format(1)))
    page.get_by_role("button", name="Validate").click()
    expect(page.locator(".policy-problems")).to_contain_text("R-16.T1.min_signal_classes")
    page.locator("#validation-heading").scroll_into_view_if_needed()
    assert accessibility_problems(page) == []
    shots = [screenshot(page, "policy-editor-error", out)]

    # Stricter than the floor: valid, and the pending T1 case (S2 and a proofed S4) would no
    # longer have enough: three classes, and S4 no longer enough alone.
    stricter = default.replace(
        T1_RULE.format(2) + S4_ALONE.format("true"), T1_RULE.format(3) + S4_ALONE.format("false")
    )
    assert stricter != default
    page.goto(f"/t/{slug}/policy/edit/")
    page.locator("#id_text").fill(stricter)
    page.get_by_role("button", name="Simulate").click()
    page.locator("#simulation .job").wait_for()
    job = BackgroundJob.objects.filter(tenant=show.tenant, created_by=show.reviewer).latest("pk")
    job_run(job.pk, show.tenant.pk)  # the test plays the worker
    expect(page.locator("#simulation .job[aria-busy=false]")).to_contain_text("Evidence (1)")
    page.locator("#simulation-heading").evaluate("heading => heading.scrollIntoView()")
    assert accessibility_problems(page) == []
    shots.append(screenshot(page, "policy-simulation", out))
    return shots


def _reviewer_pages(page: Page, show: Showcase, out: Path) -> list[Path]:
    slug = show.tenant.slug
    signed_in(page, show.reviewer)
    shots = [
        _capture(page, f"/t/{slug}/review/", "review-queue", out),
        _capture(page, f"/t/{slug}/review/{show.pending_case.pk}/", "review-case", out),
        _capture(page, f"/t/{slug}/review/security/", "security-queue", out),
        *_policy_pages(page, show, out),
        _capture(page, f"/t/{slug}/audit/cases/{show.pending_case.pk}/", "audit-timeline", out),
        _capture(page, "/account/preferences/", "preferences", out),
    ]
    page.goto(f"/t/{slug}/review/")
    switch_language(page, "es")
    shots.append(screenshot(page, "review-queue-es", out))
    return shots


def _owner_pages(new_page, show: Showcase, out: Path) -> list[Path]:
    """The portal of an owner who enrolled a year ago: their passkeys and saved codes, a new set
    shown once, and the in-app confirmation an agent asked for on another owner's case."""
    aisha = show.accounts["Aisha Okafor"]
    owner_enrolled(aisha, "Work laptop", "Phone")
    enrolment_link_send(account=aisha, who=Actor.system("showcase"), via="showcase")
    page = new_page()
    page.goto(f"/owner/enrol/{token_in(mail.outbox[-1].body)}/")
    submit(page)
    expect(page.locator("ul.passkeys li")).to_have_count(2)
    assert accessibility_problems(page) == []
    shots = [screenshot(page, "owner-home", out)]
    page.goto("/owner/codes/")
    submit(page)
    expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)
    assert accessibility_problems(page) == []
    shots.append(screenshot(page, "owner-codes", out))

    dana = show.accounts["Dana Whitfield"]
    owner_enrolled(dana, "Phone")
    case = case_open(actor=show.agent, account=dana, case_type="password_reset", channel="phone")
    confirmation_request(actor=show.agent, case=case)
    confirm = f"/owner/confirm/{confirm_token(mail.outbox[-1].body)}/"
    shots.append(_capture(new_page(), confirm, "owner-confirm", out))
    return shots


def _owner_recovery_page(new_page, slapd, monkeypatch, out: Path) -> Path:  # noqa: F811
    """After an executed password reset the owner opens the emailed link and chooses the new
    password; the tenant's directory (a real slapd) is one the connector can set it in."""
    tenant = make_tenant()
    ldap_connector_for(tenant, slapd, monkeypatch)
    _case, token, _dn = executed_password_reset(tenant, slapd)
    page = new_page()
    page.goto(f"/recover/{token}/")
    submit(page)
    expect(page.get_by_label("New password", exact=True)).to_be_visible()
    assert accessibility_problems(page) == []
    return screenshot(page, "owner-recovery-password", out)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the PNGs go: docs/screenshots/ under `make screenshots`, else a throwaway folder
    (every test run still takes them all, so a page that breaks fails here)."""
    return DOCS_SCREENSHOTS if os.environ.get("SCREENSHOTS") == "docs" else tmp_path


def test_screenshots_of_the_main_pages(new_page, out):
    show = showcase()
    shots = (
        _agent_pages(new_page(), show, out)
        + _referee_pages(new_page(), show, out)
        + _reviewer_pages(new_page(), show, out)
    )
    for path in shots:
        assert _png_size(path) == (VIEWPORT["width"], VIEWPORT["height"]), path


def test_screenshots_of_the_owner_portal(
    new_page,
    out,
    webauthn_site,
    slapd,  # noqa: F811 - the fixture imported above
    monkeypatch,
):
    show = showcase()
    shots = [
        *_owner_pages(new_page, show, out),
        _owner_recovery_page(new_page, slapd, monkeypatch, out),
    ]
    for path in shots:
        assert _png_size(path) == (VIEWPORT["width"], VIEWPORT["height"]), path
    phone = new_page(viewport=PHONE)
    path = _capture(phone, f"/owner/t/{show.tenant.slug}/enrol/", "owner-enrol-phone", out)
    assert _png_size(path) == (PHONE["width"], PHONE["height"]), path


def test_the_accessibility_check_sees_what_a_page_lacks(new_page):
    page = new_page()
    page.set_content(
        "<html><body><h2>Two</h2><h4>Four</h4><input name='phone'>"
        "<button></button><img src='x.png'></body></html>"
    )
    assert accessibility_problems(page) == [
        "<html> has no lang",
        "not exactly one <h1>",
        "heading skips a level: Four",
        "field without a label: phone",
        "button without a name",
        "image without alt: " + page.evaluate("document.querySelector('img').src"),
    ]

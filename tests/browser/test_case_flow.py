"""A recovery end to end in the browser: agent, then supervisor with step-up, then execution."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from recovery.cases.models import Approval, RecoveryCase
from recovery.cases.services import case_open
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notice_send
from tenants.choices import Role
from tenants.models import User

from .. import factories
from ..recovery.casework import contact, submitted
from .pages import authenticator_code, sign_in, signed_in

REASON = "Owner passed S1 and S5; manager confirmed by phone."


def _approvals(case: RecoveryCase) -> int:
    return Approval.objects.filter(case=case).count()


def _open_review(page: Page, case: RecoveryCase) -> None:
    """From the approvals queue, open the case's review page by its link."""
    page.goto(f"/t/{case.tenant.slug}/review/")
    page.get_by_role("link", name=f"Case {case.pk}", exact=True).click()
    page.wait_for_url(re.compile(rf"/review/{case.pk}/$"))


def _approve(page: Page, code: str, reason: str = REASON) -> None:
    page.locator("#id_approved-reason").fill(reason)
    page.locator("#id_approved-token").fill(code)
    page.locator("form.decision-form[action$='/approve/'] button[type=submit]").click()


def _wrong(code: str) -> str:
    """A six-digit code other than `code`."""
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def _record(page: Page, method: str) -> None:
    """Record one confirmed check with the case page's evidence form."""
    form = page.locator("#case-evidence details")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    page.locator("#id_evidence-method").select_option(method)
    form.get_by_label("Confirmed").check()
    form.locator("button[type=submit]").click()


def _status(page: Page):
    return page.locator("#case-live .badge.status")


def _case_events(case: RecoveryCase) -> list[tuple[str, str]]:
    """(action, actor id) of the case's audit events, in chain order."""
    events = AuditEvent.objects.filter(
        tenant=case.tenant, target_type="recovery.RecoveryCase", target_id=str(case.pk)
    ).order_by("seq")
    return [(event.action, event.actor_id) for event in events]


def _in_order(seen: list[tuple[str, str]], expected: list[tuple[str, str]]) -> bool:
    """Whether `expected` occurs in `seen` in this order (other events may come between)."""
    rest = iter(seen)
    return all(step in rest for step in expected)


def _by(user: User) -> str:
    return str(user.pk)


def test_agent_then_supervisor_then_execution_end_to_end(new_page):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=tenant)
    account = factories.make_account_with(tenant, groups=["finance"])  # T1: one approval
    contact(account, "email", "owner@example.test")  # held for a year: notices and the link

    # The agent finds the account in the workspace and opens an unlock case while on the phone.
    desk = new_page()
    sign_in(desk, agent)
    desk.locator("main").get_by_role("link", name=tenant.name).click()
    desk.get_by_role("link", name="Workspace").click()
    desk.locator("#id_q").fill(account.external_id)
    desk.locator("#account-results").get_by_role("link", name=account.display_name).click()
    desk.locator("#id_open-case_type").select_option("unlock")
    desk.locator("#id_open-channel").select_option("phone")
    desk.get_by_role("button", name="Open the case").click()
    desk.wait_for_url(re.compile(r"/cases/\d+/$"))
    case = RecoveryCase.objects.get(account=account)
    assert (case.tier, case.status, case.opened_by) == ("T1", "collecting_evidence", agent)
    evidence_item = desk.locator("#case-checklist li").first
    expect(evidence_item).to_have_class("unmet")

    # Two distinct signal classes, as T1 needs (S5 also waives the cooling-off), then submit.
    _record(desk, "authenticator_push")
    expect(desk.locator("#messages")).to_contain_text("Signal S5 accepted.")
    _record(desk, "recovery_code")
    expect(desk.locator("#messages")).to_contain_text("Signal S1 accepted.")
    expect(evidence_item).to_have_class("met")
    desk.get_by_role("button", name="Submit for approval").click()
    expect(_status(desk)).to_have_text("Pending approval")

    # Another person, a supervisor, approves from the queue with a reason and a fresh code, in
    # a browser without JavaScript (a plain POST; the htmx answer is tested below).
    review = new_page(java_script_enabled=False)
    sign_in(review, supervisor)
    _open_review(review, case)
    _approve(review, authenticator_code(supervisor))
    review.wait_for_url(re.compile(rf"/t/{tenant.slug}/review/$"))  # back to the queue
    expect(review.locator("#messages")).to_have_text(
        f"You approved case {case.pk}; it is now ready."
    )

    # The owner notices go out (a worker's job, played here), then the agent executes.
    for notice in OwnerNotice.objects.filter(case=case, status="pending"):
        notice_send(notice_id=notice.pk)
    desk.reload()
    expect(_status(desk)).to_have_text("Ready")
    desk.get_by_role("button", name="Execute the recovery").click()
    expect(_status(desk)).to_have_text("Executed (access active)")
    expect(desk.locator("#case-execution")).to_be_visible()
    assert RecoveryCase.objects.get(pk=case.pk).status == "executed"

    events = _case_events(case)
    expected = [
        ("case.opened", _by(agent)),
        ("verification.signal_accepted", _by(agent)),
        ("verification.signal_accepted", _by(agent)),
        ("case.submitted", _by(agent)),
        ("approval.approved", _by(supervisor)),
        ("case.executed", _by(agent)),
    ]
    assert _in_order(events, expected), events
    approved = AuditEvent.objects.get(action="approval.approved", target_id=str(case.pk))
    assert approved.data["step_up"]["device_type"] == "totp"
    assert approved.data["reason"] == REASON


def test_an_approval_without_a_code_or_with_a_wrong_one_is_refused_in_the_page(page: Page):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=tenant)
    case = submitted(tenant, agent, ("S2", "S3"), groups=["finance"])  # T1: one approval
    assert case.status == "pending_approval"
    signed_in(page, supervisor)
    _open_review(page, case)
    decision, token = page.locator("#decision"), page.locator("#id_approved-token")

    # No code: the browser itself refuses to send the form.
    _approve(page, "")
    assert token.evaluate("field => field.validity.valueMissing")
    # A client that skips that check: the server refuses it on the form, the reason kept.
    token.evaluate("field => field.removeAttribute('required')")
    _approve(page, "")
    expect(decision.locator(".error")).to_contain_text("This field is required.")
    expect(page.locator("#id_approved-reason")).to_have_value(REASON)
    assert _approvals(case) == 0

    # A wrong code: refused with its code, nothing approved, the failure on record.
    code = authenticator_code(supervisor)
    _approve(page, _wrong(code))
    expect(decision.get_by_role("alert")).to_contain_text("(stepup.invalid_token)")
    assert _approvals(case) == 0
    assert RecoveryCase.objects.get(pk=case.pk).status == "pending_approval"
    failed = AuditEvent.objects.filter(action="auth.login_failed", target_id=str(supervisor.pk))
    assert [event.data["kind"] for event in failed] == ["step_up"]

    # The same form then works with the right code (after django-otp's 1 s throttle).
    time.sleep(1.1)
    _approve(page, code)
    expect(decision.get_by_role("status")).to_contain_text(f"You approved case {case.pk}")
    approval = Approval.objects.get(case=case)
    assert (approval.approver, approval.decision) == (supervisor, "approved")


def test_the_agent_records_evidence_and_submits_without_javascript(page_without_js: Page):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    account = factories.make_account_with(tenant, groups=["finance"])
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")

    signed_in(page_without_js, agent)
    page_without_js.goto(f"/t/{tenant.slug}/cases/{case.pk}/")
    for method in ("authenticator_push", "recovery_code"):
        with page_without_js.expect_navigation():  # a plain POST, redirected to the case
            _record(page_without_js, method)
    expect(page_without_js.locator("#messages")).to_have_text("Signal S1 accepted.")
    page_without_js.get_by_role("button", name="Submit for approval").click()
    expect(_status(page_without_js)).to_have_text("Pending approval")
    assert RecoveryCase.objects.get(pk=case.pk).status == "pending_approval"

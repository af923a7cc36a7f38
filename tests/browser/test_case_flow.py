"""A recovery end to end in the browser: the agent verifies the caller (a code read back from the
owner's mail, identity proofing on the development provider's page), a supervisor approves with
a step-up, the cooling-off passes, then the agent executes."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from recovery.cases.models import Approval, RecoveryCase
from recovery.cases.services import case_open, case_release_cooled
from tenants.choices import Role
from tenants.models import User

from .. import factories
from ..recovery.casework import contact, submitted
from ..recovery.verifiers import enrolled
from .authenticator import authenticator_for
from .casework import code_read_back, identity_proofing
from .pages import authenticator_code, sign_in, signed_in

REASON = "Owner read back the emailed code and passed identity proofing."


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


def test_agent_then_supervisor_then_execution_end_to_end(new_page, webauthn_site):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=tenant)
    account = factories.make_account_with(tenant, groups=["finance"])  # T1: one approval
    contact(account, "email", "owner@example.test")  # held for a year: codes, notices, link
    enrolled(account)  # the system of record's identity-proofing enrolment reference

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

    # Two distinct signal classes, as T1 needs, each from its verifier, then submit.
    code_read_back(desk)
    expect(evidence_item).to_have_class("unmet")
    identity_proofing(desk, new_page())  # the person's own browser
    desk.reload()
    expect(evidence_item).to_have_class("met")
    expect(desk.locator("#case-evidence")).to_contain_text("at provider dev, verdict")
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
        f"You approved case {case.pk}; it is now cooling off."
    )

    # The owner notices go out and the hour of cooling-off passes (the worker's and the beat's
    # jobs, played here), then the agent executes.
    assert set(factories.notices_sent(tenant)) == {"sent"}
    RecoveryCase.objects.filter(pk=case.pk).update(
        cooling_off_until=RecoveryCase.objects.get(pk=case.pk).created_at
    )
    case_release_cooled(case=case)
    desk.reload()
    expect(_status(desk)).to_have_text("Ready")
    # Executing is privileged: the agent confirms with their own passkey, over a challenge bound
    # to this execution of the case as it stands (issue 13); they add one first.
    authenticator_for(desk)
    desk.goto("/account/passkeys/")
    desk.get_by_role("button", name="Add a passkey").click()
    expect(desk.get_by_text("Passkey added.")).to_be_visible()
    desk.goto(f"/t/{tenant.slug}/cases/{case.pk}/")
    desk.get_by_role("button", name="Confirm with your passkey and execute").click()
    expect(_status(desk)).to_have_text("Executed (access active)")
    expect(desk.locator("#case-execution")).to_be_visible()
    assert RecoveryCase.objects.get(pk=case.pk).status == "executed"

    events = _case_events(case)
    expected = [
        ("case.opened", _by(agent)),
        ("verification.challenge_sent", _by(agent)),
        ("verification.signal_accepted", _by(agent)),
        ("verification.proofing_started", _by(agent)),
        ("verification.signal_accepted", "system"),  # the provider's signed verdict
        ("case.submitted", _by(agent)),
        ("approval.approved", _by(supervisor)),
        ("case.executed", _by(agent)),
    ]
    assert _in_order(events, expected), events
    approved = AuditEvent.objects.get(action="approval.approved", target_id=str(case.pk))
    assert approved.data["step_up"]["device_type"] == "totp"  # T1: the policy accepts a code
    assert approved.data["reason"] == REASON
    executed = AuditEvent.objects.get(action="case.executed", target_id=str(case.pk))
    assert executed.data["step_up"]["device_type"] == "passkey"


def test_an_approval_with_a_wrong_code_is_refused_in_the_page(page: Page):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=tenant)
    case = submitted(tenant, agent, ("S2", "S3"), groups=["finance"])  # T1: one approval
    assert case.status == "pending_approval"
    signed_in(page, supervisor)
    _open_review(page, case)
    decision = page.locator("#decision")

    # A wrong code (at T1 the policy accepts a code instead of a passkey): refused with its
    # code, nothing approved, the failure on record.
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


def test_the_agent_verifies_and_submits_without_javascript(new_page):
    tenant = factories.make_tenant()
    agent = factories.staff(Role.AGENT, tenant=tenant)
    account = factories.make_account_with(tenant, groups=["finance"])
    contact(account, "email", "owner.nojs@example.test")
    enrolled(account)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    desk = new_page(java_script_enabled=False)

    signed_in(desk, agent)
    desk.goto(f"/t/{tenant.slug}/cases/{case.pk}/")
    with desk.expect_navigation():  # each a plain POST, redirected to the case
        code_read_back(desk)
    with desk.expect_navigation():
        identity_proofing(desk, new_page(java_script_enabled=False))
    desk.reload()
    expect(desk.locator("#case-checklist li").first).to_have_class("met")
    desk.get_by_role("button", name="Submit for approval").click()
    expect(_status(desk)).to_have_text("Pending approval")
    assert RecoveryCase.objects.get(pk=case.pk).status == "pending_approval"

"""An MFA reset end to end in the browser, carried out in Entra ID through the Graph fake.

The tenant's connector is Entra ID at the fake (a real HTTPS server with its own CA), set by
two tenant admins. In Chromium: an agent opens a T1 MFA reset from the workspace and verifies
the caller (a code read back, identity proofing); a supervisor approves with a passkey; another
agent executes with a passkey; the owner opens the texted pass in the owner portal, is shown
Entra's Temporary Access Pass, "registers" a new passkey at Microsoft (the fake has no sign-in
pages: the test adds the method and the audit record Entra writes, as the owner's sign-in with
the pass would) and confirms. Asserted against the fake: the lost methods removed, sessions
revoked, the pass deleted; against the database: the re-establishment window open. Then a
stranger registers an authenticator app inside the window: the poll (the beat's job, played
here) deletes it at the fake and freezes the account, and the console shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.models import (
    CaseExecution,
    RecoveryCase,
    ReestablishmentWindow,
    WindowChange,
)
from recovery.cases.services import case_release_cooled
from recovery.cases.services.window import window_poll
from recovery.models import ProtectedAccount
from tenants.choices import Role
from tenants.models import Tenant, User
from tests.fakes.graph import PASSWORD_METHOD_ID, FakeGraph, iso

from .. import factories
from ..connector_helpers import connector_set
from ..owner.binding_helpers import pass_in
from ..recovery.casework import contact
from ..recovery.verifiers import enrolled
from .authenticator import authenticator_for
from .casework import code_read_back, identity_proofing, passkey_added
from .pages import sign_in

SECRET_ENV = "VS_TEST_BROWSER_ENTRA_SECRET"
REGISTERED = "User registered security info"  # Entra's audit activity for a new method
TAP = "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
DAY = 86_400
REASON = "Caller read back the emailed code and passed identity proofing."


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def tenant(transactional_db, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """A new tenant whose active connector is Entra ID at the fake, proposed by one tenant
    admin and approved by another (R-27); the secret in the variable the settings name, the
    fake's CA as `ca_bundle`."""
    tenant = factories.make_tenant()
    monkeypatch.setenv(SECRET_ENV, graph.client_secret)
    connector_set(
        tenant,
        kind="entra",
        settings={
            "tenant_id": graph.tenant_id,
            "client_id": graph.client_id,
            "client_secret_env": SECRET_ENV,
            "authority_host": graph.url,
            "graph_url": graph.url,
            "ca_bundle": graph.ca_path,
        },
    )
    return tenant


def staff_browser(new_page, role: str, tenant: Tenant) -> tuple[User, Page]:
    """A new staff member signed in through the real pages, with a passkey in their browser."""
    user = factories.staff(role, tenant=tenant)
    page = new_page()
    authenticator_for(page)
    sign_in(page, user)
    passkey_added(page)
    return user, page


def status_of(page: Page):
    return page.locator("#case-live .badge.status")


def writes(graph: FakeGraph) -> list[tuple[str, str]]:
    """What the connector changed at Microsoft (every write but the token request)."""
    return [
        (r.method, r.path)
        for r in graph.requests
        if r.method in ("POST", "PATCH", "DELETE") and not r.path.endswith("/token")
    ]


def passes(graph: FakeGraph, user_id: str) -> list[str]:
    return [m["id"] for m in graph.methods[user_id] if m["@odata.type"] == TAP]


def case_events(case: RecoveryCase, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            tenant=case.tenant, action=action, target_id=str(case.pk)
        ).order_by("seq")
    )


def test_an_mfa_reset_through_entra_from_the_call_to_a_frozen_account(
    new_page, webauthn_site, tenant: Tenant, graph: FakeGraph, sms_outbox: Path
):
    # The owner at Microsoft: a password and the two methods they lost, registered a day ago.
    external_id = factories.unique("ext")
    user_id = graph.add_user(f"{external_id}@example.test", "Ada Lovelace")
    a_day_ago = iso(graph.now() - DAY)
    lost = [
        graph.add_method(user_id, "microsoftAuthenticator", createdDateTime=a_day_ago),
        graph.add_method(user_id, "fido2", displayName="Old key", createdDateTime=a_day_ago),
    ]
    # The same person in Vouchsafe, from the system of record: T1 (finance), an email and a
    # mobile held for a year, an identity-proofing enrolment.
    account = factories.make_account_with(tenant, groups=["finance"], external_id=external_id)
    contact(account, "email", "ada@example.test")
    contact(account)  # the mobile the recovery's pass is texted to
    enrolled(account)

    # 1. The agent, on the phone, finds the account and opens an MFA reset.
    agent = factories.staff(Role.AGENT, tenant=tenant)
    desk = new_page()
    sign_in(desk, agent)
    desk.goto(f"/t/{tenant.slug}/workspace/")
    desk.locator("#id_q").fill(external_id)
    desk.locator("#account-results").get_by_role("link", name=account.display_name).click()
    desk.locator("#id_open-case_type").select_option("mfa_reset")
    desk.locator("#id_open-channel").select_option("phone")
    desk.get_by_role("button", name="Open the case").click()
    desk.wait_for_url(re.compile(r"/cases/\d+/$"))
    case = RecoveryCase.objects.get(account=account)
    assert (case.case_type, case.tier, case.status) == ("mfa_reset", "T1", "collecting_evidence")

    # 2. Two signal classes from their verifiers (T1): a code read back, identity proofing.
    code_read_back(desk, re.compile("^Send a code to email", re.IGNORECASE))
    identity_proofing(desk, new_page())  # the caller's own browser
    desk.reload()
    expect(desk.locator("#case-checklist li").first).to_have_class("met")
    desk.get_by_role("button", name="Submit for approval").click()
    expect(status_of(desk)).to_have_text("Pending approval")

    # 3. A supervisor approves from the review page, confirming with their passkey.
    supervisor, review = staff_browser(new_page, Role.SUPERVISOR, tenant)
    review.goto(f"/t/{tenant.slug}/review/{case.pk}/")
    review.locator("#id_approved-reason").fill(REASON)
    review.locator("form.decision-form[action$='/approve/'] button[type=submit]").click()
    expect(review.locator("#decision").get_by_role("status")).to_contain_text(
        f"You approved case {case.pk}"
    )
    [approved] = case_events(case, "approval.approved")
    assert approved.actor_id == str(supervisor.pk)
    assert approved.data["step_up"]["device_type"] == "passkey"

    # The owner notices go out and the hour of cooling-off passes (the worker's and the
    # beat's jobs, played here).
    assert set(factories.notices_sent(tenant)) == {"sent"}
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=timezone.now())
    case_release_cooled(case=case)

    # 4. Another agent executes, confirming with their passkey. For an MFA reset Entra
    # changes nothing yet: the credential is the pass the owner will ask for.
    executor, console = staff_browser(new_page, Role.AGENT, tenant)
    console.goto(f"/t/{tenant.slug}/cases/{case.pk}/")
    expect(status_of(console)).to_have_text("Ready")
    console.get_by_role("button", name="Confirm with your passkey and execute").click()
    expect(status_of(console)).to_have_text("Executed (access active)")
    [executed] = case_events(case, "case.executed")
    assert executed.actor_id == str(executor.pk)
    assert executed.data["step_up"]["device_type"] == "passkey"
    execution = CaseExecution.objects.get(case=case)
    assert execution.connector == "entra"
    assert writes(graph) == [] and set(lost) <= set(graph.method_ids(user_id))
    # The re-establishment window opened with the execution (R-35, 72 h for T1).
    window = ReestablishmentWindow.objects.get(account=account)
    restricted_until = ProtectedAccount.objects.get(pk=account.pk).restricted_until
    assert window.case_id == case.pk
    assert restricted_until - window.opened_at == timedelta(hours=72)
    review.goto(f"/t/{tenant.slug}/review/{case.pk}/")
    expect(review.locator("ul.risks")).to_contain_text("risky changes raise alerts until")

    # 5. The owner types the texted pass in the owner portal and is shown Entra's pass, once.
    owner = new_page()
    owner.goto("/owner/pass/")
    owner.get_by_label("Temporary access pass").fill(pass_in(sms_outbox))
    owner.get_by_role("button", name="Continue").click()
    expect(owner.get_by_role("heading", name="Set up your new sign-in method")).to_be_visible()
    owner.get_by_role("button", name="Show my one-time pass").click()
    shown = owner.locator("#one-time-pass")
    expect(shown).to_be_visible()
    [pass_id] = passes(graph, user_id)
    assert shown.inner_text() == graph.pass_values[pass_id]
    [created] = graph.sent("POST", r"/temporaryAccessPassMethods$")
    assert created.json() == {"lifetimeInMinutes": 60, "isUsableOnce": True}
    # Every session ended before the pass existed.
    [revoked_first] = graph.sent("POST", r"/revokeSignInSessions$")
    assert graph.requests.index(revoked_first) < graph.requests.index(created)

    # At Microsoft, signed in with the pass, the owner registers a new passkey.
    new_key = graph.add_method(user_id, "fido2", displayName="Ada's new passkey")
    own = graph.add_audit(REGISTERED, "UserManagement", [{"id": user_id}], initiated_by=user_id)
    revoked_before = graph.users[user_id]["signInSessionsValidFromDateTime"]
    owner.get_by_role("button", name="I have set up my new sign-in method").click()
    expect(owner.get_by_role("status")).to_contain_text("confirmed your new sign-in method")

    # Containment, as the fake sees it: the lost methods and the pass deleted, every
    # session revoked again after the binding; the new passkey and the password kept.
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID, new_key]
    deleted = {
        path.split("/authentication/")[1] for verb, path in writes(graph) if verb == "DELETE"
    }
    assert deleted == {
        f"microsoftAuthenticatorMethods/{lost[0]}",
        f"fido2Methods/{lost[1]}",
        f"temporaryAccessPassMethods/{pass_id}",
    }
    assert len(graph.sent("POST", r"/revokeSignInSessions$")) == 2
    assert graph.users[user_id]["signInSessionsValidFromDateTime"] > revoked_before
    execution.refresh_from_db()
    assert execution.containment_done_at is not None and execution.containment_steps == []
    done = {
        (e.data["operation"], e.data["target"]) for e in case_events(case, "containment.step_done")
    }
    assert done == {
        ("method_remove", lost[0]),
        ("method_remove", lost[1]),
        ("sessions_revoke", account.username),
        ("revoke_temporary_access", pass_id),
    }
    [bound] = case_events(case, "owner.authenticator_bound")
    assert bound.data["verified_by"] == "connector"
    assert [(m["kind"], m["id"]) for m in bound.data["methods"]] == [("fido2", new_key)]

    # The desk sees the binding the connector verified and the containment it did.
    console.reload()
    execution_panel = console.locator("#case-execution")
    expect(execution_panel).to_contain_text("verified by the entra connector")
    expect(execution_panel.locator("[data-containment-done]")).to_have_count(4)
    expect(execution_panel.locator("[data-containment-pending]")).to_have_count(0)

    # 6. Ten minutes later, inside the window, someone registers an authenticator app.
    graph.advance(600)
    stranger = graph.add_method(user_id, "microsoftAuthenticator", displayName="Unknown phone")
    record = graph.add_audit(REGISTERED, "UserManagement", [{"id": user_id}], initiated_by=user_id)
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is None

    window_poll()  # the beat's poll of Entra's audit log, played here

    # Deleted at Microsoft, the owner's own new passkey kept, the account frozen, an alert.
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID, new_key]
    [undo] = graph.sent("DELETE", rf"/{stranger}$")
    assert undo.path.endswith(f"/microsoftAuthenticatorMethods/{stranger}")
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is not None
    alerts = {a.data["type"]: a for a in case_events(case, "alert.raised")}
    # A scripted supervisor approves within seconds of opening the review: flagged too.
    assert set(alerts) == {"fast_decision", "post_recovery_change"}
    alert = alerts["post_recovery_change"]
    assert alert.data["change"] == record
    assert (alert.data["undo"], alert.data["account_frozen"]) == ("undone", True)
    [undone] = case_events(case, "window.change_undone")
    assert undone.data["connector"] == "entra" and undone.data["change"] == record
    # The owner's own registration with the pass, read by the same poll, was the recovery
    # itself: not kept as a change.
    assert list(
        WindowChange.objects.filter(account=account).values_list("vendor_id", flat=True)
    ) == [record]
    assert own != record

    # The console shows it: the alert on the case, the frozen account, both on the review.
    console.reload()
    expect(console.locator("#case-timeline")).to_contain_text(
        "Alert for the security queue: a new authenticator inside the re-establishment window"
    )
    expect(console.locator("#case-timeline")).to_contain_text(
        "Inside the re-establishment window: a new authenticator, undone by the connector"
    )
    console.get_by_role("link", name=account.display_name).first.click()
    expect(console.get_by_role("heading", name=account.display_name)).to_be_visible()
    frozen = console.locator("main .error", has_text=re.compile("frozen", re.IGNORECASE))
    expect(frozen.first).to_be_visible()
    review.reload()
    risks = review.locator("ul.risks")
    expect(risks).to_contain_text("The account is frozen since")
    expect(risks).to_contain_text("Alert on this case: post_recovery_change")
    # The security officer finds the alert in the security queue and follows it to the case.
    officer = new_page()
    sign_in(officer, factories.staff(Role.SECURITY_OFFICER, tenant=tenant))
    officer.goto(f"/t/{tenant.slug}/review/security/")
    alert_row = officer.locator("#section-alerts tr", has_text="post_recovery_change")
    expect(alert_row).to_have_count(1)
    expect(alert_row).to_contain_text("Undo: undone")  # the alert's fields, in words
    alert_row.get_by_role("link", name=f"Case {case.pk}").click()
    officer.wait_for_url(re.compile(rf"/review/{case.pk}/$"))
    expect(officer.locator("ul.risks")).to_contain_text("The account is frozen since")
    assert verify_chain(tenant.pk, tenant.slug).intact

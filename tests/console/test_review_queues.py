"""Review console: the approval queue, a case under review with its decision, the security queue."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from recovery.cases import review_views
from recovery.cases.models import Approval, Evidence, RecoveryCase
from recovery.cases.services import case_open, case_submit, context_record
from recovery.cases.services.repudiation import case_repudiate
from recovery.challenges.models import VerificationChallenge
from recovery.notifications.models import OwnerNotice
from recovery.proofing.models import AttendedSession, ProofingSession
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import (
    active_grant,
    execute,
    make_account_with,
    notices_planned,
    staff,
    totp_token,
)
from ..pages import page
from ..recovery.casework import contact, decide, signal, submitted
from ..recovery.execution.helpers import owner_email, ready_case
from .verifying import attended_done, referee, t1_case

pytestmark = pytest.mark.django_db

FINANCE = {"groups": ["finance"]}  # a T1 account: one approval by a supervisor or officer
HELPDESK = {"groups": ["helpdesk"]}  # a T2 account: security queue, two approvals


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


@pytest.fixture
def supervisor(acme):
    return staff(Role.SUPERVISOR, tenant=acme)


@pytest.fixture
def officer(acme):
    return staff(Role.SECURITY_OFFICER, tenant=acme)


def pending_t1(tenant, opener) -> RecoveryCase:
    case = submitted(tenant, opener, ("S2", "S3"), **FINANCE)
    assert case.status == "pending_approval" and case.tier == "T1"
    return case


def pending_t2(tenant, worker) -> RecoveryCase:
    case = submitted(tenant, worker, ("S2", "S3"), **HELPDESK)
    assert case.status == "pending_approval" and case.route == "security"
    return case


def t2_with_evidence_by(tenant, collector) -> RecoveryCase:
    """A T2 case opened and submitted by another officer, one signal recorded by `collector`."""
    opener = staff(Role.SECURITY_OFFICER, tenant=tenant)
    account = make_account_with(tenant, **HELPDESK)
    case = case_open(actor=opener, account=account, case_type="unlock", channel="phone")
    signal(case, collector, "S2")
    signal(case, opener, "S3")
    return case_submit(actor=opener, case=case)


def waited(case: RecoveryCase, hours: float) -> RecoveryCase:
    """Pretend the case was submitted `hours` ago (test data only)."""
    RecoveryCase.objects.filter(pk=case.pk).update(
        submitted_at=timezone.now() - timedelta(hours=hours)
    )
    return case


def case_ids(body: str) -> list[int]:
    """Case ids in the order the page links to their review pages."""
    return [int(n) for n in re.findall(r"/review/(\d+)/\"", body)]


def events(tenant, action: str) -> int:
    return AuditEvent.objects.filter(tenant=tenant, action=action).count()


def decision_post(
    client, tenant, case, verb="approve", *, reason="manager confirmed", token="", **headers
):
    prefix = "approved" if verb == "approve" else "denied"
    return client.post(
        f"/t/{tenant.slug}/review/{case.pk}/{verb}/",
        {f"{prefix}-reason": reason, f"{prefix}-token": token},
        **headers,
    )


# --- the approval queue ---------------------------------------------------------------------


def test_queue_lists_pending_cases_oldest_first_and_marks_the_overdue(acme, agent, supervisor):
    recent = waited(pending_t1(acme, agent), 1)
    old = waited(pending_t1(acme, agent), 5)
    body = signed_in_client(supervisor).get(f"/t/{acme.slug}/review/").content.decode()
    assert case_ids(body) == [old.pk, recent.pk]
    rows = body.split("<tbody>")[1].split("</tr>")
    assert "Overdue" in rows[0] and "Overdue" not in rows[1]
    assert old.account.display_name in rows[0]
    assert 'type="checkbox"' not in body  # one case at a time: no bulk selection


def test_t2_sla_is_one_hour(acme, officer):
    worker = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = waited(pending_t2(acme, worker), 1.5)
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/").content.decode()
    assert case_ids(body) == [case.pk] and "Overdue" in body


def test_queue_leaves_out_what_the_actor_may_not_decide(acme, agent, supervisor, officer):
    others = pending_t1(acme, agent)
    own = pending_t1(acme, supervisor)  # supervisors may open cases too
    security = pending_t2(acme, staff(Role.SECURITY_OFFICER, tenant=acme))
    collected = t2_with_evidence_by(acme, officer)  # T2: evidence collectors cannot approve
    second = staff(Role.SECURITY_OFFICER, tenant=acme)
    decided = pending_t2(acme, staff(Role.SECURITY_OFFICER, tenant=acme))
    decide(decided, second)  # one of two approvals given by `second`
    assert case_ids(
        signed_in_client(supervisor).get(f"/t/{acme.slug}/review/").content.decode()
    ) == [others.pk]
    officer_sees = case_ids(
        signed_in_client(officer).get(f"/t/{acme.slug}/review/").content.decode()
    )
    assert set(officer_sees) == {others.pk, own.pk, security.pk, decided.pk}
    second_sees = case_ids(signed_in_client(second).get(f"/t/{acme.slug}/review/").content.decode())
    assert decided.pk not in second_sees and collected.pk in second_sees


def test_queue_leaves_out_the_approvers_own_account_and_accounts_they_are_delegate_of(
    acme, agent, officer
):
    worker = staff(Role.SECURITY_OFFICER, tenant=acme)
    own = make_account_with(acme, person_id=str(officer.person_id))  # T2: the subject is staff
    on_own = case_open(actor=worker, account=own, case_type="unlock", channel="phone")
    for signal_class in ("S2", "S3"):
        signal(on_own, worker, signal_class)
    on_own = case_submit(actor=worker, case=on_own)
    delegating = submitted(acme, agent, ("S2", "S3"), delegations=[own.external_id])
    other = pending_t1(acme, agent)
    assert on_own.status == delegating.status == "pending_approval"
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/").content.decode()
    assert case_ids(body) == [other.pk]
    body = signed_in_client(worker).get(f"/t/{acme.slug}/review/").content.decode()
    assert set(case_ids(body)) == {delegating.pk, other.pk}  # worker opened `on_own`


def test_msp_approver_sees_and_opens_only_what_the_delegation_grant_covers(acme, agent, deskco):
    active_grant(deskco, acme, roles=(Role.SUPERVISOR,), tiers=("T0", "T1"))
    msp = staff(Role.SUPERVISOR, provider=deskco)
    covered = submitted(acme, agent, ("S2", "S3"), case_type="password_reset", **FINANCE)
    uncovered = pending_t1(acme, agent)  # an unlock: the grant covers password resets only
    client = signed_in_client(msp)
    assert case_ids(client.get(f"/t/{acme.slug}/review/").content.decode()) == [covered.pk]
    assert client.get(f"/t/{acme.slug}/review/{covered.pk}/").status_code == 200
    refused = client.get(f"/t/{acme.slug}/review/{uncovered.pk}/")
    assert refused.status_code == 403 and "does not cover unlock" in refused.content.decode()


@pytest.mark.parametrize("role", [Role.AGENT, Role.AUDITOR, Role.TENANT_ADMIN])
def test_roles_that_do_not_approve_get_403_on_the_queue(acme, role):
    response = signed_in_client(staff(role, tenant=acme)).get(f"/t/{acme.slug}/review/")
    assert response.status_code == 403


def test_queue_of_another_tenant_is_a_404(acme, globex, supervisor):
    client = signed_in_client(supervisor)
    foreign = client.get(f"/t/{globex.slug}/review/")
    missing = client.get("/t/no-such-tenant/review/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)


def test_queue_is_paginated(acme, agent, supervisor, monkeypatch):
    monkeypatch.setattr(review_views, "QUEUE_PAGE_SIZE", 2)
    for _ in range(3):
        pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    first = client.get(f"/t/{acme.slug}/review/").content.decode()
    second = client.get(f"/t/{acme.slug}/review/?page=2").content.decode()
    assert "Page 1 of 2" in first and len(case_ids(first)) == 2
    assert len(case_ids(second)) == 1 and set(case_ids(second)).isdisjoint(case_ids(first))


def test_queue_costs_the_same_queries_for_10_and_50_cases(
    acme, agent, supervisor, django_assert_num_queries
):
    for _ in range(10):
        pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    with CaptureQueriesContext(connection) as ten:
        assert len(case_ids(client.get(f"/t/{acme.slug}/review/").content.decode())) == 10
    for _ in range(40):
        pending_t1(acme, agent)
    with django_assert_num_queries(len(ten.captured_queries)):
        assert len(case_ids(client.get(f"/t/{acme.slug}/review/").content.decode())) == 25


# --- navigation -----------------------------------------------------------------------------


def test_navigation_shows_each_role_its_queues(acme):
    links = {}
    for role in (Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN):
        body = signed_in_client(staff(role, tenant=acme)).get(f"/t/{acme.slug}/").content.decode()
        links[role] = (
            f'/t/{acme.slug}/review/"' in body,
            f"/t/{acme.slug}/review/security/" in body,
        )
    assert links == {
        Role.AGENT: (False, False),
        Role.SUPERVISOR: (True, False),
        Role.SECURITY_OFFICER: (True, True),
        Role.TENANT_ADMIN: (False, True),
    }


def test_navigation_marks_the_current_queue(acme, officer):
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/security/").content.decode()
    assert f'href="/t/{acme.slug}/review/security/" aria-current="page"' in body
    assert f'href="/t/{acme.slug}/review/" aria-current' not in body


# --- one case under review ------------------------------------------------------------------


def test_review_page_shows_evidence_risks_history_and_needs(acme, agent, officer):
    earlier = pending_t1(acme, agent)
    account = earlier.account
    worker = staff(Role.SECURITY_OFFICER, tenant=acme)  # a repeat attempt: security queue
    case = case_open(actor=worker, account=account, case_type="mfa_reset", channel="phone")
    contact(account, "mobile", "+15550009999", age_days=400, sim_days=2)  # a recent SIM swap
    for signal_class in ("S2", "S3"):
        signal(case, worker, signal_class)
    case = case_submit(actor=worker, case=case)
    assert case.repeat_attempt and case.status == "pending_approval"
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=acme,
        target=earlier,
        data={"type": "post_recovery_change"},
    )
    response = signed_in_client(officer).get(f"/t/{acme.slug}/review/{case.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Repeat attempt" in body
    assert body.count(worker.username) >= 2  # opener and evidence collector
    for text in ("S2", "S3", "Accepted", "SIM changed", "post_recovery_change", "Account history"):
        assert text in body, text
    assert f"/review/{earlier.pk}/" in body  # the account's earlier case, linked
    assert "Approvals: 0 of 1." in body
    assert 'name="approved-token"' in body and 'name="denied-reason"' in body


def _legacy(case: RecoveryCase, by) -> Evidence:
    """A row accepted on someone's word before verifiers existed (as the migration kept it)."""
    return Evidence.objects.create(
        tenant=case.tenant,
        case=case,
        signal_class="S1",
        method="recovery_code",
        result="accepted",
        collected_by=by,
        digest="0" * 64,
        verifier="legacy_assertion",
    )


def _signals_of_every_verifier(case: RecoveryCase, agent, judge) -> None:
    for signal_class in ("S2", "S3", "S4"):
        signal(case, agent, signal_class)
    attended_done(case, judge)
    context_record(actor=agent, case=case, topic="office", statement="Sits in Leeds")
    _legacy(case, agent)


def _evidence_rows(body: str) -> list[str]:
    table = body.split('id="evidence-heading"')[1].split("</table>")[0]
    return table.split("<tbody>")[1].split("</tr>")[:-1]


def test_review_page_names_the_verifier_behind_every_signal(acme, agent, supervisor):
    s = t1_case(acme, agent=agent)
    judge = referee(acme)
    _signals_of_every_verifier(s.case, agent, judge)
    rows = {item.method: item for item in Evidence.objects.filter(case=s.case).order_by("pk")}
    code = VerificationChallenge.objects.get(pk=rows["email_code"].verifier_ref)
    attestation = VerificationChallenge.objects.get(pk=rows["manager_attestation"].verifier_ref)
    proofing = ProofingSession.objects.get(pk=rows["identity_proofing"].verifier_ref)
    attended = AttendedSession.objects.get(pk=rows["attended_remote"].verifier_ref)

    body = signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{s.case.pk}/").content.decode()

    assert '<th scope="col">Verified by</th>' in body
    shown = _evidence_rows(body)
    assert len(shown) == 6
    expected = [
        f"Code challenge {code.pk}: Email to {code.contact_hint}, read back by the owner",
        f"Attestation {attestation.pk} by {attestation.confirmed_by.username}, in their own "
        f"session (link sent to {attestation.contact_hint})",
        f"Proofing session {proofing.pk} at provider dev, verdict {proofing.verdict_id}",
        f"Attended session {attended.pk} (Remote, supervised video) run by referee "
        f"{judge.username}",
        "Context: never counted",
        "Asserted before verifiers existed — not counted",
    ]
    for row, text in zip(shown, expected, strict=True):
        assert text in row, (text, row)
    assert ">Accepted<" in shown[0] and ">Accepted<" in shown[3]
    assert "Context only, never counted" in shown[4] and "Sits in Leeds" in shown[4]
    assert ">Not counted<" in shown[5] and ">Accepted<" not in shown[5]
    # The legacy S1 counts for nothing: only the verifiers' classes are accepted so far.
    assert "Accepted so far: S2, S3, S4." in body


def test_review_page_costs_the_same_queries_with_more_signals(
    acme, agent, supervisor, django_assert_num_queries
):
    s = t1_case(acme, agent=agent)
    judge = referee(acme)
    _signals_of_every_verifier(s.case, agent, judge)
    client = signed_in_client(supervisor)
    path = f"/t/{acme.slug}/review/{s.case.pk}/"
    with CaptureQueriesContext(connection) as few:
        assert client.get(path).status_code == 200
    queries = len(few.captured_queries)
    for _ in range(4):
        _signals_of_every_verifier(s.case, agent, judge)
    with django_assert_num_queries(queries):
        assert len(_evidence_rows(client.get(path).content.decode())) == 30


def test_review_page_without_decision_forms_for_a_case_the_actor_may_not_decide(acme, supervisor):
    own = pending_t1(acme, supervisor)
    body = signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{own.pk}/").content.decode()
    assert "not in your approval queue" in body and 'name="approved-token"' not in body


def test_review_page_of_another_tenants_case_is_the_same_404_as_a_missing_one(
    acme, globex, supervisor
):
    theirs = pending_t1(globex, staff(Role.AGENT, tenant=globex))
    client = signed_in_client(supervisor)
    foreign = client.get(f"/t/{acme.slug}/review/{theirs.pk}/")
    missing = client.get(f"/t/{acme.slug}/review/{theirs.pk + 10_000}/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert theirs.account.display_name not in foreign.content.decode()
    assert AuditEvent.objects.filter(tenant=globex, action="tenant.cross_access_denied").exists()


def test_agents_and_auditors_cannot_open_a_review_page(acme, agent):
    case = pending_t1(acme, agent)
    for role in (Role.AGENT, Role.AUDITOR):
        response = signed_in_client(staff(role, tenant=acme)).get(
            f"/t/{acme.slug}/review/{case.pk}/"
        )
        assert response.status_code == 403


def test_a_supervisor_cannot_open_a_security_queue_case(acme, supervisor):
    case = pending_t2(acme, staff(Role.SECURITY_OFFICER, tenant=acme))
    response = signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{case.pk}/")
    assert response.status_code == 403
    assert "security queue" in response.content.decode()


# --- deciding ---------------------------------------------------------------------------------


def test_approve_without_javascript_records_the_decision_and_returns_to_the_queue(
    acme, agent, supervisor
):
    case = pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    response = decision_post(client, acme, case, token=totp_token(supervisor))
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/review/"
    approval = Approval.objects.get(case=case)
    assert (approval.approver, approval.decision, approval.reason) == (
        supervisor,
        "approved",
        "manager confirmed",
    )
    assert approval.step_up["device_type"] == "totp"
    event = AuditEvent.objects.get(tenant=acme, action="approval.approved")
    assert event.actor_id == str(supervisor.pk) and event.data["reason"] == "manager confirmed"
    case.refresh_from_db()
    assert case.status in {"cooling_off", "ready"}
    follow = client.get(response.url).content.decode()
    assert f"You approved case {case.pk}" in follow and case.pk not in case_ids(follow)


def test_deny_with_htmx_swaps_the_decision_panel(acme, agent, supervisor):
    case = pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    response = decision_post(
        client,
        acme,
        case,
        "deny",
        reason="caller hung up",
        token=totp_token(supervisor),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="decision"') and "<html" not in body
    assert f"You denied case {case.pk}" in body and 'role="status"' in body
    case.refresh_from_db()
    assert case.status == "denied" and case.end_reason == "caller hung up"


def test_a_wrong_code_is_refused_and_only_the_failed_step_up_is_recorded(acme, agent, supervisor):
    case = pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    response = decision_post(client, acme, case, token="000000")
    assert response.status_code == 200
    body = response.content.decode()
    assert "stepup.invalid_token" in body and "manager confirmed" in body  # the reason is kept
    assert 'value="000000"' not in body  # a code is never echoed back
    assert not Approval.objects.filter(case=case).exists()
    assert events(acme, "approval.approved") == events(acme, "policy.violation") == 0
    assert RecoveryCase.objects.get(pk=case.pk).status == "pending_approval"
    supervisor.refresh_from_db()
    assert supervisor.failed_attempts == 1  # the step-up failure counts towards the lockout
    failed = AuditEvent.objects.get(action="auth.login_failed", actor_id=str(supervisor.pk))
    assert failed.data["kind"] == "step_up"


@pytest.mark.parametrize(
    ("reason", "token", "field"), [("", "123456", "reason"), ("  ", "123456", "reason")]
)
def test_a_missing_reason_is_shown_inline_and_nothing_is_written(
    acme, agent, supervisor, reason, token, field
):
    case = pending_t1(acme, agent)
    client = signed_in_client(supervisor)
    before = AuditEvent.objects.count()
    response = decision_post(client, acme, case, reason=reason, token=token)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="error">This field is required.' in body
    assert 'aria-invalid="true"' in body and f'name="approved-{field}"' in body
    assert not Approval.objects.filter(case=case).exists()
    assert AuditEvent.objects.count() == before
    supervisor.refresh_from_db()
    assert supervisor.failed_attempts == 0


def test_a_decision_without_a_step_up_is_refused_with_its_code_and_nothing_is_written(
    acme, agent, supervisor
):
    """Neither a passkey answer nor a code: the service refuses (a T1 accepts either)."""
    case = pending_t1(acme, agent)
    response = decision_post(signed_in_client(supervisor), acme, case, token="")
    assert response.status_code == 200
    assert "(stepup.required)" in response.content.decode()
    assert not Approval.objects.filter(case=case).exists()


def test_the_t2_decision_form_asks_for_a_passkey_only(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = pending_t2(acme, staff(Role.SECURITY_OFFICER, tenant=acme))
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/{case.pk}/").content.decode()
    assert "data-passkey-step-up" in body and 'name="approved-step_up_assertion"' in body
    assert 'name="approved-token"' not in body
    assert f"/cases/{case.pk}/step-up/options/?action=approve" in body


def test_deciding_an_own_case_is_refused_with_its_code_and_recorded_as_a_violation(
    acme, supervisor
):
    own = pending_t1(acme, supervisor)
    response = decision_post(signed_in_client(supervisor), acme, own, token=totp_token(supervisor))
    assert response.status_code == 200
    assert "sod.approver_is_opener" in response.content.decode()
    assert not Approval.objects.filter(case=own).exists()
    violation = AuditEvent.objects.get(tenant=acme, action="policy.violation")
    assert violation.data["code"] == "sod.approver_is_opener"


def test_a_tenant_admin_may_review_but_the_service_refuses_their_approval(acme, agent):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    case = pending_t1(acme, agent)
    client = signed_in_client(admin)
    assert client.get(f"/t/{acme.slug}/review/{case.pk}/").status_code == 200
    response = decision_post(client, acme, case, token=totp_token(admin), HTTP_HX_REQUEST="true")
    assert "approval.role_required" in response.content.decode()
    assert not Approval.objects.filter(case=case).exists()


def test_an_agent_cannot_post_a_decision(acme, agent):
    case = pending_t1(acme, staff(Role.AGENT, tenant=acme))
    response = decision_post(signed_in_client(agent), acme, case, token=totp_token(agent))
    assert response.status_code == 403
    assert not Approval.objects.filter(case=case).exists()


def test_deciding_another_tenants_case_is_a_404_and_writes_nothing(acme, globex, supervisor):
    theirs = pending_t1(globex, staff(Role.AGENT, tenant=globex))
    client = signed_in_client(supervisor)
    foreign = decision_post(client, acme, theirs, token=totp_token(supervisor))
    missing = client.post(f"/t/{acme.slug}/review/{theirs.pk + 10_000}/approve/", {})
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert not Approval.objects.filter(case=theirs).exists()
    assert RecoveryCase.objects.get(pk=theirs.pk).status == "pending_approval"


def test_a_decision_needs_a_post(acme, agent, supervisor):
    case = pending_t1(acme, agent)
    response = signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{case.pk}/approve/")
    assert response.status_code == 405


# --- the security queue ---------------------------------------------------------------------


def repudiated(tenant) -> RecoveryCase:
    """An executed T0 password reset its owner reported as not theirs."""
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    notices_planned(tenant)  # what a worker does once the execution committed
    return case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())


def test_security_queue_shows_privileged_cases_exceptions_alerts_and_repudiations(
    acme, agent, officer
):
    t2 = pending_t2(acme, staff(Role.SECURITY_OFFICER, tenant=acme))
    flagged = case_open(
        actor=agent,
        account=make_account_with(acme, no_helpdesk_reset=True),
        case_type="unlock",
        channel="phone",
    )
    standard = pending_t1(acme, agent)
    exception = case_open(
        actor=agent,
        account=make_account_with(acme),
        case_type="exception",
        channel="phone",
        justification="The owner lost every registered device while travelling abroad.",
    )
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=acme,
        target=standard,
        data={"type": "approval_velocity", "approvals": 11},
    )
    frozen = repudiated(acme)
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/security/").content.decode()
    sections = {
        name: body.split(f'id="section-{name}"')[1].split("</section>")[0]
        for name in ("cases", "exceptions", "alerts", "repudiations")
    }
    assert set(case_ids(sections["cases"])) == {t2.pk, flagged.pk}
    assert "No help-desk reset" in sections["cases"] and "Privileged account" in sections["cases"]
    assert case_ids(sections["exceptions"]) == [exception.pk]
    assert "lost every registered device" in sections["exceptions"]
    assert (
        "approval_velocity" in sections["alerts"]
        and f"/review/{standard.pk}/" in sections["alerts"]
    )
    assert f"/review/{frozen.pk}/" in sections["repudiations"]
    assert "repudiation" in body  # the repudiation raised its own alert
    assert "Since " in sections["repudiations"]  # the account is still frozen


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.AUDITOR])
def test_security_queue_is_refused_to_other_roles(acme, role):
    response = signed_in_client(staff(role, tenant=acme)).get(f"/t/{acme.slug}/review/security/")
    assert response.status_code == 403


def test_tenant_admin_sees_the_security_queue(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    assert signed_in_client(admin).get(f"/t/{acme.slug}/review/security/").status_code == 200


def test_security_queue_shows_nothing_of_another_tenant(acme, globex, officer):
    theirs = pending_t2(globex, staff(Role.SECURITY_OFFICER, tenant=globex))
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=globex,
        target=theirs,
        data={"type": "sim_swap_recovery_attempt"},
    )
    body = signed_in_client(officer).get(f"/t/{acme.slug}/review/security/").content.decode()
    assert case_ids(body) == [] and "sim_swap_recovery_attempt" not in body
    assert theirs.account.display_name not in body


def test_security_queue_sections_page_independently(acme, officer, monkeypatch):
    monkeypatch.setattr(review_views, "SECTION_PAGE_SIZE", 2)
    worker = staff(Role.SECURITY_OFFICER, tenant=acme)
    for _ in range(3):
        case_open(
            actor=worker,
            account=make_account_with(acme, **HELPDESK),
            case_type="unlock",
            channel="phone",
        )
    client = signed_in_client(officer)
    body = client.get(f"/t/{acme.slug}/review/security/?alerts=3&cases=2").content.decode()
    cases = body.split('id="section-cases"')[1].split("</section>")[0]
    assert "Page 2 of 2" in cases and len(case_ids(cases)) == 1
    assert "?alerts=3&amp;cases=1" in cases  # the link back keeps the other section's page


def test_security_queue_costs_the_same_queries_for_10_and_50_rows(
    acme, officer, django_assert_num_queries
):
    worker = staff(Role.SECURITY_OFFICER, tenant=acme)

    def add(count: int) -> None:
        for _ in range(count):
            case = case_open(
                actor=worker,
                account=make_account_with(acme, **HELPDESK),
                case_type="unlock",
                channel="phone",
            )
            record(
                action="alert.raised",
                actor=Actor.system("detection"),
                tenant=acme,
                target=case,
                data={"type": "sim_swap_recovery_attempt"},
            )

    add(10)
    client = signed_in_client(officer)
    url = f"/t/{acme.slug}/review/security/"
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    add(40)
    with django_assert_num_queries(len(ten.captured_queries)):
        assert client.get(url).status_code == 200

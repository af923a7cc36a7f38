"""A case's history as a timeline, one case by id, and the exception review list (R-24)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from recovery.cases.selectors import case_get_visible, case_timeline, exception_review_list
from recovery.cases.services import (
    approval_decide,
    case_cancel,
    case_open,
    case_submit,
    context_record,
)
from recovery.cases.timeline import summarise
from recovery.challenges.services import challenge_send
from tenants.access import access_in
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, PolicyDenied

from ..factories import make_account_with, notices_planned, staff
from .casework import approved, contact, signal, submitted

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


def test_timeline_reads_open_evidence_submit_approve_in_order(acme, agent):
    account = make_account_with(acme, groups=["Finance"])
    case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    swapped = contact(account, value="+15550000077", sim_days=2)
    with pytest.raises(PolicyDenied):
        challenge_send(actor=agent, case=case, contact_method=swapped)
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    case = case_submit(actor=agent, case=case)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    approved(case, supervisor)
    submitted(acme, agent, ("S2",))  # another case of the tenant: not in this timeline
    notices_planned(acme)  # what a worker does once these events have committed

    timeline = case_timeline(tenant=acme, case=case)

    assert [entry.action for entry in timeline] == [
        "case.opened",
        "verification.challenge_refused",
        "alert.raised",
        "verification.challenge_sent",
        "verification.signal_accepted",
        "verification.challenge_verified",
        "verification.attestation_requested",
        "verification.signal_accepted",
        "verification.attestation_confirmed",
        "case.submitted",
        "step_up.challenge_issued",  # the supervisor's passkey challenge for this decision
        "approval.approved",
        "case.status_changed",
        # The worker plans the notices of the opening and of the approval: both skip the
        # number whose SIM changed, which the system of record held before the case.
        "notice.skipped",
        "notice.skipped",
    ]
    summaries = [entry.summary for entry in timeline]
    assert summaries[0] == "Opened as T1 “MFA reset” via Phone (Standard queue)"
    assert summaries[2] == "Alert for the security queue: sim_swap_recovery_attempt"
    assert summaries[4].startswith("Signal S2 (email_code) accepted via o")
    assert summaries[7].startswith("Signal S3 (manager_attestation) accepted via ")
    assert summaries[9] == "Submitted for approval with evidence S2, S3"
    assert summaries[11] == f"Approved by {supervisor.username} (supervisor): 'manager confirmed'"
    skipped = AuditEvent.objects.filter(
        tenant=acme, action="notice.skipped", target_id=str(case.pk)
    ).order_by("seq")
    assert [e.data["event"] for e in skipped] == ["case_opened", "case_approved"]
    assert all(e.data["skipped"][0]["reason"] == "sim_change_recent" for e in skipped)
    assert summaries[12].startswith("Approvals complete; cooling off until ")
    assert [e.seq for e in timeline] == sorted({e.seq for e in timeline})
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
    first, last = timeline[0], timeline[-1]
    assert (first.actor_label, first.actor_type, first.actor_org) == (
        agent.username,
        "human",
        acme.name,
    )
    assert (timeline[12].actor_label, timeline[12].actor_type) == ("workflow", "system")
    assert (last.actor_label, last.actor_type) == ("notifier", "system")
    assert first.as_dict()["at"] == first.at.isoformat()


def test_refusals_and_cancellation_read_in_words(acme, agent):
    case = submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"])
    with pytest.raises(PolicyDenied):
        approval_decide(actor=agent, case=case, decision="approved", reason="me", step_up=None)
    case_cancel(actor=agent, case=case, reason="caller hung up\nand did not call back")
    summaries = [entry.summary for entry in case_timeline(tenant=acme, case=case)]
    assert summaries[-2:] == [
        f"Refused: {agent.username} may not approve this case (sod.approver_is_opener)",
        f"Cancelled by {agent.username}: 'caller hung up and did not call back'",
    ]


def test_context_only_facts_and_unknown_actions_still_read(acme):
    assert (
        summarise("verification.signal_rejected", {"class": "context", "method": "dob"}, "a")
        == "Kept as context only, not evidence: dob (None)"
    )
    assert summarise("case.note_added", {}, "alice") == "Note added by alice"
    assert summarise("case.unheard_of", {}, "alice") == "case.unheard_of by alice"


@pytest.mark.parametrize(
    ("action", "data", "words"),
    [
        (
            "containment.step_done",
            {"operation": "method_remove", "connector": "entra"},
            "Containment: a lost sign-in method removed (the entra connector)",
        ),
        (
            "containment.step_failed",
            {"operation": "sessions_revoke", "manual_step": "End every session of ada."},
            "Containment step left to a person: End every session of ada.",
        ),
        (
            "window.change_undone",
            {"kind": "mfa_enrolled"},
            "Inside the re-establishment window: a new authenticator, undone by the connector",
        ),
        (
            "window.account_frozen",
            {"kind": "mailbox_rule"},
            "Account frozen pending review: a new mailbox forwarding, redirect or hiding rule "
            "inside the window",
        ),
        (
            "alert.raised",
            {"type": "post_recovery_change", "kind": "privileged_role"},
            "Alert for the security queue: a privileged role grant inside the re-establishment "
            "window",
        ),
        (
            "approval.invalidated",
            {"approver": "sam", "reason": "snapshot_changed"},
            "The approval by sam no longer counts: the case changed after it",
        ),
        (
            "owner.temporary_pass_issued",
            {},
            "The provider's one-time pass was shown to the owner in their session",
        ),
    ],
)
def test_recovery_steps_after_execution_read_in_words(action, data, words):
    assert summarise(action, data, "ana") == words


def test_summaries_follow_the_active_language():
    from django.utils import translation

    with translation.override("es"):
        summary = summarise("case.cancelled", {"reason": "duplicado"}, "ana")
    assert summary != "Cancelled by ana: 'duplicado'"
    assert "ana" in summary and "'duplicado'" in summary


def test_another_tenants_case_is_not_found(acme, globex, agent):
    theirs = submitted(globex, staff(Role.AGENT, tenant=globex), ("S2",))
    with pytest.raises(CrossTenantNotFound):
        case_get_visible(tenant=acme, access=access_in(agent, acme), pk=theirs.pk)
    with pytest.raises(CrossTenantNotFound):
        case_timeline(tenant=acme, case=theirs)
    theirs_agent = staff(Role.AGENT, tenant=globex)
    assert (
        case_get_visible(tenant=globex, access=access_in(theirs_agent, globex), pk=theirs.pk)
        == theirs
    )
    ours = submitted(acme, agent, ("S2",))
    assert (
        case_get_visible(tenant=acme, access=access_in(agent, acme), pk=ours.pk).account
        == ours.account
    )


def open_exception(tenant, actor):
    account = make_account_with(tenant)
    return case_open(
        actor=actor,
        account=account,
        case_type="exception",
        channel="phone",
        justification="The owner lost every factor while travelling; HR confirmed it.",
    )


def test_exception_review_list_holds_this_tenants_exceptions_newest_first(acme, globex, agent):
    older = open_exception(acme, agent)
    case_cancel(actor=staff(Role.SECURITY_OFFICER, tenant=acme), case=older, reason="withdrawn")
    newer = open_exception(acme, agent)
    submitted(acme, agent, ("S2",))  # not an exception
    open_exception(globex, staff(Role.AGENT, tenant=globex))  # another tenant's

    listed = list(exception_review_list(tenant=acme, access=access_in(agent, acme)))

    assert [case.pk for case in listed] == [newer.pk, older.pk]
    assert [case.status for case in listed] == ["collecting_evidence", "cancelled"]


@pytest.mark.parametrize("cases", [1, 10])
def test_exception_list_is_one_query_however_long(acme, agent, django_assert_num_queries, cases):
    for _ in range(cases):
        open_exception(acme, agent)
    access = access_in(agent, acme)
    with django_assert_num_queries(1):
        rows = [
            (case.account.external_id, case.opened_by.username, case.opened_via_provider)
            for case in exception_review_list(tenant=acme, access=access)
        ]
    assert len(rows) == cases


@pytest.mark.parametrize("signals", [0, 9])
def test_timeline_is_one_query_however_long(acme, agent, django_assert_num_queries, signals):
    case = case_open(
        actor=agent, account=make_account_with(acme), case_type="unlock", channel="phone"
    )
    for n in range(signals):
        context_record(actor=agent, case=case, topic=f"fact {n}", statement="said so")
    with django_assert_num_queries(1):
        timeline = case_timeline(tenant=acme, case=case)
    assert len(timeline) == 1 + signals

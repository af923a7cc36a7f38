"""The attended session page of a trusted referee (R-06, R-07, R-09): the live challenge, the
coercion question that must be answered before anything else, the session record and outcome,
and the one-click fraud flag. The referee's own page: 403 for anyone else, 404 for ids of other
cases and tenants; bad input is refused with its code and writes nothing."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from recovery.cases import attended_views
from recovery.cases.models import Evidence, RecoveryCase
from recovery.proofing.models import AttendedSession
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import staff
from ..pages import page
from .verifying import attended_open, referee, t1_case

pytestmark = pytest.mark.django_db

RECORD = {
    "complete-documents_presented": ["passport"],
    "complete-documents_other": "Staff badge 4471",
    "complete-steps_completed": ["document_inspected", "live_challenge_watched"],
    "complete-live_challenge_passed": "on",
    "complete-outcome_note": "Face matches the passport photo.",
}


@pytest.fixture
def setup(acme):
    s = t1_case(acme)
    s.referee = referee(acme)
    s.session = attended_open(s.case, s.referee)
    s.client = signed_in_client(s.referee)
    return s


def url(session: AttendedSession, action: str = "") -> str:
    case = session.case
    base = f"/t/{case.tenant.slug}/cases/{case.pk}/attended/{session.pk}/"
    return base + (f"{action}/" if action else "")


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def fresh(session: AttendedSession) -> AttendedSession:
    return AttendedSession.objects.get(pk=session.pk)


def answered(s, observed: str = "no", note: str = ""):
    return s.client.post(
        url(s.session, "coercion"), {"coercion-observed": observed, "coercion-note": note}
    )


# --- the page -------------------------------------------------------------------------------


def test_the_referee_sees_the_live_challenge_the_question_first_and_the_fraud_button(setup):
    s = setup
    response = s.client.get(url(s.session))
    body = response.content.decode()
    assert response.status_code == 200
    assert s.session.live_challenge in body
    assert 'name="coercion-observed"' in body
    assert "Did you observe signs of coercion, manipulation or social engineering?" in body
    # The record form is there but disabled until the question is answered.
    complete = body.split('id="complete"')[1].split("</section>")[0]
    assert re.search(r"<fieldset[^>]* disabled>", complete)
    assert "Answer the coercion question first" in complete
    assert 'name="complete-biometric_compared"' not in complete  # remote: no biometric
    fraud = body.split('id="fraud"')[1].split("</section>")[0]
    assert "Flag fraud and freeze the case" in fraud and "referee suspects fraud" in fraud
    # The case page links the referee to their session.
    case_page = s.client.get(f"/t/{s.tenant.slug}/cases/{s.case.pk}/").content.decode()
    assert f'href="{url(s.session)}"' in case_page


@pytest.mark.parametrize("who", ["agent", "other referee", "security officer", "auditor"])
def test_only_the_sessions_referee_may_open_or_use_the_page(setup, acme, who):
    s = setup
    other = {
        "agent": s.agent,
        "other referee": referee(acme),
        "security officer": staff(Role.SECURITY_OFFICER, tenant=acme),
        "auditor": staff(Role.AUDITOR, tenant=acme),
    }[who]
    client = signed_in_client(other)
    assert client.get(url(s.session)).status_code == 403
    for action, data in (
        ("coercion", {"coercion-observed": "no"}),
        ("complete", RECORD),
        ("fraud", {"fraud-reason": "I was not there"}),
    ):
        assert client.post(url(s.session, action), data).status_code == 403
    session = fresh(s.session)
    assert session.coercion_observed is None and session.status == "open"
    assert RecoveryCase.objects.get(pk=s.case.pk).status == "collecting_evidence"
    assert (
        f'href="{url(s.session)}"'
        not in client.get(f"/t/{s.tenant.slug}/cases/{s.case.pk}/").content.decode()
    )


@pytest.mark.parametrize("action", ["", "coercion", "complete", "fraud"])
def test_a_session_of_another_case_or_tenant_is_the_same_404_as_a_missing_one(
    setup, globex, action
):
    s = setup
    theirs = t1_case(globex)
    their_session = attended_open(theirs.case, referee(globex))
    other_case = t1_case(s.tenant).case
    method = s.client.post if action else s.client.get
    data = {"coercion-observed": "no"} if action else None
    base = f"/t/{s.tenant.slug}/cases/"
    suffix = f"{action}/" if action else ""
    missing = method(f"{base}{s.case.pk}/attended/{their_session.pk + 10_000}/{suffix}", data)
    for path in (
        f"{base}{s.case.pk}/attended/{their_session.pk}/",  # another tenant's session
        f"{base}{other_case.pk}/attended/{s.session.pk}/",  # ours, under another case
    ):
        foreign = method(path + suffix, data)
        assert foreign.status_code == missing.status_code == 404
        assert page(foreign).replace(path, "") == page(missing).replace(
            f"{base}{s.case.pk}/attended/{their_session.pk + 10_000}/", ""
        )
    assert fresh(their_session).coercion_observed is None
    assert fresh(s.session).coercion_observed is None


# --- the coercion question ------------------------------------------------------------------


def test_nothing_completes_before_the_coercion_question_is_answered(setup, monkeypatch):
    s = setup
    called = []
    monkeypatch.setattr(attended_views, "attended_complete", lambda **kw: called.append(kw))

    response = s.client.post(url(s.session, "complete"), RECORD)

    body = response.content.decode()
    assert response.status_code == 400 and "(attended.coercion_unanswered)" in body
    assert called == []  # refused here, before the service (which refuses it too)
    assert "Staff badge 4471" in body  # the referee's record is kept
    assert fresh(s.session).status == "open"
    assert not Evidence.objects.filter(case=s.case).exists()


def test_the_service_refuses_an_unanswered_session_too(setup, monkeypatch):
    s = setup
    # The view's own check is shown an answer that the database does not hold.
    real = attended_views.attended_get_visible
    monkeypatch.setattr(
        attended_views, "attended_get_visible", lambda **kw: _answered_copy(real(**kw))
    )

    response = s.client.post(url(s.session, "complete"), RECORD)

    assert response.status_code == 400
    assert "(attended.coercion_unanswered)" in response.content.decode()
    assert fresh(s.session).status == "open"
    assert not Evidence.objects.filter(case=s.case).exists()


def _answered_copy(session: AttendedSession) -> AttendedSession:
    session.coercion_observed = False  # in memory only: the database row is unanswered
    return session


def test_no_coercion_then_the_record_completes_the_session_as_s4(setup):
    s = setup
    response = answered(s)
    assert response.status_code == 302 and response.url == url(s.session)
    body = s.client.get(url(s.session)).content.decode()
    assert "No signs of coercion observed" in body
    assert "<fieldset" in body and not re.search(r"<fieldset[^>]* disabled>", body)

    done = s.client.post(url(s.session, "complete"), RECORD, follow=True)

    body = done.content.decode()
    assert "Session completed: signal S4 accepted." in body
    session = fresh(s.session)
    assert session.status == "completed" and session.live_challenge_passed
    assert session.documents_presented == ["passport", "Staff badge 4471"]
    assert session.steps_completed == ["document_inspected", "live_challenge_watched"]
    evidence = Evidence.objects.get(case=s.case)
    assert (evidence.method, evidence.result, evidence.verifier_ref) == (
        "attended_remote",
        "accepted",
        session.pk,
    )
    case_page = s.client.get(f"/t/{s.tenant.slug}/cases/{s.case.pk}/").content.decode()
    assert (
        f"Attended session {session.pk} (Remote, supervised video) run by referee "
        f"{s.referee.username}" in case_page
    )
    assert (
        f"Referee {s.referee.username} saw no sign of coercion in attended session {session.pk}"
        in case_page
    )
    assert f"Attended session {session.pk}: completed: identity confirmed" in case_page


def test_coercion_observed_needs_a_note_then_ends_the_session_with_nothing_counted(setup):
    s = setup
    refused = answered(s, "yes")
    assert refused.status_code == 400
    assert "(attended.coercion_note_required)" in refused.content.decode()
    assert fresh(s.session).coercion_observed is None

    answered(s, "yes", "Someone off camera told her what to say.")

    session = fresh(s.session)
    assert session.coercion_observed is True and session.status == "failed"
    assert [e.data["type"] for e in events(s.tenant, "alert.raised")] == ["coercion_observed"]
    body = s.client.get(url(s.session)).content.decode()
    assert "Coercion observed" in body and 'action="' + url(s.session, "complete") not in body
    assert not Evidence.objects.filter(case=s.case).exists()


@pytest.mark.parametrize("answer", ["", "maybe"])
def test_a_missing_or_unknown_answer_is_a_form_error_and_nothing_is_written(setup, answer):
    s = setup
    before = AuditEvent.objects.filter(tenant=s.tenant).count()
    response = answered(s, answer)
    body = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was saved: correct the marked fields." in body
    assert "This field is required." in body or "Select a valid choice." in body
    assert fresh(s.session).coercion_observed is None
    assert AuditEvent.objects.filter(tenant=s.tenant).count() == before


# --- the record and the outcome -------------------------------------------------------------


def test_a_record_without_documents_is_refused_with_its_code(setup):
    s = setup
    answered(s)
    data = {**RECORD, "complete-documents_presented": [], "complete-documents_other": ""}
    response = s.client.post(url(s.session, "complete"), data)
    body = response.content.decode()
    assert response.status_code == 400 and "(attended.record_invalid)" in body
    assert fresh(s.session).status == "open"
    assert not Evidence.objects.filter(case=s.case).exists()


def test_a_failed_live_challenge_ends_the_session_and_nothing_counts(setup):
    s = setup
    answered(s)
    data = {k: v for k, v in RECORD.items() if k != "complete-live_challenge_passed"}
    response = s.client.post(url(s.session, "complete"), data, follow=True)
    assert "the live challenge was not passed, so nothing counts" in response.content.decode()
    assert fresh(s.session).status == "failed"
    assert not Evidence.objects.filter(case=s.case).exists()


def test_onsite_shows_the_biometric_box_and_needs_it(acme):
    s = t1_case(acme)
    judge = referee(acme)
    session = attended_open(s.case, judge, mode="onsite")
    client = signed_in_client(judge)
    client.post(url(session, "coercion"), {"coercion-observed": "no"})
    assert 'name="complete-biometric_compared"' in client.get(url(session)).content.decode()

    refused = client.post(url(session, "complete"), RECORD)

    assert refused.status_code == 400
    assert "(attended.biometric_required)" in refused.content.decode()
    client.post(url(session, "complete"), {**RECORD, "complete-biometric_compared": "on"})
    assert Evidence.objects.get(case=s.case).method == "attended_onsite"


# --- the fraud flag -------------------------------------------------------------------------


def test_one_click_flags_fraud_and_freezes_the_case_even_before_the_question(setup):
    s = setup
    form = s.client.get(url(s.session)).content.decode().split('id="fraud"')[1]
    reason = form.split('name="fraud-reason"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert reason.strip()  # filled in already: one click is enough

    response = s.client.post(url(s.session, "fraud"), {"fraud-reason": reason.strip()})

    assert response.status_code == 302
    case = RecoveryCase.objects.get(pk=s.case.pk)
    assert case.status == "frozen" and fresh(s.session).status == "fraud_flagged"
    body = s.client.get(url(s.session)).content.decode()
    assert "Fraud flagged: the case is frozen and the security queue has an alert." in body
    assert 'name="fraud-reason"' not in body
    timeline = s.client.get(f"/t/{s.tenant.slug}/cases/{s.case.pk}/").content.decode()
    assert f"Fraud flagged by {s.referee.username} in attended session {s.session.pk}" in timeline


def test_fraud_without_a_reason_is_refused_and_the_case_stays_open(setup):
    s = setup
    response = s.client.post(url(s.session, "fraud"), {"fraud-reason": "  "})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert RecoveryCase.objects.get(pk=s.case.pk).status == "collecting_evidence"
    assert not events(s.tenant, "case.fraud_flagged")


def test_the_session_page_costs_the_same_queries_before_and_after_completion(
    setup, django_assert_num_queries
):
    s = setup
    with CaptureQueriesContext(connection) as before:
        assert s.client.get(url(s.session)).status_code == 200
    queries = len(before.captured_queries)  # read now: the next requests reset the log
    answered(s)
    s.client.post(url(s.session, "complete"), RECORD)
    assert fresh(s.session).status == "completed"
    with django_assert_num_queries(queries):
        s.client.get(url(s.session))

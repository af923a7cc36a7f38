"""The case page: live checklist, challenges to contacts on record only, evidence with the
verifier behind each row, context, files, notes and the actions of each state, each through the
API's own service; tenant-safe and role-checked. The other verifier actions (proofing, attended
sessions, taking a drafted case) are in test_verifier_actions.py.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from recovery.cases.models import CaseExecution, CaseNote, Evidence, EvidenceAttachment
from recovery.cases.services import case_open, context_record
from recovery.cases.services.attachments import attachment_add, note_add
from recovery.challenges.models import VerificationChallenge
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import make_account, make_account_with, staff, step_up_assertion
from ..pages import page
from ..recovery.casework import contact, signal
from ..recovery.challenges.helpers import (
    EMAIL,
    MOBILE,
    code_in,
    last_email,
    open_case,
    open_managed_case,
)
from ..recovery.execution.helpers import owner_email, ready_case
from .test_agent_workspace import assert_no_secret_inputs, typed_fields
from .verifying import attended_done, referee, t1_case

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def store_dir(settings, tmp_path):
    """Files and text messages of the test go to its own directory."""
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    settings.EVIDENCE_STORAGE_DIR = tmp_path / "evidence"
    return settings.EVIDENCE_STORAGE_DIR


def url(case, action: str = "") -> str:
    return f"/t/{case.tenant.slug}/cases/{case.pk}/" + (f"{action}/" if action else "")


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action))


def t2_case(tenant, agent):
    """A case on a privileged account: it goes to the security queue."""
    account = make_account_with(tenant, admin_roles=["Global Administrator"])
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    assert case.route == "security"
    return case


# --- reading --------------------------------------------------------------------------------


def test_the_page_shows_header_checklist_contacts_and_timeline(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)

    response = client.get(url(s.case))

    body = response.content.decode()
    assert response.status_code == 200
    assert f"Case {s.case.pk}: {s.account.display_name}" in body
    assert "Password reset" in body and "Collecting evidence" in body and "Tier T0" in body
    assert "Still needed" in body and "Evidence: 1 more distinct signal class from" in body
    assert "Opened as T0 “Password reset” via Phone" in body  # the timeline
    assert "Send a code to Mobile phone ***01" in body and "j***@example.test" in body
    assert MOBILE not in body and EMAIL not in body


def test_prior_attempts_on_the_account_are_in_view(acme):
    s = open_case(acme)
    later = case_open(actor=s.agent, account=s.account, case_type="unlock", channel="chat")
    body = signed_in_client(s.agent).get(url(later)).content.decode()
    assert "Prior attempts on this account" in body and f"Case {s.case.pk}" in body
    assert "Repeat attempt" in body


def _every_kind_of_row(s, judge) -> None:
    """A note, context, and a signal from each verifier: code, attestation, proofing and an
    attended session."""
    note_add(actor=s.agent, case=s.case, text="called back")
    context_record(actor=s.agent, case=s.case, topic="office", statement="Works in Leeds")
    signal(s.case, s.agent, "S2")
    signal(s.case, s.agent, "S3")
    signal(s.case, s.agent, "S4")
    attended_done(s.case, judge)


def test_the_page_costs_the_same_queries_with_more_rows(acme, django_assert_num_queries):
    s = t1_case(acme)
    judge = referee(acme)
    client = signed_in_client(s.agent)
    _every_kind_of_row(s, judge)
    with CaptureQueriesContext(connection) as few:
        client.get(url(s.case))
    for _ in range(3):
        _every_kind_of_row(s, judge)
    assert Evidence.objects.filter(case=s.case).count() == 20
    with django_assert_num_queries(len(few.captured_queries)):
        body = client.get(url(s.case)).content.decode()
    assert body.count("Context: never counted") == 4
    assert body.count("run by referee") == 4 and body.count("at provider dev") == 4


# --- challenges -----------------------------------------------------------------------------


def test_send_a_code_then_check_it_and_htmx_refreshes_checklist_and_timeline(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)

    sent = client.post(url(s.case, "challenges"), {"send-contact_method": s.email.pk})

    assert sent.status_code == 302 and sent.url == url(s.case)
    challenge = VerificationChallenge.objects.get(case=s.case)
    code = code_in(last_email().body)
    shown = client.get(url(s.case)).content.decode()
    assert "A code was sent to j***@example.test" in shown and code not in shown
    assert f'name="challenge-{challenge.pk}-code"' in shown

    verify = url(s.case, f"challenges/{challenge.pk}/verify")
    wrong = client.post(verify, {f"challenge-{challenge.pk}-code": "00000000"}, **HTMX)
    assert wrong.status_code == 200 and "(challenge.code_invalid)" in wrong.content.decode()
    assert not Evidence.objects.filter(case=s.case).exists()

    right = client.post(verify, {f"challenge-{challenge.pk}-code": code}, **HTMX)

    body = right.content.decode()
    assert right.status_code == 200 and "<html" not in body
    assert 'id="case-live"' in body and 'id="messages"' in body and "hx-swap-oob" in body
    assert "Signal S2 accepted." in body
    assert "Evidence: complete (accepted classes: S2)." in body
    assert "Signal S2 (email_code) accepted via j***@example.test" in body  # the timeline
    assert Evidence.objects.get(case=s.case).result == "accepted"


@pytest.mark.parametrize("whose", ["another account", "another tenant"])
def test_a_code_goes_only_to_a_contact_on_the_accounts_record(acme, globex, whose):
    s = open_case(acme)
    elsewhere = make_account(acme if whose == "another account" else globex)
    stranger = contact(elsewhere, "email", "attacker@example.test")
    client = signed_in_client(s.agent)

    response = client.post(url(s.case, "challenges"), {"send-contact_method": stranger.pk})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not VerificationChallenge.objects.exists() and not mail.outbox


def test_a_contact_changed_in_quarantine_is_refused_with_its_reason_and_it_stays_on_record(acme):
    s = open_case(acme)
    fresh = contact(s.account, "desk_phone", "+15550100999", age_days=2)
    client = signed_in_client(s.agent)

    response = client.post(url(s.case, "challenges"), {"send-contact_method": fresh.pk})

    assert response.status_code == 400
    assert "(evidence.contact_changed_in_quarantine)" in response.content.decode()
    assert not VerificationChallenge.objects.filter(case=s.case).exists()
    refused = events(acme, "verification.challenge_refused")
    assert [e.data["code"] for e in refused] == ["evidence.contact_changed_in_quarantine"]


def test_another_cases_challenge_is_a_404_like_a_missing_one(acme):
    first, second = open_case(acme), open_case(acme)
    client = signed_in_client(first.agent)
    signed_in_client(second.agent).post(
        url(second.case, "challenges"), {"send-contact_method": second.email.pk}
    )
    theirs = VerificationChallenge.objects.get(case=second.case)

    foreign = client.post(url(first.case, f"challenges/{theirs.pk}/verify"), {"x-code": "1"})
    missing = client.post(url(first.case, f"challenges/{theirs.pk + 999}/verify"), {})

    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert not events(acme, "verification.challenge_failed")


def test_the_manager_is_asked_to_attest_from_the_page(acme):
    s = open_managed_case(acme)
    client = signed_in_client(s.agent)
    assert "the manager contact on record, ***st;" in client.get(url(s.case)).content.decode()

    response = client.post(url(s.case, "attestation"), **HTMX)

    assert response.status_code == 200
    assert "The manager was asked to attest" in response.content.decode()
    challenge = VerificationChallenge.objects.get(case=s.case)
    assert challenge.kind == "attestation" and last_email().to == ["morgan.boss@example.test"]


# --- evidence and context ------------------------------------------------------------------


def test_each_evidence_row_names_the_verifier_that_produced_it(acme):
    s = t1_case(acme)
    judge = referee(acme)
    code = signal(s.case, s.agent, "S2")
    proofed = signal(s.case, s.agent, "S4")
    attended = attended_done(s.case, judge)
    challenge = VerificationChallenge.objects.get(pk=code.verifier_ref)

    body = signed_in_client(s.agent).get(url(s.case)).content.decode()

    section = body.split('id="case-evidence"')[1].split("</section>")[0]
    assert '<th scope="col">Verified by</th>' in section
    assert (
        f"Code challenge {challenge.pk}: Email to {challenge.contact_hint}, read back by the owner"
        in section
    )
    verdict = proofed.details["verdict_id"]
    assert f"Proofing session {proofed.verifier_ref} at provider dev, verdict {verdict}" in section
    assert (
        f"Attended session {attended.verifier_ref} (Remote, supervised video) run by referee "
        f"{judge.username}" in section
    )


def test_context_is_recorded_shown_as_context_and_never_counted(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    form = client.get(url(s.case)).content.decode()
    assert "Record context" in form and 'name="context-topic"' in form
    assert 'name="evidence-method"' not in form and 'name="evidence-verified"' not in form

    response = client.post(
        url(s.case, "context"),
        {"context-topic": "last office", "context-statement": "Says she sits in Leeds"},
        follow=True,
    )

    item = Evidence.objects.get(case=s.case)
    assert (item.result, item.signal_class, item.verifier) == ("context", "context", "")
    assert item.details["topic"] == "last office"
    body = response.content.decode()
    assert "Kept as context only: it never counts as evidence." in body
    assert "Context: never counted" in body and "Says she sits in Leeds" in body
    assert "Evidence: 1 more distinct signal class from" in body  # nothing counted


def test_a_secret_in_context_is_masked_and_recorded_as_a_violation(acme):
    s = open_case(acme)
    response = signed_in_client(s.agent).post(
        url(s.case, "context"),
        {"context-topic": "login", "context-statement": "password: hunter2 is what she uses"},
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200 and "was masked" in body and "hunter2" not in body
    assert "hunter2" not in Evidence.objects.get(case=s.case).details["statement"]
    assert [e.data["code"] for e in events(acme, "policy.violation")] == ["secret_in_notes"]


@pytest.mark.parametrize(
    "data",
    [
        {"context-topic": "", "context-statement": "something"},
        {"context-topic": "x" * 65, "context-statement": "something"},
        {"context-topic": "office", "context-statement": "   "},
    ],
)
def test_bad_context_is_refused_with_the_input_kept_and_nothing_written(acme, data):
    s = open_case(acme)
    response = signed_in_client(s.agent).post(url(s.case, "context"), data)
    body = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was saved: correct the marked fields." in body
    assert 'name="context-statement"' in body and "<details open>" in body
    assert not Evidence.objects.filter(case=s.case).exists()
    assert not events(acme, "verification.signal_rejected")


def test_context_on_a_case_that_no_longer_collects_is_refused_with_its_code(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    client.post(url(s.case, "cancel"), {"end-reason": "Caller hung up"})

    response = client.post(
        url(s.case, "context"), {"context-topic": "office", "context-statement": "Leeds"}
    )

    assert response.status_code == 400 and "(case.wrong_state)" in response.content.decode()
    assert not Evidence.objects.filter(case=s.case).exists()


@pytest.mark.parametrize(
    "data",
    [
        {"evidence-method": "recovery_code", "evidence-verified": "yes"},
        {"signal_class": "S4", "method": "identity_proofing", "verified": "true"},
    ],
)
def test_the_old_evidence_form_is_gone_and_nothing_can_be_marked_verified(acme, data):
    s = open_case(acme)
    response = signed_in_client(s.agent).post(url(s.case, "evidence"), data)
    assert response.status_code == 404
    assert not Evidence.objects.filter(case=s.case).exists()


# --- files and notes ------------------------------------------------------------------------


def test_upload_then_download_a_file(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    upload = SimpleUploadedFile("callback-log.txt", b"called back the number on file\n")

    response = client.post(url(s.case, "attachments"), {"attachment-file": upload})

    assert response.status_code == 302
    attachment = EvidenceAttachment.objects.get(case=s.case)
    assert attachment.original_name == "callback-log.txt"
    body = client.get(url(s.case)).content.decode()
    link = url(s.case, f"attachments/{attachment.pk}")
    assert f'href="{link}"' in body and 'type="file"' in body
    download = client.get(link)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"called back the number on file\n"
    assert events(acme, "evidence.attachment_downloaded")


def test_a_file_whose_bytes_disagree_with_its_name_is_refused_and_nothing_stored(acme, store_dir):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    fake = SimpleUploadedFile("screenshot.png", b"just some text\n")

    response = client.post(url(s.case, "attachments"), {"attachment-file": fake}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200 and "(evidence.attachment_" in body
    assert not EvidenceAttachment.objects.exists() and not any(store_dir.rglob("*.*"))


def test_another_tenants_attachment_id_is_a_404_like_a_missing_one(acme, globex):
    ours, theirs = open_case(acme), open_case(globex)
    foreign_file = attachment_add(
        actor=theirs.agent, case=theirs.case, name="id.txt", content=b"their file\n"
    )
    client = signed_in_client(ours.agent)

    foreign = client.get(url(ours.case, f"attachments/{foreign_file.pk}"))
    missing = client.get(url(ours.case, f"attachments/{foreign_file.pk + 999}"))

    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)


def test_a_reader_who_may_not_see_the_evidence_gets_a_403_and_it_is_recorded(acme):
    agent, officer = staff(Role.AGENT, tenant=acme), staff(Role.SECURITY_OFFICER, tenant=acme)
    case = t2_case(acme, agent)
    attachment = attachment_add(actor=officer, case=case, name="scan.txt", content=b"scan\n")
    supervisor = signed_in_client(staff(Role.SUPERVISOR, tenant=acme))

    page_body = supervisor.get(url(case)).content.decode()
    response = supervisor.get(url(case, f"attachments/{attachment.pk}"))

    assert "(case.security_queue_only)" in page_body and "scan.txt" in page_body
    assert f'href="{url(case, f"attachments/{attachment.pk}")}"' not in page_body
    assert response.status_code == 403
    violations = events(acme, "policy.violation")
    assert [e.data["code"] for e in violations] == ["case.security_queue_only"]


def test_a_note_is_stored_with_its_secrets_masked(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)

    response = client.post(
        url(s.case, "notes"), {"note-text": "Caller said password: hunter2 twice"}, follow=True
    )

    note = CaseNote.objects.get(case=s.case)
    assert note.flagged and "hunter2" not in note.text
    body = response.content.decode()
    assert "1 secret was masked" in body and "[masked secret]" in body and "hunter2" not in body


def test_an_empty_note_is_refused_and_nothing_written(acme):
    s = open_case(acme)
    response = signed_in_client(s.agent).post(url(s.case, "notes"), {"note-text": ""})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert not CaseNote.objects.exists()


# --- actions by state -----------------------------------------------------------------------


def test_submit_is_refused_until_the_evidence_is_met(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)

    refused = client.post(url(s.case, "submit"))
    assert refused.status_code == 400 and "(evidence.insufficient)" in refused.content.decode()
    s.case.refresh_from_db()
    assert s.case.status == "collecting_evidence"

    signal(s.case, s.agent, "S2")
    accepted = client.post(url(s.case, "submit"), follow=True)

    s.case.refresh_from_db()
    assert s.case.status == "ready"  # a T0 password reset needs no approval
    assert "Submitted. The case is now: Ready." in accepted.content.decode()


def test_cancel_needs_a_reason(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)

    blank = client.post(url(s.case, "cancel"), {"end-reason": "  "})
    s.case.refresh_from_db()
    assert blank.status_code == 400 and s.case.status == "collecting_evidence"

    client.post(url(s.case, "cancel"), {"end-reason": "Caller could not verify"})
    s.case.refresh_from_db()
    assert s.case.status == "cancelled" and s.case.end_reason == "Caller could not verify"


def test_execute_follow_the_manual_steps_record_the_path_and_close(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = ready_case(acme, agent, case_type="password_reset")
    owner_email(case)
    client = signed_in_client(agent)
    assert "Confirm with your passkey and execute" in client.get(url(case)).content.decode()

    answer = step_up_assertion(agent, case=case, action="execute")
    executed = client.post(url(case, "execute"), {"execute-step_up_assertion": answer}, follow=True)

    body = executed.content.decode()
    execution = CaseExecution.objects.get(case=case)
    assert execution.connector == "manual"
    assert "Steps to follow in the other console" in body
    assert execution.detail["steps"][0].split(" ")[0] in body
    short = client.post(url(case, "manual-step"), {"manual-path": "done"})
    assert short.status_code == 400 and "(execution.path_invalid)" in short.content.decode()
    assert 'name="manual-path"' in short.content.decode()

    path = "Entra admin center > Users > All users > reset"
    client.post(url(case, "manual-step"), {"manual-path": path})
    execution.refresh_from_db()
    assert execution.detail["path_used"] == path

    client.post(url(case, "close"), {"end-reason": "Owner signed in again"})
    case.refresh_from_db()
    assert case.status == "closed" and events(acme, "case.closed")


# --- who may do what ------------------------------------------------------------------------


def test_an_auditor_reads_the_case_but_cannot_act_on_it(acme):
    s = open_case(acme)
    client = signed_in_client(staff(Role.AUDITOR, tenant=acme))

    body = client.get(url(s.case)).content.decode()
    assert "(case.role_required)" in body
    assert "hx-post" not in body and "Send a code" not in body

    response = client.post(url(s.case, "notes"), {"note-text": "auditor was here"})
    assert response.status_code == 403 and not CaseNote.objects.exists()


def test_a_tenant_admin_gets_a_403(acme):
    s = open_case(acme)
    client = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    assert client.get(url(s.case)).status_code == 403


def test_an_agent_reads_a_security_queue_case_but_the_service_refuses_work(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = t2_case(acme, agent)
    client = signed_in_client(agent)

    body = client.get(url(case)).content.decode()
    assert "You can read this case but not work it" in body and "Send a code" not in body

    response = client.post(
        url(case, "context"), {"context-topic": "office", "context-statement": "Leeds"}
    )
    assert response.status_code == 400 and "(case.security_queue_only)" in response.content.decode()
    assert not Evidence.objects.filter(case=case).exists()


def test_another_tenants_case_is_a_404_like_a_missing_one_for_pages_and_actions(acme, globex):
    theirs = open_case(globex)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))
    mine = type(theirs.case)(pk=theirs.case.pk + 10_000, tenant=acme)
    theirs_here = type(theirs.case)(pk=theirs.case.pk, tenant=acme)

    for action in ("", "notes"):
        method = client.post if action else client.get
        foreign = method(url(theirs_here, action), {"note-text": "x"} if action else None)
        missing = method(url(mine, action), {"note-text": "x"} if action else None)
        assert foreign.status_code == missing.status_code == 404
        assert page(foreign) == page(missing)
        assert theirs.account.display_name not in foreign.content.decode()
    assert not CaseNote.objects.exists()
    assert events(globex, "tenant.cross_access_denied")


def test_the_case_page_has_no_field_for_a_number_an_address_or_a_password(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    client.post(url(s.case, "challenges"), {"send-contact_method": s.mobile.pk})
    challenge = VerificationChallenge.objects.get(case=s.case)

    body = client.get(url(s.case)).content.decode()

    assert_no_secret_inputs(body)
    boxes = [
        f["name"] for f in typed_fields(body) if f["tag"] == "input" and f.get("type") == "text"
    ]
    assert boxes == [f"challenge-{challenge.pk}-code", "context-topic", "suspicious-reason"]


def test_a_lapsed_code_shows_as_expired_with_no_code_box(acme):
    s = open_case(acme)
    client = signed_in_client(s.agent)
    client.post(url(s.case, "challenges"), {"send-contact_method": s.email.pk})
    challenge = VerificationChallenge.objects.get(case=s.case)
    VerificationChallenge.objects.filter(pk=challenge.pk).update(expires_at=challenge.created_at)

    body = client.get(url(s.case)).content.decode()

    assert "<td>Expired</td>" in body and f'name="challenge-{challenge.pk}-code"' not in body

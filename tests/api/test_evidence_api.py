"""Evidence over the API: the old "record evidence" call is gone (410, recorded), context is
recorded and never counts, evidence rows name their verifier, dictated destinations are refused.
"""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from audit.models import AuditEvent
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_cancel, case_needs, case_open
from tenants.choices import Role

from .. import factories
from ..recovery.casework import contact, signal
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db

ASSERTED = {
    "signal_class": "S2",
    "method": "email_code",
    "verified": True,
    "result": "accepted",
    "verifier": "challenge",
    "verifier_ref": 1,
}


def _case(tenant, agent=None):
    agent = agent or factories.staff(Role.AGENT, tenant=tenant)
    account = factories.make_account(tenant)
    return case_open(actor=agent, account=account, case_type="unlock", channel="phone")


def _refusals(case):
    return AuditEvent.objects.filter(
        tenant=case.tenant,
        action="verification.signal_rejected",
        target_id=str(case.pk),
        data__reason="asserted_signal",
    )


# --- the removed endpoint -------------------------------------------------------------------


def test_asserting_a_verified_signal_is_410_and_lands_on_the_case_trail(acme, acme_api):
    case = _case(acme)
    body = {**ASSERTED, "contact_method_id": contact(case.account, "email", "o@x.test").pk}
    response = acme_api.post(api(acme, f"cases/{case.pk}/evidence/"), body, format="json")
    assert response.status_code == 410, response.content
    answer = response.json()
    assert answer["code"] == "evidence.endpoint_removed" and answer["errors"] == {}
    for endpoint in ("challenges/", "attestations/", "proofing/", "attended/", "context/"):
        assert endpoint in answer["message"], answer["message"]
    assert not Evidence.objects.filter(case=case).exists()
    refusal = _refusals(case).get()
    assert (refusal.data["class"], refusal.data["method"], refusal.data["verified"]) == (
        "S2",
        "email_code",
        "True",
    )
    assert refusal.actor_type == "integration"
    timeline = acme_api.get(api(acme, f"cases/{case.pk}/")).json()["timeline"]
    assert [e["summary"] for e in timeline if e["action"] == "verification.signal_rejected"] == [
        "Signal S2 (email_code) rejected: asserted_signal"
    ]
    assert case_needs(RecoveryCase.objects.get(pk=case.pk)).evidence_met is False


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("", "application/json"),
        ("{not json", "application/json"),
        ('["S1", "recovery_code"]', "application/json"),
        ("verified=true", "text/plain"),
        ("signal_class=S5&method=passkey&verified=on", "application/x-www-form-urlencoded"),
    ],
)
def test_any_body_gets_the_same_410(acme, acme_api, content, content_type):
    case = _case(acme)
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/evidence/"), content, content_type=content_type
    )
    assert (response.status_code, response.json()["code"]) == (410, "evidence.endpoint_removed")
    assert _refusals(case).count() == 1
    assert not Evidence.objects.filter(case=case).exists()


def test_long_assertions_are_truncated_on_the_trail(acme, acme_api):
    case = _case(acme)
    body = {"signal_class": "S4" * 100, "method": "looked_at_video" * 50, "verified": "yes" * 90}
    acme_api.post(api(acme, f"cases/{case.pk}/evidence/"), body, format="json")
    data = _refusals(case).get().data
    assert max(len(data[key]) for key in ("class", "method", "verified")) == 64


def test_a_case_worker_who_cannot_work_the_case_is_refused_and_recorded_too(acme):
    case = _case(acme)
    RecoveryCase.objects.filter(pk=case.pk).update(route="security")  # officers only
    agent = factories.staff(Role.AGENT, tenant=acme)
    response = staff_api_client(agent).post(
        api(acme, f"cases/{case.pk}/evidence/"),
        {**ASSERTED, "signal_class": "S4", "method": "identity_proofing"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (410, "evidence.endpoint_removed")
    refusal = _refusals(case).get()
    assert (refusal.actor_type, refusal.data["class"]) == ("human", "S4")
    assert not Evidence.objects.filter(case=case).exists()


def test_a_tenant_admin_has_no_case_scope_over_the_api(acme):
    case = _case(acme)
    admin = factories.staff(Role.TENANT_ADMIN, tenant=acme)
    response = staff_api_client(admin).post(
        api(acme, f"cases/{case.pk}/evidence/"), ASSERTED, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "auth.scope_missing")
    assert not Evidence.objects.filter(case=case).exists()


def test_another_tenants_case_is_the_usual_404_and_records_nothing_on_it(acme, globex):
    theirs = _case(globex)
    response = key_client(acme).post(
        api(acme, f"cases/{theirs.pk}/evidence/"), ASSERTED, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not found.", "errors": {}}
    assert not _refusals(theirs).exists()


def test_an_ai_key_is_blocked_before_anything(acme):
    case = _case(acme)
    response = key_client(acme, kind="ai_assistant").post(
        api(acme, f"cases/{case.pk}/evidence/"), ASSERTED, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "ai.action_blocked")
    assert not Evidence.objects.filter(case=case).exists()


# --- reading evidence -----------------------------------------------------------------------


def test_evidence_rows_name_their_verifier_and_the_catalogue_label(acme, acme_api):
    agent = factories.staff(Role.AGENT, tenant=acme)
    case = _case(acme, agent)
    accepted = signal(case, agent, "S2")
    response = acme_api.get(api(acme, f"cases/{case.pk}/evidence/"))
    assert response.status_code == 200
    [row] = response.json()
    assert row["id"] == accepted.pk
    assert (row["result"], row["signal_class"], row["method"]) == ("accepted", "S2", "email_code")
    assert row["verifier"] == "challenge"
    assert row["verifier_ref"] == case.challenges.get().pk
    assert row["method_label"] == "Code or link by email to an address on record"
    assert (row["topic"], row["statement"]) == ("", "")


def test_reading_evidence_needs_cases_read(acme):
    case = _case(acme)
    response = key_client(acme, ["accounts:read"]).get(api(acme, f"cases/{case.pk}/evidence/"))
    assert (response.status_code, response.json()["code"]) == (403, "auth.scope_missing")


# --- context --------------------------------------------------------------------------------


def test_context_is_kept_never_counted(acme, acme_api):
    case = _case(acme)
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/context/"),
        {"topic": "date_of_birth", "statement": "Gave 1 April 1990 and employee id 4471."},
        format="json",
    )
    assert response.status_code == 201, response.content
    row = response.json()
    assert (row["result"], row["signal_class"], row["verifier"], row["verifier_ref"]) == (
        "context",
        "context",
        "",
        None,
    )
    assert row["topic"] == "date_of_birth" and "1 April 1990" in row["statement"]
    assert row["method_label"] == "Context the caller gave (never counted)"
    assert response["ETag"]
    needs = case_needs(RecoveryCase.objects.get(pk=case.pk))
    assert needs.accepted_classes == () and needs.evidence_met is False
    listed = acme_api.get(api(acme, f"cases/{case.pk}/evidence/")).json()
    assert [r["id"] for r in listed] == [row["id"]]


def test_a_secret_in_context_is_masked_and_reported(acme, acme_api):
    case = _case(acme)
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/context/"),
        {"topic": "what they said", "statement": "My password is Hunter2!x, please hurry"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "Hunter2" not in response.json()["statement"]
    violation = AuditEvent.objects.get(tenant=acme, action="policy.violation")
    assert violation.data["code"] == "secret_in_notes"


def test_context_needs_a_topic_and_a_statement(acme, acme_api):
    case = _case(acme)
    response = acme_api.post(api(acme, f"cases/{case.pk}/context/"), {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"topic", "statement"}
    assert not Evidence.objects.filter(case=case).exists()


def test_context_on_a_closed_case_is_a_409(acme, acme_api):
    agent = factories.staff(Role.AGENT, tenant=acme)
    case = case_cancel(actor=agent, case=_case(acme, agent), reason="duplicate")
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/context/"), {"topic": "t", "statement": "s"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "case.wrong_state")


def test_ai_keys_cannot_record_context(acme):
    case = _case(acme)
    response = key_client(acme, kind="ai_assistant").post(
        api(acme, f"cases/{case.pk}/context/"), {"topic": "t", "statement": "s"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (403, "ai.action_blocked")
    assert not Evidence.objects.filter(case=case).exists()


# --- a destination the caller dictates ------------------------------------------------------


def test_a_caller_supplied_destination_is_refused_and_recorded(acme, acme_api):
    case = _case(acme)
    mailbox = contact(case.account, "email", "owner@example.test")
    mail.outbox.clear()
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/challenges/"),
        {"contact_method_id": mailbox.pk, "caller_supplied_destination": "+15559998888"},
        format="json",
    )
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "evidence.caller_supplied_channel"
    assert mail.outbox == [] and not case.challenges.exists()
    assert AuditEvent.objects.filter(
        tenant=acme,
        action="verification.signal_rejected",
        target_id=str(case.pk),
        data__reason="caller_supplied_channel",
    ).exists()


def test_a_dictated_destination_alone_is_refused_and_recorded_too(acme, acme_api):
    """An old client that only passes on what the caller dictated is on record, not a 400."""
    case = _case(acme)
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/challenges/"),
        {"caller_supplied_destination": "new-address@example.test"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (
        403,
        "evidence.caller_supplied_channel",
    )
    recorded = AuditEvent.objects.get(
        tenant=acme, action="verification.signal_rejected", target_id=str(case.pk)
    )
    assert recorded.data["reason"] == "caller_supplied_channel"
    assert "new-address@example.test" not in str(recorded.data)


def test_a_send_without_a_contact_or_a_dictated_destination_is_a_400(acme, acme_api):
    case = _case(acme)
    for body in ({}, {"caller_supplied_destination": "   "}):
        response = acme_api.post(api(acme, f"cases/{case.pk}/challenges/"), body, format="json")
        assert response.status_code == 400, response.content
        assert set(response.json()["errors"]) == {"contact_method_id"}
    assert not case.challenges.exists()


def test_an_empty_caller_supplied_destination_changes_nothing(acme, acme_api):
    case = _case(acme)
    mailbox = contact(case.account, "email", "owner@example.test")
    response = acme_api.post(
        api(acme, f"cases/{case.pk}/challenges/"),
        {"contact_method_id": mailbox.pk, "caller_supplied_destination": ""},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_no_credentials_still_401_on_the_removed_endpoint(acme):
    case = _case(acme)
    response = APIClient().post(api(acme, f"cases/{case.pk}/evidence/"), ASSERTED, format="json")
    assert response.status_code == 401
    assert not _refusals(case).exists()

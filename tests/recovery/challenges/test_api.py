"""Challenges over the API: the code never in a response, tenant-safe, closed to AI keys."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from recovery.challenges.models import VerificationChallenge
from tenants.choices import Role

from ...api.conftest import api, key_client, staff_api_client
from ...factories import staff
from .helpers import EMAIL, MANAGER_EMAIL, code_in, events, last_email, open_case, open_managed_case

pytestmark = pytest.mark.django_db


def challenges_url(s) -> str:
    return api(s.tenant, f"cases/{s.case.pk}/challenges/")


def test_send_then_verify_over_the_api(acme):
    s = open_case(acme)
    client = key_client(acme)

    sent = client.post(challenges_url(s), {"contact_method_id": s.email.pk}, format="json")

    assert sent.status_code == 201, sent.content
    body = sent.json()
    assert body["channel"] == "email" and body["contact_kind"] == "email"
    assert body["contact_hint"] == "j***@example.test" and body["status"] == "open"
    assert body["expires_at"] and sent["ETag"]
    code = code_in(last_email().body)
    assert code not in sent.content.decode() and EMAIL not in sent.content.decode()

    verify_url = challenges_url(s) + f"{body['id']}/verify/"
    wrong = client.post(verify_url, {"code": "00000000x"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "challenge.code_invalid"
    assert wrong.json()["message"] == "The code is wrong or has expired."

    verified = client.post(verify_url, {"code": code}, format="json")

    assert verified.status_code == 200, verified.content
    result = verified.json()
    assert result["evidence"]["signal_class"] == "S2"
    assert result["evidence"]["result"] == "accepted"
    assert result["challenge"]["status"] == "verified"
    assert result["challenge"]["evidence_id"] == result["evidence"]["id"]
    listed = client.get(challenges_url(s)).json()
    assert [c["id"] for c in listed] == [body["id"]] and code not in str(listed)


def test_a_staff_agent_sends_through_their_session(acme):
    s = open_case(acme)
    client = staff_api_client(s.agent)
    sent = client.post(challenges_url(s), {"contact_method_id": s.email.pk}, format="json")
    assert sent.status_code == 201, sent.content
    event = AuditEvent.objects.get(tenant=acme, action="verification.challenge_sent")
    assert event.actor_label == s.agent.username


def test_a_refused_channel_answers_with_its_reason_and_stays_on_record(acme):
    s = open_case(acme)
    response = key_client(acme).post(challenges_url(s), {"contact_method_id": 10**9}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "evidence.channel_not_in_system_of_record"
    assert len(events(acme, "verification.challenge_refused")) == 1


def test_another_tenants_case_contact_or_challenge_is_a_404(acme, globex):
    s = open_case(acme)
    theirs = open_case(globex)
    acme_key, globex_key = key_client(acme), key_client(globex)
    sent = acme_key.post(challenges_url(s), {"contact_method_id": s.email.pk}, format="json")
    challenge_id = sent.json()["id"]
    code = code_in(last_email().body)

    # Their key on our case, and our key with our challenge under their case id.
    assert (
        globex_key.post(challenges_url(s), {"contact_method_id": s.email.pk}, format="json")
    ).status_code == 404
    foreign = acme_key.post(
        api(acme, f"cases/{theirs.case.pk}/challenges/{challenge_id}/verify/"),
        {"code": code},
        format="json",
    )
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    # Their challenge under our case: as missing as an id that does not exist.
    their_challenge = globex_key.post(
        challenges_url(theirs), {"contact_method_id": theirs.email.pk}, format="json"
    ).json()["id"]
    probe = acme_key.post(
        challenges_url(s) + f"{their_challenge}/verify/", {"code": code}, format="json"
    )
    missing = acme_key.post(challenges_url(s) + "2000000000/verify/", {"code": code}, format="json")
    assert probe.status_code == missing.status_code == 404
    assert probe.json() == missing.json()
    assert AuditEvent.objects.filter(tenant=globex, action="tenant.cross_access_denied").exists()
    assert VerificationChallenge.objects.get(pk=challenge_id).status == "open"


def test_an_ai_assistant_key_is_blocked_and_recorded(acme):
    s = open_case(acme)
    sent = key_client(acme).post(
        challenges_url(s), {"contact_method_id": s.email.pk}, format="json"
    )
    code = code_in(last_email().body)
    assistant = key_client(acme, kind="ai_assistant")
    for url, body in (
        (challenges_url(s), {"contact_method_id": s.email.pk}),
        (challenges_url(s) + f"{sent.json()['id']}/verify/", {"code": code}),
        (api(acme, f"cases/{s.case.pk}/attestations/"), None),
    ):
        response = assistant.post(url, body, format="json")
        assert response.status_code == 403 and response.json()["code"] == "ai.action_blocked"
    assert len(events(acme, "ai.action_blocked")) == 3
    assert VerificationChallenge.objects.get(pk=sent.json()["id"]).status == "open"
    # Reading is fine for an assistant: the list shows masked hints only.
    listed = assistant.get(challenges_url(s))
    assert listed.status_code == 200 and code not in listed.content.decode()


def test_attestation_request_over_the_api(acme):
    s = open_managed_case(acme)
    response = key_client(acme).post(api(acme, f"cases/{s.case.pk}/attestations/"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "attestation" and body["channel"] == "email"
    assert last_email().to == [MANAGER_EMAIL]
    assert MANAGER_EMAIL not in response.content.decode()


def test_an_auditor_session_cannot_send(acme):
    s = open_case(acme)
    auditor = staff(Role.AUDITOR, tenant=acme)
    response = staff_api_client(auditor).post(
        challenges_url(s), {"contact_method_id": s.email.pk}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "auth.scope_missing"

"""Cases over the API: the same services as the console, one error shape, tenant-safe."""

from __future__ import annotations

import pytest
from django.core import mail

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from tenants.choices import Role

from .. import factories
from ..recovery.casework import code_in, contact, signal
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db


def test_integration_opens_a_case_and_the_server_decides_tier(acme, acme_api):
    account = factories.make_account_with(acme, admin_roles=["Global Administrator"])
    response = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "mfa_reset"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["tier"] == "T2" and body["status"] == "collecting_evidence"
    assert response["ETag"] and response["Location"].endswith(f"/cases/{body['id']}/")
    event = AuditEvent.objects.get(tenant=acme, action="case.opened", target_id=str(body["id"]))
    assert event.actor_type == "integration"


def test_missing_fields_get_field_errors_and_nothing_is_written(acme, acme_api):
    response = acme_api.post(api(acme, "cases/"), {"case_type": "bogus"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "input.invalid"
    assert set(body["errors"]) == {"account_id", "case_type"}
    assert not RecoveryCase.objects.filter(tenant=acme).exists()


def test_another_tenants_account_is_a_plain_404_and_is_recorded(acme, globex, acme_api):
    foreign = factories.make_account(globex)
    missing = acme_api.post(
        api(acme, "cases/"), {"account_id": 10**9, "case_type": "unlock"}, format="json"
    )
    response = acme_api.post(
        api(acme, "cases/"), {"account_id": foreign.pk, "case_type": "unlock"}, format="json"
    )
    assert response.status_code == missing.status_code == 404
    assert (
        response.json()
        == missing.json()
        == {
            "code": "not_found",
            "message": "Not found.",
            "errors": {},
        }
    )
    assert AuditEvent.objects.filter(tenant=globex, action="tenant.cross_access_denied").exists()


def test_key_of_another_tenant_gets_404_for_the_tenant(acme, globex):
    client = key_client(globex)
    response = client.get(api(acme, "cases/"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_no_key_is_401_with_a_challenge(acme):
    from rest_framework.test import APIClient

    response = APIClient().get(api(acme, "cases/"))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_key_is_401(acme):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer vsk_abc_def")
    response = client.get(api(acme, "cases/"))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_key"


def test_missing_scope_is_403(acme):
    client = key_client(acme, ["cases:read"])
    account = factories.make_account(acme)
    response = client.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "auth.scope_missing"


def test_case_detail_has_needs_timeline_and_etag(acme, acme_api):
    account = factories.make_account(acme)
    created = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    ).json()
    response = acme_api.get(api(acme, f"cases/{created['id']}/"))
    assert response.status_code == 200
    body = response.json()
    assert body["needs"]["evidence_met"] is False and body["needs"]["summary"]
    assert [entry["action"] for entry in body["timeline"]] == ["case.opened"]


def test_stale_if_match_is_412_and_changes_nothing(acme, acme_api):
    account = factories.make_account(acme)
    created = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    )
    etag = created["ETag"]
    case_id = created.json()["id"]
    acme_api.post(api(acme, f"cases/{case_id}/notes/"), {"text": "called back"}, format="json")
    response = acme_api.post(
        api(acme, f"cases/{case_id}/cancel/"),
        {"reason": "duplicate"},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert response.status_code == 412
    assert response.json()["code"] == "case.etag_mismatch"
    assert RecoveryCase.objects.get(pk=case_id).status == "collecting_evidence"


def _case_with_etag(acme, acme_api) -> tuple[int, str]:
    account = factories.make_account(acme)
    created = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    )
    return created.json()["id"], created["ETag"]


def test_weak_if_match_of_the_current_version_is_412(acme, acme_api):
    """RFC 9110 §13.1.1: If-Match uses the strong comparison, so a weak tag never matches."""
    case_id, etag = _case_with_etag(acme, acme_api)
    response = acme_api.post(
        api(acme, f"cases/{case_id}/cancel/"),
        {"reason": "duplicate"},
        format="json",
        HTTP_IF_MATCH=f"W/{etag}",
    )
    assert response.status_code == 412
    assert response.json()["code"] == "case.etag_mismatch"
    assert RecoveryCase.objects.get(pk=case_id).status == "collecting_evidence"


@pytest.mark.parametrize("header", ["{etag}", '"other", {etag}', "*"])
def test_strong_or_star_if_match_proceeds(acme, acme_api, header):
    case_id, etag = _case_with_etag(acme, acme_api)
    response = acme_api.post(
        api(acme, f"cases/{case_id}/cancel/"),
        {"reason": "duplicate"},
        format="json",
        HTTP_IF_MATCH=header.format(etag=etag),
    )
    assert response.status_code == 200
    assert RecoveryCase.objects.get(pk=case_id).status == "cancelled"


def test_submit_too_early_is_refused_with_the_policy_code(acme, acme_api):
    account = factories.make_account(acme)
    case_id = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    ).json()["id"]
    response = acme_api.post(api(acme, f"cases/{case_id}/submit/"))
    assert response.status_code == 403
    assert response.json()["code"] == "evidence.insufficient"


def test_cancel_twice_is_a_409_conflict(acme, acme_api):
    account = factories.make_account(acme)
    case_id = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    ).json()["id"]
    first = acme_api.post(api(acme, f"cases/{case_id}/cancel/"), {"reason": "dup"}, format="json")
    second = acme_api.post(api(acme, f"cases/{case_id}/cancel/"), {"reason": "dup"}, format="json")
    assert first.status_code == 200 and second.status_code == 409
    assert second.json()["code"] == "case.wrong_state"


def _submitted_over_api(acme, acme_api) -> int:
    """A T1 case (one approval needed) worked and submitted by an integration key: S2 by a
    code sent and read back through the challenge endpoints, S3 by the manager's attestation
    from their own session."""
    account = factories.make_account_with(acme, groups=["finance"])
    mailbox = contact(account, "email", "owner@example.test")
    case_id = acme_api.post(
        api(acme, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    ).json()["id"]
    sent = acme_api.post(
        api(acme, f"cases/{case_id}/challenges/"), {"contact_method_id": mailbox.pk}, format="json"
    )
    assert sent.status_code == 201, sent.content
    verified = acme_api.post(
        api(acme, f"cases/{case_id}/challenges/{sent.json()['id']}/verify/"),
        {"code": code_in(mail.outbox[-1].body)},
        format="json",
    )
    assert verified.status_code == 200, verified.content
    evidence = verified.json()["evidence"]
    assert (evidence["result"], evidence["verifier"]) == ("accepted", "challenge")
    assert evidence["verifier_ref"] == sent.json()["id"]
    signal(RecoveryCase.objects.get(pk=case_id), acme_api.principal, "S3")
    assert acme_api.post(api(acme, f"cases/{case_id}/submit/")).status_code == 200
    return case_id


def test_staff_approve_over_the_api_with_step_up_moves_the_case_on(acme, acme_api):
    case_id = _submitted_over_api(acme, acme_api)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=acme)
    client = staff_api_client(supervisor)
    response = client.post(
        api(acme, f"cases/{case_id}/approve/"),
        {"reason": "manager confirmed on a callback", "otp": factories.totp_token(supervisor)},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["decision"] == "approved"
    assert RecoveryCase.objects.get(pk=case_id).status in {"cooling_off", "ready"}
    event = AuditEvent.objects.get(tenant=acme, action="approval.approved")
    assert event.actor_type == "human" and event.data["step_up"]["device_type"] == "totp"


def test_session_without_csrf_token_is_refused(acme, acme_api):
    case_id = _submitted_over_api(acme, acme_api)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=acme)
    client = staff_api_client(supervisor)
    client.credentials()  # drop the X-CSRFToken header
    response = client.post(
        api(acme, f"cases/{case_id}/approve/"),
        {"reason": "ok", "otp": factories.totp_token(supervisor)},
        format="json",
    )
    assert response.status_code == 403
    assert RecoveryCase.objects.get(pk=case_id).status == "pending_approval"


def test_wrong_step_up_code_counts_towards_lockout_and_approves_nothing(acme, acme_api):
    case_id = _submitted_over_api(acme, acme_api)
    supervisor = factories.staff(Role.SUPERVISOR, tenant=acme)
    client = staff_api_client(supervisor)
    response = client.post(
        api(acme, f"cases/{case_id}/approve/"), {"reason": "ok", "otp": "000000"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "stepup.invalid_token"
    supervisor.refresh_from_db()
    assert supervisor.failed_attempts == 1  # committed although the request failed
    assert RecoveryCase.objects.get(pk=case_id).status == "pending_approval"


def test_api_keys_can_never_approve(acme, acme_api):
    case_id = _submitted_over_api(acme, acme_api)
    response = acme_api.post(
        api(acme, f"cases/{case_id}/approve/"), {"reason": "ok", "otp": "123456"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "auth.staff_only"

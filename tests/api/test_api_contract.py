"""The API contract beyond single routes: idempotency, throttling, AI principals, keys,
pagination, export, verification, policy and sync."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from recovery.cases.models import CaseNote, RecoveryCase
from recovery.models import ProtectedAccount
from tenants.choices import Role
from tenants.models import ApiKey, User

from .. import factories
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db


def _open(client, tenant, account, **headers):
    return client.post(
        api(tenant, "cases/"),
        {"account_id": account.pk, "case_type": "unlock"},
        format="json",
        **headers,
    )


# --- idempotency ----------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_first_result(acme, acme_api):
    account = factories.make_account(acme)
    first = _open(acme_api, acme, account, HTTP_IDEMPOTENCY_KEY="open-1")
    again = _open(acme_api, acme, account, HTTP_IDEMPOTENCY_KEY="open-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert again["ETag"] == first["ETag"]
    assert RecoveryCase.objects.filter(account=account).count() == 1
    assert AuditEvent.objects.filter(tenant=acme, action="case.opened").count() == 1


def test_same_idempotency_key_with_another_body_is_422(acme, acme_api):
    account, other = factories.make_account(acme), factories.make_account(acme)
    _open(acme_api, acme, account, HTTP_IDEMPOTENCY_KEY="open-2")
    response = _open(acme_api, acme, other, HTTP_IDEMPOTENCY_KEY="open-2")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency.key_reused"
    assert not RecoveryCase.objects.filter(account=other).exists()


def test_idempotency_keys_are_per_principal(acme, acme_api):
    account = factories.make_account(acme)
    _open(acme_api, acme, account, HTTP_IDEMPOTENCY_KEY="shared")
    other = key_client(acme)
    response = _open(other, acme, factories.make_account(acme), HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_a_refusal_worth_retrying_releases_the_key(acme, acme_api):
    account = factories.make_account(acme)
    case_id = _open(acme_api, acme, account).json()["id"]
    cancel = api(acme, f"cases/{case_id}/cancel/")
    stale = acme_api.post(
        cancel, {"reason": "x"}, format="json", HTTP_IF_MATCH='"old"', HTTP_IDEMPOTENCY_KEY="c1"
    )
    assert stale.status_code == 412
    retried = acme_api.post(cancel, {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert retried.status_code == 200


# --- throttling -----------------------------------------------------------------------------


def test_over_the_rate_is_429_with_retry_after(acme):
    client = key_client(acme)
    with override_settings(API_THROTTLE_RATES={"api_key": "3/min", "staff": "3/min"}):
        statuses = [client.get(api(acme, "cases/")).status_code for _ in range(4)]
        last = client.get(api(acme, "cases/"))
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert last.json()["code"] == "throttle.exceeded"
    assert 1 <= int(last["Retry-After"]) <= 60


def test_the_rate_is_per_key(acme):
    busy, quiet = key_client(acme), key_client(acme)
    with override_settings(API_THROTTLE_RATES={"api_key": "2/min", "staff": "2/min"}):
        for _ in range(3):
            busy.get(api(acme, "cases/"))
        assert busy.get(api(acme, "cases/")).status_code == 429
        assert quiet.get(api(acme, "cases/")).status_code == 200


# --- AI assistants (R-63 to R-67) -----------------------------------------------------------


def test_ai_assistant_can_read_and_draft_a_case(acme):
    ai = key_client(acme, kind="ai_assistant")
    account = factories.make_account(acme)
    assert ai.get(api(acme, "cases/")).status_code == 200
    response = _open(ai, acme, account)
    assert response.status_code == 201
    assert AuditEvent.objects.get(tenant=acme, action="case.opened").actor_type == "ai"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("evidence/", {"signal_class": "S1", "method": "recovery_code", "verified": True}),
        ("submit/", {}),
        ("approve/", {"reason": "looks fine", "otp": "123456"}),
        ("cancel/", {"reason": "no"}),
    ],
)
def test_ai_assistant_is_blocked_from_deciding_and_it_is_audited(acme, path, body):
    ai = key_client(acme, kind="ai_assistant")
    case_id = _open(ai, acme, factories.make_account(acme)).json()["id"]
    response = ai.post(api(acme, f"cases/{case_id}/{path}"), body, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "ai.action_blocked"
    blocked = AuditEvent.objects.get(tenant=acme, action="ai.action_blocked")
    assert blocked.actor_type == "ai" and blocked.data["path"].endswith(path)
    assert RecoveryCase.objects.get(pk=case_id).status == "collecting_evidence"


def test_ai_assistant_blocked_in_the_service_too(acme):
    """Defence in depth: even called directly, the context service refuses an AI principal."""
    from recovery.cases.services import case_open, context_record
    from tenants.exceptions import PolicyDenied

    principal = factories.api_key(acme, kind="ai_assistant").key.principal
    case = case_open(
        actor=principal, account=factories.make_account(acme), case_type="unlock", channel="api"
    )
    with pytest.raises(PolicyDenied) as refused:
        context_record(actor=principal, case=case, topic="dob", statement="1 April 1990")
    assert refused.value.code == "ai.action_blocked"
    assert not case.evidence.exists()


def test_ai_key_cannot_be_issued_with_write_scopes(acme):
    from tenants.exceptions import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        factories.api_key(acme, ["cases:read", "cases:write"], kind="ai_assistant")
    assert refused.value.code == "apikey.scope_not_allowed_for_ai"


def test_ai_summary_is_advisory_and_its_provenance_is_audited(acme):
    ai = key_client(acme, kind="ai_assistant")
    case_id = _open(ai, acme, factories.make_account(acme)).json()["id"]
    response = ai.post(
        api(acme, f"cases/{case_id}/summaries/"),
        {
            "text": "Caller asked for an unlock; password: hunter2hunter2 was mentioned.",
            "model_id": "summariser",
            "model_version": "2026-10",
            "prompt_sha256": "a" * 64,
            "retrieved_document_ids": ["kb-12"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    note = CaseNote.objects.get(pk=response.json()["id"])
    assert note.advisory and "hunter2" not in note.text
    event = AuditEvent.objects.get(tenant=acme, action="ai.summary_attached")
    assert event.data["model_id"] == "summariser" and event.data["retrieved_document_ids"] == [
        "kb-12"
    ]
    assert len(event.data["output_sha256"]) == 64


def test_people_and_integrations_cannot_post_ai_summaries(acme, acme_api):
    case_id = _open(acme_api, acme, factories.make_account(acme)).json()["id"]
    response = acme_api.post(
        api(acme, f"cases/{case_id}/summaries/"),
        {"text": "x", "model_id": "m", "model_version": "1", "prompt_sha256": "b" * 64},
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "summary.ai_only"


# --- keys -----------------------------------------------------------------------------------


def test_admin_issues_a_key_shown_once_and_revokes_it(acme):
    admin = factories.staff(Role.TENANT_ADMIN, tenant=acme)
    session = staff_api_client(admin)
    created = session.post(
        api(acme, "api-keys/"),
        {"name": "ServiceNow", "kind": "integration", "scopes": ["cases:read"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    token = created.json()["token"]
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert token not in key.secret_hash and key.secret_hash not in token
    listed = session.get(api(acme, "api-keys/")).json()["results"]
    assert "token" not in listed[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(api(acme, "cases/")).status_code == 200
    assert session.delete(api(acme, f"api-keys/{key.pk}/")).status_code == 200
    assert client.get(api(acme, "cases/")).status_code == 401


def test_an_agent_cannot_issue_keys(acme):
    agent = factories.staff(Role.AGENT, tenant=acme)
    response = staff_api_client(agent).post(
        api(acme, "api-keys/"), {"name": "x", "scopes": ["cases:read"]}, format="json"
    )
    # An agent's roles imply no keys:manage scope (ROLE_SCOPES): refused before the service.
    assert response.status_code == 403 and response.json()["code"] == "auth.scope_missing"


def test_expired_key_is_refused_at_the_moment_of_use(acme):
    client = key_client(acme)
    ApiKey.objects.filter(tenant=acme).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(api(acme, "cases/"))
    assert response.status_code == 401 and response.json()["code"] == "auth.invalid_key"


def test_a_principal_cannot_sign_in_to_the_console(acme):
    principal = factories.api_key(acme).key.principal
    assert not principal.has_usable_password()
    response = APIClient().post("/login/", {"username": principal.username, "password": ""})
    assert response.status_code == 200  # the form again, no session
    assert "_auth_user_id" not in APIClient().session
    assert User.objects.get(pk=principal.pk).kind == "integration"


# --- pagination and filters -----------------------------------------------------------------


def test_cursor_pagination_walks_every_case_once(acme, acme_api):
    for _ in range(5):
        _open(acme_api, acme, factories.make_account(acme))
    seen, url = [], api(acme, "cases/?page_size=2")
    while url:
        page = acme_api.get(url).json()
        seen += [case["id"] for case in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen, reverse=True)


def test_bad_filter_value_is_a_400_with_the_field(acme, acme_api):
    response = acme_api.get(api(acme, "cases/?status=nonsense&created_after=yesterday"))
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"status", "created_after"}


def test_filter_by_another_tenants_account_finds_nothing(acme, globex, acme_api):
    foreign = factories.make_account(globex)
    key_client(globex).post(
        api(globex, "cases/"), {"account_id": foreign.pk, "case_type": "unlock"}, format="json"
    )
    response = acme_api.get(api(acme, f"cases/?account={foreign.pk}"))
    assert response.status_code == 200 and response.json()["results"] == []


# --- audit ----------------------------------------------------------------------------------


def test_export_streams_ndjson_that_chains(acme, acme_api):
    for _ in range(3):
        _open(acme_api, acme, factories.make_account(acme))
    response = acme_api.get(api(acme, "audit/export/"))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [row["seq"] for row in lines] == list(range(1, len(lines) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    assert AuditEvent.objects.filter(tenant=acme, action="audit.exported").exists()


def test_verification_reports_an_intact_chain(acme, acme_api):
    _open(acme_api, acme, factories.make_account(acme))
    body = acme_api.get(api(acme, "audit/verification/")).json()
    assert body["intact"] is True and body["rows"] == body["head_seq"] > 0


def test_an_agent_cannot_read_the_trail(acme):
    agent = factories.staff(Role.AGENT, tenant=acme)
    response = staff_api_client(agent).get(api(acme, "audit/events/"))
    assert response.status_code == 403 and response.json()["code"] == "auth.scope_missing"


# --- policy and sync ------------------------------------------------------------------------


def test_validate_points_at_the_line(acme, acme_api):
    response = acme_api.post(
        api(acme, "policy/validate/"),
        {"text": "tiers:\n  T1:\n    approvals_required: -1\n"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "policy.invalid"
    assert any(
        "line" in message for messages in response.json()["errors"].values() for message in messages
    )


def test_sync_is_all_or_nothing_with_errors_per_item(acme, acme_api):
    response = acme_api.post(
        api(acme, "accounts/sync/"),
        {
            "source": "hris",
            "accounts": [
                {"external_id": "e1", "username": "ann", "display_name": "Ann"},
                {"external_id": "e2", "username": "", "display_name": "Bob"},
            ],
        },
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "accounts.invalid"
    assert "accounts.1.username" in response.json()["errors"]
    assert not ProtectedAccount.objects.filter(tenant=acme).exists()
    ok = acme_api.post(
        api(acme, "accounts/sync/"),
        {
            "source": "hris",
            "accounts": [{"external_id": "e1", "username": "ann", "display_name": "Ann"}],
        },
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["created"] == 1


def test_expired_idempotency_keys_are_pruned_and_then_free(acme, acme_api):
    from api.models import IdempotencyRecord
    from api.tasks import idempotency_prune_task

    account = factories.make_account(acme)
    _open(acme_api, acme, account, HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.filter(key="old").update(expires_at=timezone.now())
    assert idempotency_prune_task() == 1
    response = _open(acme_api, acme, factories.make_account(acme), HTTP_IDEMPOTENCY_KEY="old")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_a_key_revoked_elsewhere_stops_at_once_although_this_process_remembers_it(acme):
    """Another process revoked it: the remembered key is refused by the membership check."""
    from tenants.models import Membership

    client = key_client(acme)
    assert client.get(api(acme, "cases/")).status_code == 200  # now remembered here
    ApiKey.objects.filter(principal=client.principal).update(revoked_at=timezone.now())
    Membership.objects.filter(user=client.principal).update(is_active=False)
    response = client.get(api(acme, "cases/"))
    assert response.status_code == 401 and response.json()["code"] == "auth.invalid_key"


# --- malformed input (found by schemathesis) ------------------------------------------------


def test_a_non_object_body_with_an_idempotency_key_is_a_400(acme, acme_api):
    response = acme_api.post(
        api(acme, "cases/"), "true", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 400 and response.json()["code"] == "input.invalid"


def test_nul_in_a_context_statement_is_a_field_error(acme, acme_api):
    case_id = _open(acme_api, acme, factories.make_account(acme)).json()["id"]
    response = acme_api.post(
        api(acme, f"cases/{case_id}/context/"),
        {"topic": "dob", "statement": "a\x00b"},
        format="json",
    )
    assert response.status_code == 400 and "statement" in response.json()["errors"]


def test_unmatched_api_paths_answer_json(acme, acme_api):
    response = acme_api.get(api(acme, "accounts/0.5/"))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not found.", "errors": {}}


def test_options_is_not_offered_the_schema_describes_the_api(acme):
    admin = factories.staff(Role.TENANT_ADMIN, tenant=acme)
    response = staff_api_client(admin).options(api(acme, "cases/1/approve/"))
    assert response.status_code == 405
    assert response.json()["code"] == "request.method_not_allowed"

"""The tenant's connector over the API: a tenant_admin proposes, a second one (another account,
another person) approves with a fresh code; reject, withdraw and test connection; auditors and
keys read the summary only; stable error codes; nothing half-written on a refusal."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from recovery.connectors.models import ConnectorChange, ConnectorChangeStatus, ConnectorConfig
from recovery.connectors.services import connector_change_request
from tenants.choices import Role

from ..connector_helpers import connector_set
from ..factories import active_grant, make_user, member, staff, totp_token
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db

TOKEN_PATH = "hooks/tok_8a7b6c5d4e"
HOOK = {"url": f"https://automation.acme.example/{TOKEN_PATH}", "secret_env": "ACME_HOOK_KEY"}
LDAP = {
    "server_uri": "ldaps://ldap.acme.example",
    "bind_dn": "cn=vouchsafe,ou=services,dc=acme,dc=example",
    "bind_password_env": "ACME_BIND_PASSWORD",
    "base_dn": "dc=acme,dc=example",
}


def propose(client, tenant, kind: str = "webhook", settings=None, **extra):
    body = {"kind": kind, "settings": HOOK if settings is None else settings, **extra}
    return client.post(api(tenant, "connector/"), body, format="json")


def decide(client, tenant, change_id: int, verb: str, body=None):
    path = api(tenant, f"connector/changes/{change_id}/{verb}/")
    return client.post(path, body or {}, format="json")


def error(response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def pending_change(tenant, requester=None) -> ConnectorChange:
    return connector_change_request(
        actor=requester or staff(Role.TENANT_ADMIN, tenant=tenant),
        tenant=tenant,
        kind="webhook",
        settings=HOOK,
    )


# --- dual control -----------------------------------------------------------------------------


def test_propose_then_a_second_admin_approves_with_a_fresh_code(acme):
    requester, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    proposed = propose(staff_api_client(requester), acme)
    assert proposed.status_code == 201, proposed.content
    change = proposed.json()
    assert (change["status"], change["kind"], change["requested_by"]) == (
        "pending",
        "webhook",
        requester.username,
    )
    assert change["settings_summary"]["url"]["origin"] == "https://automation.acme.example"
    state = staff_api_client(approver).get(api(acme, "connector/")).json()
    assert state["current"] is None and state["pending"]["id"] == change["id"]
    changed = {row["setting"] for row in state["diff"] if row["changed"]}
    assert changed == {"kind", "is_active", "url", "secret_env"}
    assert TOKEN_PATH not in json.dumps(state) and TOKEN_PATH not in json.dumps(change)

    done = decide(
        staff_api_client(approver), acme, change["id"], "approve", {"otp": totp_token(approver)}
    )
    assert done.status_code == 200, done.content
    assert (done.json()["status"], done.json()["decided_by"]) == ("applied", approver.username)
    current = staff_api_client(requester).get(api(acme, "connector/")).json()
    assert current["pending"] is None and current["diff"] == []
    assert (current["current"]["kind"], current["current"]["updated_by"]) == (
        "webhook",
        approver.username,
    )
    assert ConnectorConfig.objects.for_tenant(acme).get().settings == HOOK


def test_the_requester_and_their_other_account_cannot_approve(acme):
    requester = staff(Role.TENANT_ADMIN, tenant=acme)
    alias = make_user(person_id=str(requester.person_id))
    member(alias, Role.TENANT_ADMIN, tenant=acme)
    change = pending_change(acme, requester)
    own = decide(
        staff_api_client(requester), acme, change.pk, "approve", {"otp": totp_token(requester)}
    )
    assert error(own) == (403, "sod.approver_is_requester")
    twin = decide(staff_api_client(alias), acme, change.pk, "approve", {"otp": totp_token(alias)})
    assert error(twin) == (403, "sod.same_person")
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not ConnectorConfig.objects.for_tenant(acme).exists()
    refused = AuditEvent.objects.filter(tenant=acme, action="connector.change_refused")
    assert sorted(refused.values_list("data__code", flat=True)) == [
        "sod.approver_is_requester",
        "sod.same_person",
    ]


@pytest.mark.parametrize(
    ("otp", "code"), [("123", "input.invalid"), ("000000", "stepup.invalid_token")]
)
def test_approval_needs_a_valid_fresh_code(acme, otp, code):
    change = pending_change(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    answer = decide(staff_api_client(approver), acme, change.pk, "approve", {"otp": otp})
    assert error(answer)[1] == code and answer.status_code in (400, 403)
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


def test_reject_with_a_reason_withdraw_and_a_decided_change_is_a_conflict(acme):
    requester, reviewer = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = pending_change(acme, requester)
    reviewer_api = staff_api_client(reviewer)
    assert error(decide(reviewer_api, acme, change.pk, "reject")) == (400, "input.invalid")
    own = decide(staff_api_client(requester), acme, change.pk, "reject", {"reason": "no"})
    assert error(own) == (403, "connector.reject_own")
    rejected = decide(reviewer_api, acme, change.pk, "reject", {"reason": "not our host"})
    assert rejected.status_code == 200 and rejected.json()["reason"] == "not our host"
    again = decide(reviewer_api, acme, change.pk, "approve", {"otp": totp_token(reviewer)})
    assert error(again) == (409, "connector.change_not_pending")
    assert not ConnectorConfig.objects.for_tenant(acme).exists()

    second = pending_change(acme, requester)
    not_mine = decide(reviewer_api, acme, second.pk, "withdraw")
    assert error(not_mine) == (403, "connector.not_requester")
    withdrawn = decide(staff_api_client(requester), acme, second.pk, "withdraw", {"reason": "typo"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"


# --- validation: clear, per field, nothing stored ---------------------------------------------


def test_invalid_settings_are_400_per_field_and_nothing_is_stored(acme):
    client = staff_api_client(staff(Role.TENANT_ADMIN, tenant=acme))
    bad = propose(client, acme, "ldap", {**LDAP, "bind_password_env": "my password", "x": 1})
    assert error(bad) == (400, "connector.settings_invalid")
    assert set(bad.json()["errors"]) == {"bind_password_env", "x"}
    assert error(propose(client, acme, "scim", {})) == (400, "input.invalid")
    assert propose(client, acme, "scim", {}).json()["errors"].keys() == {"kind"}
    not_object = client.post(
        api(acme, "connector/"), {"kind": "ldap", "settings": ["x"]}, format="json"
    )
    assert error(not_object) == (400, "input.invalid") and "settings" in not_object.json()["errors"]
    assert not ConnectorChange.objects.for_tenant(acme).exists()


def test_a_second_proposal_while_one_is_pending_is_a_conflict(acme):
    first = pending_change(acme)
    client = staff_api_client(staff(Role.TENANT_ADMIN, tenant=acme))
    assert error(propose(client, acme, "ldap", LDAP)) == (409, "connector.change_pending")
    assert list(ConnectorChange.objects.for_tenant(acme)) == [first]


def test_proposing_what_is_in_force_is_refused(acme):
    connector_set(acme, kind="webhook", settings=HOOK)
    client = staff_api_client(staff(Role.TENANT_ADMIN, tenant=acme))
    assert error(propose(client, acme)) == (400, "connector.change_empty")


# --- who reads, who writes --------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.SECURITY_OFFICER])
def test_auditors_and_officers_read_but_change_nothing(acme, role):
    change = pending_change(acme)
    reader = staff(role, tenant=acme)
    client = staff_api_client(reader)
    state = client.get(api(acme, "connector/"))
    assert state.status_code == 200 and state.json()["pending"]["id"] == change.pk
    assert error(propose(client, acme, "manual", {})) == (403, "auth.scope_missing")
    for verb, body in (("approve", {"otp": totp_token(reader)}), ("reject", {"reason": "x"})):
        assert error(decide(client, acme, change.pk, verb, body)) == (403, "auth.scope_missing")
    tested = client.post(api(acme, "connector/test/"), {}, format="json")
    assert error(tested) == (403, "auth.scope_missing")
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not AuditEvent.objects.filter(tenant=acme, action="connector.tested").exists()


def test_workers_of_cases_cannot_read_it(acme):
    agent = staff_api_client(staff(Role.AGENT, tenant=acme))
    assert error(agent.get(api(acme, "connector/"))) == (403, "auth.scope_missing")


def test_provider_staff_through_a_grant_neither_read_nor_change(acme, deskco):
    active_grant(deskco, acme, roles=(Role.SUPERVISOR, Role.AUDITOR))
    msp = make_user()
    member(msp, Role.AUDITOR, provider=deskco)
    member(msp, Role.TENANT_ADMIN, provider=deskco)
    client = staff_api_client(msp)
    assert error(client.get(api(acme, "connector/"))) == (403, "connector.read_forbidden")
    assert error(propose(client, acme)) == (403, "auth.scope_missing")


def test_an_admin_of_another_tenant_gets_404(acme, globex):
    change = pending_change(acme)
    outsider = staff_api_client(staff(Role.TENANT_ADMIN, tenant=globex))
    assert outsider.get(api(acme, "connector/")).status_code == 404
    answer = decide(outsider, acme, change.pk, "reject", {"reason": "mine now"})
    assert answer.status_code == 404
    theirs = decide(outsider, globex, change.pk, "reject", {"reason": "mine now"})
    assert error(theirs) == (404, "not_found")  # acme's change under globex's URL
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING


def test_a_key_reads_the_summary_and_changes_nothing(acme):
    connector_set(acme, kind="webhook", settings=HOOK)
    client = key_client(acme)
    state = client.get(api(acme, "connector/"))
    assert state.status_code == 200 and TOKEN_PATH not in state.content.decode()
    assert error(propose(client, acme, "manual", {})) == (403, "auth.staff_only")
    assert error(client.post(api(acme, "connector/test/"), {})) == (403, "auth.staff_only")


# --- test connection --------------------------------------------------------------------------


def test_test_connection_of_what_is_in_force_and_of_a_pending_change(acme, globex, monkeypatch):
    monkeypatch.setenv("ACME_HOOK_KEY", "a-signing-key")
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    client = staff_api_client(admin)
    in_force = client.post(api(acme, "connector/test/"), {}, format="json")
    assert in_force.status_code == 200
    assert in_force.json() == {
        "ok": True,
        "detail": "Manual: nothing to reach; an agent follows the steps.",
        "configuration": "active",
        "change": None,
    }
    change = pending_change(acme)
    tested = client.post(api(acme, "connector/test/"), {"change": change.pk}, format="json")
    assert tested.status_code == 200
    assert (tested.json()["ok"], tested.json()["configuration"]) == (True, "pending")
    assert TOKEN_PATH not in tested.content.decode()
    theirs = pending_change(globex)
    foreign = client.post(api(acme, "connector/test/"), {"change": theirs.pk}, format="json")
    assert error(foreign) == (404, "not_found")
    recorded = AuditEvent.objects.filter(tenant=acme, action="connector.tested").order_by("seq")
    assert [(e.data["configuration"], e.data["ok"]) for e in recorded] == [
        ("active", True),
        ("pending", True),
    ]
    assert recorded.last().actor_id == str(admin.pk)

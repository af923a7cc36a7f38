"""The Entra ID connector against the Graph fake: each operation's outcome in the tenant, each
repeated without changing anything more, every failure Graph documents, and no pass anywhere
but in the `TemporaryPass` for the owner's session."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from recovery.connectors.base import CAPABILITY_MISSING, Capability, Snapshot
from recovery.connectors.cloud import AuthMethod, ChangeKind, ReportedChange
from recovery.connectors.entra import PRIVILEGED_ROLES, EntraConnector, validate_entra_settings
from recovery.connectors.graph_client import GraphClient
from recovery.connectors.validation import _Errors
from recovery.connectors.vendor_http import VendorError
from recovery.models import ProtectedAccount
from tenants.models import Tenant
from tests.fakes.graph import PASSWORD_METHOD_ID, FakeGraph, iso

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"  # not a privileged role
SECRET_ENV = "VS_TEST_ENTRA_SECRET"
TAP_PATH = r"/authentication/temporaryAccessPassMethods$"
CONFLICTING = {
    "error": {
        "code": "Request_BadRequest",
        "message": "A conflicting object with one or more of the specified property values is "
        "present in the directory.",
    }
}


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_path)
        fake.add_role_definition(DIRECTORY_READERS, "Directory Readers")
        yield fake


@pytest.fixture
def slept() -> list[float]:
    return []


def settings_for(graph: FakeGraph, **overrides: Any) -> dict[str, Any]:
    errors = _Errors()
    raw = {
        "tenant_id": graph.tenant_id,
        "client_id": graph.client_id,
        "client_secret_env": SECRET_ENV,
        "authority_host": graph.url,
        "graph_url": graph.url,
        **overrides,
    }
    settings = validate_entra_settings(raw, errors)
    assert errors.fields == {}
    return settings


def connector_for(
    graph: FakeGraph,
    slept: list[float],
    *,
    client: dict[str, Any] | None = None,
    **settings: Any,
) -> EntraConnector:
    options: dict[str, Any] = {
        "tenant_id": graph.tenant_id,
        "client_id": graph.client_id,
        "client_secret": graph.client_secret,
        "authority_host": graph.url,
        "graph_url": graph.graph_url,
        "sleep": slept.append,
        **(client or {}),
    }
    return EntraConnector(
        tenant=Tenant(slug="contoso", name="Contoso"),
        settings=settings_for(graph, **settings),
        client=GraphClient(**options),
    )


@pytest.fixture
def entra(graph: FakeGraph, slept: list[float]) -> EntraConnector:
    return connector_for(graph, slept)


@pytest.fixture
def ada(graph: FakeGraph) -> str:
    return graph.add_user("ada@contoso.com", "Ada Lovelace")


@pytest.fixture
def account(ada: str) -> ProtectedAccount:
    return ProtectedAccount(external_id="emp-1", username="ada@contoso.com")


def added_methods(graph: FakeGraph, user_id: str) -> list[str]:
    return [m for m in graph.method_ids(user_id) if m != PASSWORD_METHOD_ID]


def held_roles(graph: FakeGraph, user_id: str) -> list[tuple[str, str]]:
    return sorted(
        (a["roleDefinitionId"], a["directoryScopeId"])
        for a in graph.role_assignments.values()
        if a["principalId"] == user_id
    )


def writes(graph: FakeGraph) -> list[tuple[str, str]]:
    """Every request that could change the tenant (token requests aside)."""
    return [
        (r.method, r.path)
        for r in graph.requests
        if r.method in ("POST", "PATCH", "DELETE") and not r.path.endswith("/token")
    ]


# --- settings ------------------------------------------------------------------------------

MINIMAL = {
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "5a0d7a35-1b8a-4a38-9f0e-7c5d9a1b2c3d",
    "client_secret_env": "VS_ENTRA_CONTOSO_SECRET",
}


def validated(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    errors = _Errors()
    return validate_entra_settings(raw, errors), errors.fields


def test_settings_are_filled_with_the_defaults():
    settings, problems = validated(dict(MINIMAL))
    assert problems == {}
    assert settings == {
        **MINIMAL,
        "authority_host": "https://login.microsoftonline.com",
        "graph_url": "https://graph.microsoft.com",
        "ca_bundle": "",
        "tap_lifetime_minutes": 60,
        "privileged_roles": sorted(PRIVILEGED_ROLES),
    }
    assert {GLOBAL_ADMIN, USER_ADMIN} <= set(settings["privileged_roles"])
    assert DIRECTORY_READERS not in settings["privileged_roles"]


@pytest.mark.parametrize(
    ("change", "name", "words"),
    [
        ({"tenant_id": "common"}, "tenant_id", "tenant"),
        ({"tenant_id": None}, "tenant_id", "required"),
        ({"client_id": "vouchsafe-app"}, "client_id", "GUID"),
        ({"client_secret_env": "s3cret value!"}, "client_secret_env", "never the secret"),
        ({"client_secret_env": 42}, "client_secret_env", "text"),
        ({"authority_host": "http://login.example.com"}, "authority_host", "https"),
        ({"graph_url": "https://graph.microsoft.com/v1.0"}, "graph_url", "without a path"),
        ({"graph_url": "https://me@graph.microsoft.com"}, "graph_url", "no credentials"),
        ({"graph_url": "https://graph.microsoft.com:99999"}, "graph_url", "parsed"),
        ({"ca_bundle": "certs/ca.pem"}, "ca_bundle", "absolute"),
        ({"tap_lifetime_minutes": 9}, "tap_lifetime_minutes", "10 to 480"),
        ({"tap_lifetime_minutes": 481}, "tap_lifetime_minutes", "R-31"),
        ({"tap_lifetime_minutes": "60"}, "tap_lifetime_minutes", "whole number"),
        ({"tap_lifetime_minutes": True}, "tap_lifetime_minutes", "whole number"),
        ({"privileged_roles": []}, "privileged_roles", "at least one"),
        ({"privileged_roles": ["Global Administrator"]}, "privileged_roles", "GUID"),
        ({"privileged_roles": GLOBAL_ADMIN}, "privileged_roles", "list"),
        ({"client_secret": "hunter2"}, "client_secret", "Unknown setting"),
    ],
)
def test_a_wrong_setting_is_reported_against_its_name(change, name, words):
    raw = {**MINIMAL, **change}
    if change.get(name, "") is None:
        del raw[name]
    _settings, problems = validated(raw)
    assert list(problems) == [name]
    assert words in " ".join(problems[name])


def test_plain_http_is_accepted_only_for_a_service_on_this_machine():
    settings, problems = validated(
        {**MINIMAL, "authority_host": "http://127.0.0.1:8443/", "graph_url": "http://localhost"}
    )
    assert problems == {}
    assert (settings["authority_host"], settings["graph_url"]) == (
        "http://127.0.0.1:8443",
        "http://localhost",
    )


def test_tenant_domain_and_role_ids_are_accepted_and_normalised():
    settings, problems = validated(
        {
            **MINIMAL,
            "tenant_id": "contoso.onmicrosoft.com",
            "privileged_roles": [GLOBAL_ADMIN.upper(), GLOBAL_ADMIN, USER_ADMIN],
        }
    )
    assert problems == {}
    assert settings["privileged_roles"] == [GLOBAL_ADMIN, USER_ADMIN]


# --- the connector's shape -----------------------------------------------------------------


def test_every_capability_but_a_password_and_the_password_is_never_set(graph, entra, account):
    # Graph has no mailbox-permission API: a delegation is a manual step (recovery.delegation)
    manual = {Capability.PASSWORD_SET, Capability.MAILBOX_DELEGATE}
    assert entra.capabilities == frozenset(Capability) - manual
    assert entra.kind == "entra" and Capability.PASSWORD_SET not in entra.capabilities
    result = entra.password_set(account=account, password="Correct-Horse-9")
    assert (result.ok, result.detail["code"]) == (False, CAPABILITY_MISSING)
    assert "R-12" in result.error and "Correct-Horse-9" not in repr(result)
    assert graph.requests == []


def test_the_user_is_the_object_id_in_idp_subject_or_else_the_upn(graph, entra, ada):
    by_object_id = ProtectedAccount(username="old-name@contoso.com", idp_subject=ada)
    by_pairwise_sub = ProtectedAccount(
        username="ada@contoso.com", idp_subject="AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
    )
    assert entra.sessions_revoke(account=by_object_id).ok
    assert entra.sessions_revoke(account=by_pairwise_sub).ok
    assert [r.path for r in graph.sent("POST", r"/revokeSignInSessions$")] == [
        f"/v1.0/users/{ada}/revokeSignInSessions",
        "/v1.0/users/ada@contoso.com/revokeSignInSessions",
    ]


# --- snapshot and execute ------------------------------------------------------------------


def test_snapshot_records_enabled_state_methods_and_roles_but_no_secret(graph, entra, ada, account):
    key = graph.add_method(ada, "fido2", displayName="Red key")
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN, "/administrativeUnits/au-1")
    _result, issued = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    snapshot = entra.snapshot(account=account, case_type="mfa_reset")
    state = snapshot.state
    assert (snapshot.account_external_id, state["user_id"], state["enabled"]) == (
        "emp-1",
        ada,
        True,
    )
    assert [(m["id"], m["kind"]) for m in state["methods"]] == [
        (PASSWORD_METHOD_ID, "password"),
        (key, "fido2"),
        (issued.id, "temporaryAccessPass"),
    ]
    assert state["methods"][1]["created_at"] is not None
    assert state["roles"] == [
        {
            "id": assignment,
            "role_id": GLOBAL_ADMIN,
            "role_name": "Global Administrator",
            "scope": "/administrativeUnits/au-1",
        }
    ]
    assert issued.secret not in repr(snapshot) and "secret" not in state


def test_without_the_role_permission_roles_are_unknown_and_execution_proceeds(
    graph, slept, ada, account
):
    graph.permissions -= {"RoleManagement.ReadWrite.Directory"}
    result = connector_for(graph, slept).execute(account=account, case_type="mfa_reset", case_id=7)
    assert result.ok and result.snapshot.state["roles"] is None
    assert result.snapshot.state["case_id"] == 7


def test_snapshot_of_a_user_gone_or_a_case_type_not_carried_out_is_none(graph, entra):
    gone = ProtectedAccount(username="gone@contoso.com")
    assert entra.snapshot(account=gone, case_type="mfa_reset") is None
    assert entra.snapshot(account=gone, case_type="mailbox_access") is None


def test_unlock_enables_a_disabled_account_and_a_repeat_changes_nothing(graph, entra, ada, account):
    graph.users[ada]["accountEnabled"] = False
    first = entra.execute(account=account, case_type="unlock", case_id=1)
    assert first.ok and first.detail == {"changed": True}
    assert graph.users[ada]["accountEnabled"] is True
    assert first.snapshot.state["enabled"] is False  # what revert puts back
    assert [r.json() for r in graph.sent("PATCH", rf"/users/{ada}$")] == [{"accountEnabled": True}]
    again = entra.execute(account=account, case_type="unlock", case_id=1)
    assert again.ok and again.detail == {"changed": False}
    assert len(graph.sent("PATCH", r"/users/")) == 1


def test_a_password_reset_is_refused_because_the_pass_could_enrol_mfa(graph, entra, ada, account):
    """R-12: the only credential Entra can give the owner, a Temporary Access Pass, also lets
    its holder register sign-in methods; password evidence never yields that."""
    result = entra.execute(account=account, case_type="password_reset", case_id=3)
    assert (result.ok, result.detail["code"]) == (False, CAPABILITY_MISSING)
    assert "R-12" in result.error and "self-service password reset" in result.error
    issued, secret = entra.temporary_pass_issue(
        account=account, case_type="password_reset", lifetime_minutes=60
    )
    assert (issued.ok, secret) == (False, None)
    assert writes(graph) == [] and graph.pass_values == {}


@pytest.mark.parametrize("case_type", ["mfa_reset", "temporary_access"])
def test_a_recovery_checks_the_user_and_creates_no_credential(
    graph, entra, ada, account, case_type
):
    key = graph.add_method(ada, "fido2", displayName="Red key")
    result = entra.execute(account=account, case_type=case_type, case_id=3)
    assert result.ok and result.detail == {"changed": False, "next": "temporary_pass"}
    assert result.snapshot.state["case_type"] == case_type
    assert writes(graph) == [] and graph.pass_values == {}
    assert graph.method_ids(ada) == [PASSWORD_METHOD_ID, key]


def test_a_disabled_account_gets_no_pass_path(graph, entra, ada, account):
    graph.users[ada]["accountEnabled"] = False
    result = entra.execute(account=account, case_type="mfa_reset", case_id=3)
    assert (result.ok, result.detail["code"]) == (False, "entra.user_disabled")
    assert "unlock" in result.error and result.snapshot.state["enabled"] is False
    assert writes(graph) == [] and graph.users[ada]["accountEnabled"] is False


def test_other_case_types_are_capability_missing_without_calling_graph(graph, entra, account):
    for case_type in ("mailbox_access", "privileged_role_restore", "exception"):
        result = entra.execute(account=account, case_type=case_type, case_id=3)
        assert (result.ok, result.detail["code"]) == (False, CAPABILITY_MISSING)
    assert graph.requests == []


# --- Temporary Access Pass -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "asked", "sent"), [(120, 240, 120), (480, 60, 60), (480, 480, 480)]
)
def test_a_pass_lives_the_shorter_of_the_request_and_the_setting(
    graph, slept, ada, account, setting, asked, sent
):
    entra = connector_for(graph, slept, tap_lifetime_minutes=setting)
    result, issued = entra.temporary_pass_issue(
        account=account, case_type="temporary_access", lifetime_minutes=asked
    )
    assert result.ok and result.detail["lifetime_minutes"] == sent
    assert graph.sent("POST", TAP_PATH)[-1].json() == {
        "lifetimeInMinutes": sent,
        "isUsableOnce": True,
    }
    assert issued.secret == graph.pass_values[issued.id] and issued.usable_once
    assert result.detail["pass_id"] == issued.id and result.detail["usable_once"] is True


@pytest.mark.parametrize("minutes", [0, 481, 600])
def test_a_pass_lifetime_outside_r31_is_refused_before_graph_is_asked(
    graph, entra, account, minutes
):
    result, issued = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=minutes
    )
    assert issued is None and result.detail["code"] == "entra.lifetime_invalid"
    assert graph.requests == []


def test_issuing_again_leaves_only_the_new_pass(graph, entra, ada, account):
    _first, old = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    _second, new = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    assert added_methods(graph, ada) == [new.id] and old.id != new.id


def test_a_lifetime_the_tenants_policy_refuses_is_graphs_refusal(graph, slept, ada, account):
    entra = connector_for(graph, slept, tap_lifetime_minutes=30)  # the policy's minimum is 60
    result, issued = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    assert issued is None and (result.ok, result.detail["code"]) == (False, "entra.rejected")
    assert result.detail["vendor_code"] == "badRequest" and "between 60 and 480" in result.error
    assert added_methods(graph, ada) == []


def test_no_pass_is_issued_for_an_unlock(graph, entra, account):
    result, issued = entra.temporary_pass_issue(
        account=account, case_type="unlock", lifetime_minutes=60
    )
    assert issued is None and result.detail["code"] == CAPABILITY_MISSING
    assert graph.requests == []


def test_the_pass_appears_in_no_result_snapshot_or_log(graph, entra, ada, account, caplog):
    caplog.set_level(logging.DEBUG)
    results = [entra.execute(account=account, case_type="temporary_access", case_id=5)]
    issued_result, issued = entra.temporary_pass_issue(
        account=account, case_type="temporary_access", lifetime_minutes=60
    )
    results.append(issued_result)
    graph.throttle("GET", r"/authentication/methods$", retry_after=99)  # beyond the wait bound
    results.append(entra.revert(account=account, snapshot=results[0].snapshot))
    results.append(entra.revoke_temporary_access(account=account))
    results.append(entra.revert(account=account, snapshot=results[0].snapshot))
    assert issued.secret == graph.pass_values[issued.id]
    assert [r.ok for r in results] == [True, True, False, True, True]
    for shown in [caplog.text, repr(issued), *map(repr, results)]:
        assert issued.secret not in shown
        assert graph.client_secret not in shown
    assert issued.id in caplog.text  # the log does name which pass was issued


# --- sessions and methods ------------------------------------------------------------------


def test_sessions_revoke_ends_sessions_and_a_repeat_is_harmless(graph, entra, ada, account):
    assert entra.sessions_revoke(account=account).detail == {"revoked": True}
    first = graph.sessions_revoked_at[ada]
    graph.advance(60)
    assert entra.sessions_revoke(account=account).ok
    assert graph.sessions_revoked_at[ada] > first


def test_methods_list_answers_the_users_methods(graph, entra, ada, account):
    key = graph.add_method(ada, "fido2", displayName="Red key")
    assert [(m.id, m.kind) for m in entra.methods_list(account=account)] == [
        (PASSWORD_METHOD_ID, "password"),
        (key, "fido2"),
    ]


def test_method_remove_removes_it_and_a_second_remove_is_done(graph, entra, ada, account):
    key = graph.add_method(ada, "fido2", displayName="Lost key")
    method = AuthMethod(id=key, kind="fido2")
    for _ in range(2):
        result = entra.method_remove(account=account, method=method)
        assert result.ok and result.detail == {"method_id": key, "kind": "fido2"}
    assert added_methods(graph, ada) == []
    assert len(graph.sent("DELETE", rf"/fido2Methods/{key}$")) == 2


def test_a_password_method_is_not_removed(graph, entra, account):
    result = entra.method_remove(
        account=account, method=AuthMethod(id=PASSWORD_METHOD_ID, kind="password")
    )
    assert (result.ok, result.detail["code"]) == (False, CAPABILITY_MISSING)
    assert "password" in result.error and graph.requests == []


def test_the_default_method_is_refused_while_others_remain(graph, entra, ada, account):
    app = graph.add_method(ada, "microsoftAuthenticator", displayName="Lost phone")
    graph.add_method(ada, "fido2", displayName="New key")
    graph.set_default_method(ada, app)
    result = entra.method_remove(
        account=account, method=AuthMethod(id=app, kind="microsoftAuthenticator")
    )
    assert (result.ok, result.detail["code"]) == (False, "entra.rejected")
    assert "default method" in result.error and app in graph.method_ids(ada)


def test_revoke_temporary_access_deletes_the_pass_and_a_repeat_is_done(graph, entra, ada, account):
    key = graph.add_method(ada, "fido2", displayName="Key")
    _result, issued = entra.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    first = entra.revoke_temporary_access(account=account)
    assert first.ok and first.detail["done"] == [f"removed temporary pass {issued.id}"]
    assert added_methods(graph, ada) == [key]
    again = entra.revoke_temporary_access(account=account)
    assert again.ok and again.detail["done"] == []
    assert len(graph.sent("DELETE", r"/temporaryAccessPassMethods/")) == 1


# --- roles (R-19) --------------------------------------------------------------------------


def test_roles_suspend_removes_only_privileged_roles_and_snapshots_them(graph, entra, ada, account):
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.add_role_assignment(ada, USER_ADMIN, "/administrativeUnits/au-1")
    graph.add_role_assignment(ada, DIRECTORY_READERS)
    result = entra.roles_suspend(account=account)
    assert result.ok and len(result.detail["done"]) == 2
    assert held_roles(graph, ada) == [(DIRECTORY_READERS, "/")]
    assert sorted((r["role_id"], r["scope"]) for r in result.snapshot.state["roles"]) == [
        (GLOBAL_ADMIN, "/"),
        (USER_ADMIN, "/administrativeUnits/au-1"),
    ]
    again = entra.roles_suspend(account=account)
    assert again.ok and again.detail["done"] == [] and again.snapshot.state["roles"] == []
    assert held_roles(graph, ada) == [(DIRECTORY_READERS, "/")]


def test_roles_restore_grants_them_back_and_a_repeat_adds_nothing(graph, entra, ada, account):
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.add_role_assignment(ada, USER_ADMIN, "/administrativeUnits/au-1")
    before = held_roles(graph, ada)
    suspended = entra.roles_suspend(account=account)
    restored = entra.roles_restore(account=account, snapshot=suspended.snapshot)
    assert restored.ok and len(restored.detail["done"]) == 2
    assert held_roles(graph, ada) == before
    again = entra.roles_restore(account=account, snapshot=suspended.snapshot)
    assert again.ok and again.detail["done"] == []
    assert held_roles(graph, ada) == before
    assert len(graph.sent("POST", r"/roleAssignments$")) == 2


def test_roles_restore_from_the_execution_snapshot_grants_only_what_is_missing(
    graph, entra, ada, account
):
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.add_role_assignment(ada, DIRECTORY_READERS)
    taken = entra.execute(account=account, case_type="mfa_reset", case_id=9).snapshot
    entra.roles_suspend(account=account)
    result = entra.roles_restore(account=account, snapshot=taken)
    assert result.ok and result.detail["done"] == ["restored Global Administrator at /"]
    assert held_roles(graph, ada) == sorted([(GLOBAL_ADMIN, "/"), (DIRECTORY_READERS, "/")])


def test_roles_are_not_restored_to_another_user_with_the_same_upn(graph, entra, ada, account):
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    suspended = entra.roles_suspend(account=account)
    del graph.users[ada]
    impostor = graph.add_user("ada@contoso.com", "Not Ada")
    result = entra.roles_restore(account=account, snapshot=suspended.snapshot)
    assert (result.ok, result.detail["code"]) == (False, "entra.user_changed")
    assert held_roles(graph, impostor) == [] and graph.sent("POST", r"/roleAssignments$") == []


def test_a_grant_graph_calls_a_duplicate_answers_the_existing_assignment(
    graph, entra, ada, account
):
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    taken = entra.snapshot(account=account, case_type="mfa_reset")
    # Replication lag: the first read does not show the assignment yet; the create is refused
    # as a duplicate, and the client answers the assignment already there.
    graph.fail_next("GET", r"/roleAssignments$", 200, {"value": []})
    result = entra.roles_restore(account=account, snapshot=taken)
    assert result.ok and result.detail["done"] == ["restored Global Administrator at /"]
    assert held_roles(graph, ada) == [(GLOBAL_ADMIN, "/")]
    assert len(graph.sent("POST", r"/roleAssignments$")) == 1


def test_roles_restore_refuses_a_snapshot_without_roles(graph, slept, entra, ada, account):
    graph.permissions -= {"RoleManagement.ReadWrite.Directory"}
    taken = connector_for(graph, slept).snapshot(account=account, case_type="mfa_reset")
    result = entra.roles_restore(account=account, snapshot=taken)
    assert (result.ok, result.detail["code"]) == (False, "entra.snapshot_without_roles")


# --- the re-establishment window (R-35) ----------------------------------------------------


def test_changes_since_reads_the_audit_log_by_object_id(graph, entra, ada, account):
    since = graph.now_datetime() - dt.timedelta(seconds=1)
    record = graph.add_audit(
        "User registered security info", "UserManagement", [{"id": ada}], initiated_by=ada
    )
    changes = entra.changes_since(account=account, since=since)
    assert [(c.id, c.kind) for c in changes] == [(record, ChangeKind.MFA_ENROLLED)]
    filters = [r.query["$filter"][0] for r in graph.sent("GET", r"/directoryAudits$")]
    assert all(ada in f for f in filters)


def test_change_undo_deletes_the_method_the_registration_added(graph, entra, ada, account):
    now = graph.now_datetime()
    owners = graph.add_method(
        ada,
        "fido2",
        displayName="Owner's key",
        createdDateTime=iso((now - dt.timedelta(hours=1)).timestamp()),
    )
    thiefs = graph.add_method(
        ada,
        "microsoftAuthenticator",
        displayName="Unknown phone",
        createdDateTime=iso(now.timestamp()),
    )
    graph.add_audit(
        "User registered security info",
        "UserManagement",
        [{"id": ada}],
        initiated_by=ada,
        at=now + dt.timedelta(seconds=2),
    )
    [change] = entra.changes_since(account=account, since=now - dt.timedelta(minutes=1))
    result = entra.change_undo(account=account, change=change)
    assert result.ok and result.detail["done"] == [
        f"removed microsoftAuthenticator method {thiefs}"
    ]
    assert added_methods(graph, ada) == [owners]
    again = entra.change_undo(account=account, change=change)
    assert again.ok and again.detail["done"] == []
    assert len(graph.sent("DELETE", r"/authentication/")) == 1


def test_change_undo_removes_the_role_assignment_granted(graph, entra, ada, account):
    since = graph.now_datetime() - dt.timedelta(seconds=1)
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.add_role_assignment(ada, DIRECTORY_READERS)
    modified = [{"displayName": "Role.TemplateId", "newValue": f'"{GLOBAL_ADMIN}"'}]
    graph.add_audit(
        "Add member to role", "RoleManagement", [{"id": ada, "modifiedProperties": modified}]
    )
    [change] = entra.changes_since(account=account, since=since)
    assert entra.change_undo(account=account, change=change).ok
    assert held_roles(graph, ada) == [(DIRECTORY_READERS, "/")]
    again = entra.change_undo(account=account, change=change)
    assert again.ok and again.detail["done"] == []


@pytest.mark.parametrize(
    "kind",
    [
        ChangeKind.ADDRESS_CHANGED,
        ChangeKind.OAUTH_CONSENT,
        ChangeKind.MAILBOX_RULE,
        ChangeKind.DELEGATE_GRANTED,
    ],
)
def test_a_change_graph_cannot_undo_is_capability_missing_in_words(graph, entra, account, kind):
    change = ReportedChange(id="Directory_1", at=graph.now_datetime(), kind=kind, summary="x")
    result = entra.change_undo(account=account, change=change)
    assert (result.ok, result.detail["code"]) == (False, CAPABILITY_MISSING)
    assert "admin center" in result.error and graph.requests == []


def test_a_change_on_another_user_is_not_undone_on_this_one(graph, entra, ada, account):
    change = ReportedChange(
        id="Directory_2",
        at=graph.now_datetime(),
        kind=ChangeKind.PRIVILEGED_ROLE,
        summary="Add member to role",
        target={"user_id": "11111111-2222-3333-4444-555555555555", "role_id": GLOBAL_ADMIN},
    )
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    result = entra.change_undo(account=account, change=change)
    assert (result.ok, result.detail["code"]) == (False, "entra.user_changed")
    assert held_roles(graph, ada) == [(GLOBAL_ADMIN, "/")]


# --- revert (R-37, R-41) -------------------------------------------------------------------


def test_revert_puts_the_account_back_as_the_snapshot_recorded(graph, entra, ada, account):
    phone = graph.add_method(ada, "phone", phoneNumber="+1 2065555555")
    graph.add_role_assignment(ada, GLOBAL_ADMIN)
    taken = entra.execute(account=account, case_type="mfa_reset", case_id=4).snapshot
    # What happened since: a pass, two new authenticators, the old phone removed, the role
    # suspended, another role granted, the account disabled.
    entra.temporary_pass_issue(account=account, case_type="mfa_reset", lifetime_minutes=60)
    graph.add_method(ada, "fido2", displayName="Key")
    graph.add_method(ada, "microsoftAuthenticator", displayName="Phone")
    entra.method_remove(account=account, method=AuthMethod(id=phone, kind="phone"))
    entra.roles_suspend(account=account)
    graph.add_role_assignment(ada, USER_ADMIN)
    graph.users[ada]["accountEnabled"] = False
    graph.advance(60)

    result = entra.revert(account=account, snapshot=taken)

    assert result.ok, result.error
    assert added_methods(graph, ada) == []
    assert held_roles(graph, ada) == [(GLOBAL_ADMIN, "/")]
    assert graph.users[ada]["accountEnabled"] is True
    assert ada in graph.sessions_revoked_at and result.detail["done"][-1] == "sessions revoked"
    assert [m["id"] for m in result.detail["not_restorable"]] == [phone]
    before = len(writes(graph))
    again = entra.revert(account=account, snapshot=taken)
    assert again.ok and again.detail["done"] == ["sessions revoked"]
    assert writes(graph)[before:] == [("POST", f"/v1.0/users/{ada}/revokeSignInSessions")]


def test_revert_puts_back_a_disabled_account_an_unlock_enabled(graph, entra, ada, account):
    graph.users[ada]["accountEnabled"] = False
    taken = entra.execute(account=account, case_type="unlock", case_id=2).snapshot
    result = entra.revert(account=account, snapshot=taken)
    assert result.ok and "account disabled" in result.detail["done"]
    assert graph.users[ada]["accountEnabled"] is False


def test_a_revert_cut_short_reports_what_was_done_and_completes_when_run_again(
    graph, entra, ada, account, slept
):
    taken = entra.snapshot(account=account, case_type="mfa_reset")
    first = graph.add_method(ada, "fido2", displayName="Key 1")
    second = graph.add_method(ada, "fido2", displayName="Key 2")
    graph.fail_next(
        "DELETE", rf"/{second}$", 503, {"error": {"code": "ServiceUnavailable"}}, times=3
    )

    cut_short = entra.revert(account=account, snapshot=taken)

    assert (cut_short.ok, cut_short.detail["code"]) == (False, "entra.unavailable")
    assert cut_short.detail["done"] == [f"removed fido2 method {first}", "sessions revoked"]
    assert [f["step"] for f in cut_short.detail["failed"]] == [f"removed fido2 method {second}"]
    assert "1 of 3 steps failed" in cut_short.error
    assert added_methods(graph, ada) == [second] and ada in graph.sessions_revoked_at
    assert slept == [0.5, 1.0]  # the backoff between the repeats, not a real wait

    completed = entra.revert(account=account, snapshot=taken)
    assert completed.ok and completed.detail["done"] == [
        f"removed fido2 method {second}",
        "sessions revoked",
    ]
    assert added_methods(graph, ada) == []


def test_revert_still_ends_sessions_when_the_methods_cannot_be_read(graph, entra, ada, account):
    taken = entra.snapshot(account=account, case_type="mfa_reset")
    denied = {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient"}}
    graph.fail_next("GET", r"/authentication/methods$", 403, denied)
    result = entra.revert(account=account, snapshot=taken)
    assert (result.ok, result.detail["code"]) == (False, "entra.forbidden")
    assert result.detail["failed"][0]["step"] == "read the authentication methods"
    assert result.detail["done"] == ["sessions revoked"] and ada in graph.sessions_revoked_at


def test_revert_refuses_a_snapshot_it_did_not_take(graph, entra, account):
    foreign = Snapshot(account_external_id="emp-1", state={"connector": "ldap", "dn": "uid=ada"})
    result = entra.revert(account=account, snapshot=foreign)
    assert (result.ok, result.detail["code"]) == (False, "entra.snapshot_foreign")
    assert graph.requests == []


# --- health and the client secret ----------------------------------------------------------


def test_health_signs_in_and_probes_graph(graph, entra):
    health = entra.health()
    assert health.ok and graph.tenant_id in health.detail
    assert graph.sent("GET", r"/users/00000000-0000-0000-0000-000000000000$")


def test_health_names_a_missing_permission(graph, slept):
    graph.permissions -= {"User.Read.All"}
    health = connector_for(graph, slept).health()
    assert not health.ok and "User.Read.All" in health.detail


def test_health_names_a_wrong_secret_without_showing_it(graph, slept):
    wrong = "not-the-secret-value"
    health = connector_for(graph, slept, client={"client_secret": wrong}).health()
    assert not health.ok and "invalid_client" in health.detail
    assert "AADSTS7000215" in health.detail and wrong not in health.detail


def test_the_connector_builds_its_client_from_the_settings_and_the_variable(
    graph, monkeypatch, ada, account
):
    monkeypatch.setenv(SECRET_ENV, graph.client_secret)
    entra = EntraConnector(tenant=Tenant(slug="contoso"), settings=settings_for(graph))
    assert entra.health().ok
    assert entra.sessions_revoke(account=account).ok and ada in graph.sessions_revoked_at


def test_a_missing_secret_variable_fails_in_words_not_with_an_exception(
    graph, monkeypatch, account
):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    entra = EntraConnector(tenant=Tenant(slug="contoso"), settings=settings_for(graph))
    result = entra.execute(account=account, case_type="mfa_reset", case_id=1)
    assert (result.ok, result.detail["code"]) == (False, "entra.credential_missing")
    assert SECRET_ENV in result.error
    assert SECRET_ENV in entra.health().detail and not entra.health().ok
    with pytest.raises(VendorError):
        entra.methods_list(account=account)
    assert graph.requests == []


# --- failures Graph documents --------------------------------------------------------------


def test_an_expired_token_is_refreshed_and_the_operation_completes(graph, entra, ada, account):
    assert entra.sessions_revoke(account=account).ok
    graph.advance(3600)
    assert entra.sessions_revoke(account=account).ok
    assert len(graph.sent("POST", r"/oauth2/v2\.0/token$")) == 2
    assert len(graph.sent("POST", r"/revokeSignInSessions$")) == 3  # one refused with 401


def test_a_missing_permission_is_a_failed_result_in_words(graph, slept, ada, account):
    graph.permissions -= {"User.RevokeSessions.All"}
    result = connector_for(graph, slept).sessions_revoke(account=account)
    assert (result.ok, result.detail["code"], result.detail["status"]) == (
        False,
        "entra.forbidden",
        403,
    )
    assert result.detail["vendor_code"] == "Authorization_RequestDenied"
    assert "admin consent" in result.error and ada not in graph.sessions_revoked_at


@pytest.mark.parametrize(
    "operation",
    ["execute", "sessions_revoke", "revoke_temporary_access", "roles_suspend", "temporary_pass"],
)
def test_a_user_gone_fails_each_operation_with_not_found(graph, entra, operation):
    gone = ProtectedAccount(username="gone@contoso.com")
    calls = {
        "execute": lambda: entra.execute(account=gone, case_type="unlock", case_id=1),
        "sessions_revoke": lambda: entra.sessions_revoke(account=gone),
        "revoke_temporary_access": lambda: entra.revoke_temporary_access(account=gone),
        "roles_suspend": lambda: entra.roles_suspend(account=gone),
        "temporary_pass": lambda: entra.temporary_pass_issue(
            account=gone, case_type="mfa_reset", lifetime_minutes=60
        )[0],
    }
    result = calls[operation]()
    assert (result.ok, result.detail["code"]) == (False, "entra.not_found")
    assert result.detail["vendor_code"] == "Request_ResourceNotFound"
    assert "not in the tenant" in result.error


def test_a_conflict_on_a_delete_is_reported_not_taken_as_done(graph, entra, ada, account):
    key = graph.add_method(ada, "fido2", displayName="Key")
    body = {"error": {"code": "Directory_ConcurrencyViolation", "message": "Try again."}}
    graph.fail_next("DELETE", r"/fido2Methods/", 409, body)
    result = entra.method_remove(account=account, method=AuthMethod(id=key, kind="fido2"))
    assert (result.ok, result.detail["code"], result.detail["status"]) == (
        False,
        "entra.conflict",
        409,
    )
    assert key in graph.method_ids(ada)


def test_throttling_waits_as_graph_asks_then_completes(graph, entra, slept, ada, account):
    graph.throttle("POST", r"/revokeSignInSessions$", retry_after=7)
    assert entra.sessions_revoke(account=account).ok
    assert slept == [7.0] and ada in graph.sessions_revoked_at


def test_throttling_beyond_the_wait_bound_is_reported(graph, entra, slept, ada, account):
    graph.throttle("POST", r"/revokeSignInSessions$", retry_after=120)
    result = entra.sessions_revoke(account=account)
    assert (result.ok, result.detail["code"]) == (False, "entra.throttled")
    assert slept == [] and ada not in graph.sessions_revoked_at


def test_a_lasting_server_error_is_unavailable(graph, entra, ada, account):
    body = {"error": {"code": "ServiceUnavailable", "message": "Busy."}}
    graph.fail_next("POST", r"/revokeSignInSessions$", 503, body, times=3)
    result = entra.sessions_revoke(account=account)
    assert (result.ok, result.detail["code"], result.detail["status"]) == (
        False,
        "entra.unavailable",
        503,
    )
    assert ada not in graph.sessions_revoked_at


def test_a_timeout_is_reported_as_a_timeout(graph, slept, ada, account):
    entra = connector_for(graph, slept, client={"timeout": 0.3, "attempts": 2})
    assert entra.sessions_revoke(account=account).ok  # the token first: only Graph hangs
    graph.fail_next("GET", r"/users/", hang_seconds=0.8, times=2)
    result = entra.execute(account=account, case_type="unlock", case_id=1)
    assert (result.ok, result.detail["code"], result.detail["status"]) == (
        False,
        "entra.timeout",
        None,
    )


def test_a_connector_built_from_its_settings_trusts_the_ca_bundle_they_name(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret comes from the variable the settings name, the CA from their `ca_bundle`
    (for the development fake): no process-wide REQUESTS_CA_BUNDLE is needed."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv(SECRET_ENV, graph.client_secret)
    trusting = EntraConnector(
        tenant=Tenant(pk=1), settings=settings_for(graph, ca_bundle=graph.ca_path)
    )
    assert trusting.health().ok
    default_trust = EntraConnector(tenant=Tenant(pk=1), settings=settings_for(graph))
    assert not default_trust.health().ok  # the fake's CA is nobody's default

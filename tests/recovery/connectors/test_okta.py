"""The Okta connector against the Okta fake over HTTP: each operation's outcome read back from
the fake's state, each repeated without changing anything more, a revert that runs every step
past a fault and finishes on a second call, every failure Okta documents as a result, the
one-time reset link kept out of results and logs, and the settings validator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from recovery.connectors.base import CAPABILITY_MISSING, Capability, Snapshot
from recovery.connectors.cloud import AuthMethod, ChangeKind, ReportedChange
from recovery.connectors.okta import OktaConnector, validate_okta_settings
from recovery.connectors.okta_client import OktaClient, OktaServiceApp
from recovery.connectors.validation import _Errors
from recovery.connectors.vendor_http import VendorError
from recovery.models import ProtectedAccount
from tenants.models import Tenant
from tests.fakes.okta import FakeOkta

from .test_okta_client import API_TOKEN, CLIENT_ID, SCOPES

TENANT = Tenant(pk=7, slug="acme", name="Acme")
KEY_ENV = "VOUCHSAFE_TEST_OKTA_KEY"
TOKEN_ENV = "VOUCHSAFE_TEST_OKTA_TOKEN"


@pytest.fixture(scope="module")
def app_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "vouchsafe-1"}, private=True)


@pytest.fixture
def okta(app_key: RSAKey) -> Iterator[FakeOkta]:
    with FakeOkta() as fake:
        fake.register_app(CLIENT_ID, [app_key.as_dict(private=False)], SCOPES)
        fake.add_api_token(API_TOKEN)
        yield fake


@pytest.fixture
def slept() -> list[float]:
    return []


def _client(okta: FakeOkta, app_key: RSAKey, slept: list[float], **options: Any) -> OktaClient:
    """A client on the fake's clock whose waits are recorded (and move that clock)."""

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        okta.advance(seconds)

    app = OktaServiceApp(CLIENT_ID, app_key.as_pem(private=True).decode(), key_id=app_key.kid)
    return OktaClient(okta.url, app, sleep=sleep, clock=okta.now, **options)


def settings(okta: FakeOkta, **overrides: Any) -> dict[str, Any]:
    raw = {"org_url": okta.url, "client_id": CLIENT_ID, "private_key_env": KEY_ENV, **overrides}
    errors = _Errors()
    data = validate_okta_settings({k: v for k, v in raw.items() if v is not None}, errors)
    errors.raise_if_any()
    return data


@pytest.fixture
def connector(okta: FakeOkta, app_key: RSAKey, slept: list[float]) -> OktaConnector:
    client = _client(okta, app_key, slept)
    return OktaConnector(tenant=TENANT, settings=settings(okta), client=client)


@pytest.fixture
def dade(okta: FakeOkta) -> dict[str, Any]:
    user = okta.add_user("dade.murphy@example.com", "Dade", "Murphy")
    okta.add_factor(user["id"], "webauthn", provider="FIDO")
    okta.add_role(user["id"], "ORG_ADMIN")
    return user


@pytest.fixture
def account() -> ProtectedAccount:
    return ProtectedAccount(
        external_id="ext-dade", username="dade.murphy@example.com", display_name="Dade Murphy"
    )


def _writes(okta: FakeOkta) -> list[str]:
    """Every request that could change the org (all but reads and token requests)."""
    return [
        f"{r.method} {r.path}"
        for r in okta.requests
        if r.method != "GET" and not r.path.startswith("/oauth2/")
    ]


# --- settings -------------------------------------------------------------------------------


def test_settings_fill_defaults_and_keep_only_names_of_secrets(okta):
    data = settings(okta, org_url=f"{okta.url}/")
    assert data == {
        "org_url": okta.url,
        "client_id": CLIENT_ID,
        "key_id": "",
        "private_key_env": KEY_ENV,
        "private_key_file": "",
        "api_token_env": "",
        "manage_roles": True,
    }


ORG = "https://acme.okta.com"
CREDENTIALS = ("private_key_env", "api_token_env", "private_key_file")


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"private_key_env": "K", "client_id": "0oa1"}, {"org_url"}),
        ({"org_url": "http://acme.okta.com", "api_token_env": "T"}, {"org_url"}),
        ({"org_url": f"{ORG}/api/v1", "api_token_env": "T"}, {"org_url"}),
        ({"org_url": "https://u:p@acme.okta.com", "api_token_env": "T"}, {"org_url"}),
        ({"org_url": ORG}, {*CREDENTIALS, "client_id"}),
        ({"org_url": ORG, "api_token_env": "T", "private_key_env": "K"}, set(CREDENTIALS[:2])),
        ({"org_url": ORG, "api_token_env": "00abc-the-token-itself"}, {"api_token_env"}),
        ({"org_url": ORG, "private_key_file": "okta.pem", "client_id": "0oa1"}, {CREDENTIALS[2]}),
        ({"org_url": ORG, "private_key_env": "K"}, {"client_id"}),
        ({"org_url": ORG, "api_token_env": "T", "client_id": "0oa1"}, {"client_id"}),
        ({"org_url": ORG, "api_token_env": "T", "manage_roles": "no"}, {"manage_roles"}),
        ({"org_url": ORG, "api_token_env": "T", "api_token": "x"}, {"api_token"}),
    ],
)
def test_settings_problems_are_reported_against_their_setting(raw, fields):
    errors = _Errors()
    validate_okta_settings(raw, errors)
    assert set(errors.fields) == fields


def test_the_development_fake_on_localhost_may_use_http():
    errors = _Errors()
    data = validate_okta_settings(
        {"org_url": "http://localhost:8443", "api_token_env": "T"}, errors
    )
    assert errors.fields == {} and data["org_url"] == "http://localhost:8443"


# --- capabilities ---------------------------------------------------------------------------


def test_capabilities_are_what_okta_does_natively(connector, okta):
    manual = {Capability.PASSWORD_SET, Capability.MAILBOX_DELEGATE}  # Okta holds no mailboxes
    assert connector.capabilities == frozenset(Capability) - manual
    narrow = OktaConnector(tenant=TENANT, settings=settings(okta, manage_roles=False))
    assert Capability.ROLES_SUSPEND not in narrow.capabilities


# --- execute --------------------------------------------------------------------------------


@pytest.mark.parametrize("case_type", ["password_reset", "mfa_reset", "temporary_access"])
def test_execute_snapshots_and_creates_no_credential(connector, okta, dade, account, case_type):
    result = connector.execute(account=account, case_type=case_type, case_id=1)
    assert result.ok and result.detail == {"changed": False, "next": "temporary_pass"}
    state = result.snapshot.state
    assert (state["user_id"], state["status"], state["enabled"]) == (dade["id"], "ACTIVE", True)
    assert [m["kind"] for m in state["methods"]] == ["webauthn"]
    assert [r["role_id"] for r in state["roles"]] == ["ORG_ADMIN"]
    assert _writes(okta) == [] and okta.reset_urls == {}
    again = connector.execute(account=account, case_type=case_type, case_id=1)
    assert again.snapshot == result.snapshot and _writes(okta) == []


def test_the_user_is_found_by_idp_subject_before_username(connector, okta, dade):
    account = ProtectedAccount(
        external_id="x", username="renamed@example.com", idp_subject=dade["id"]
    )
    assert connector.execute(account=account, case_type="mfa_reset", case_id=1).ok
    assert okta.sent("GET", "/api/v1/users/")[0].path == f"/api/v1/users/{dade['id']}"


def test_execute_refuses_a_user_who_cannot_sign_in(connector, okta, dade, account):
    okta.users[dade["id"]]["status"] = "SUSPENDED"
    result = connector.execute(account=account, case_type="password_reset", case_id=1)
    assert not result.ok and result.detail["code"] == "okta.user_disabled"
    assert "SUSPENDED" in result.error


def test_unlock_snapshots_then_unlocks_once(connector, okta, dade, account):
    okta.users[dade["id"]]["status"] = "LOCKED_OUT"
    result = connector.execute(account=account, case_type="unlock", case_id=2)
    assert result.ok and result.detail == {"changed": True}
    assert result.snapshot.state["status"] == "LOCKED_OUT"
    assert okta.users[dade["id"]]["status"] == "ACTIVE"
    again = connector.execute(account=account, case_type="unlock", case_id=2)
    assert again.ok and again.detail == {"changed": False}
    assert len(okta.sent("POST", "/lifecycle/unlock$")) == 1


def test_other_case_types_are_not_native(connector, account):
    result = connector.execute(account=account, case_type="mailbox_access", case_id=3)
    assert not result.ok and result.detail["code"] == CAPABILITY_MISSING


def test_snapshot_reads_without_writing(connector, okta, dade, account):
    taken = connector.snapshot(account=account, case_type="mfa_reset")
    assert taken.state["methods"][0]["id"] == okta.factors[dade["id"]][0]["id"]
    assert connector.snapshot(account=account, case_type="exception") is None
    assert _writes(okta) == []


# --- the owner's pass -----------------------------------------------------------------------


def test_the_reset_link_goes_only_into_the_pass(connector, okta, dade, account, caplog):
    caplog.set_level(logging.DEBUG)
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    url = okta.reset_urls[dade["id"]]
    assert result.ok and issued.secret == url and issued.usable_once
    assert okta.users[dade["id"]]["status"] == "RECOVERY"
    assert okta.sent("POST", "/reset_password$")[0].arg("sendEmail") == "false"
    token = url.rsplit("/", 1)[-1]
    shown = f"{result!r} {issued!r} {caplog.text}"
    assert token not in shown and "reset_password" in caplog.text  # the call was logged
    revoke_by = datetime.fromisoformat(result.detail["revoke_by"])
    assert timedelta(minutes=59) < revoke_by - datetime.now(UTC) <= timedelta(minutes=60)


def test_a_second_pass_replaces_the_first(connector, okta, dade, account):
    first = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=5
    )
    second = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=5
    )
    assert okta.reset_urls[dade["id"]] == second[1].secret != first[1].secret
    assert first[0].detail["pass_id"] != second[0].detail["pass_id"]


@pytest.mark.parametrize("minutes", [0, 481])
def test_a_pass_lifetime_outside_r31_is_refused_before_okta_is_asked(
    connector, okta, account, minutes
):
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="password_reset", lifetime_minutes=minutes
    )
    assert issued is None and result.detail["code"] == "okta.lifetime_invalid"
    assert okta.requests == []


def test_no_pass_for_a_case_type_that_has_none(connector, okta, account):
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="unlock", lifetime_minutes=60
    )
    assert issued is None and result.detail["code"] == CAPABILITY_MISSING


def test_revoking_an_unused_link_replaces_it_and_keeps_the_user_in_recovery(
    connector, okta, dade, account
):
    _, issued = connector.temporary_pass_issue(
        account=account, case_type="password_reset", lifetime_minutes=30
    )
    for _ in range(2):
        result = connector.revoke_temporary_access(account=account)
        assert result.ok and result.detail == {"reset_link_superseded": True}
        assert okta.reset_urls[dade["id"]] != issued.secret
        assert okta.users[dade["id"]]["status"] == "RECOVERY"


def test_a_link_already_used_leaves_nothing_to_revoke(connector, okta, dade, account):
    connector.temporary_pass_issue(account=account, case_type="mfa_reset", lifetime_minutes=30)
    okta.users[dade["id"]]["status"] = "ACTIVE"  # the owner completed the reset
    result = connector.revoke_temporary_access(account=account)
    assert result.ok and result.detail == {"reset_link_superseded": False}
    assert len(okta.sent("POST", "/reset_password$")) == 1


# --- containment ----------------------------------------------------------------------------


def test_sessions_revoke_ends_sessions_and_oauth_tokens(connector, okta, dade, account):
    okta.give_sessions(dade["id"], sessions=2, oauth_tokens=3)
    assert connector.sessions_revoke(account=account).ok
    assert connector.sessions_revoke(account=account).ok
    assert okta.revocations == [
        {"user": dade["id"], "sessions": 2, "oauth_tokens": 3, "forget_devices": True},
        {"user": dade["id"], "sessions": 0, "oauth_tokens": 0, "forget_devices": True},
    ]


def test_the_lost_factor_is_removed_and_removing_it_again_is_done(connector, okta, dade, account):
    new = okta.add_factor(dade["id"], "signed_nonce")
    lost = next(m for m in connector.methods_list(account=account) if m.kind == "webauthn")
    for _ in range(2):
        result = connector.method_remove(account=account, method=lost)
        assert result.ok and result.detail == {"method_id": lost.id, "kind": "webauthn"}
    assert okta.factors[dade["id"]] == [new]


def test_roles_are_suspended_and_restored_from_the_snapshot(connector, okta, dade, account):
    okta.add_role(dade["id"], "CUSTOM", role="cr0helpdesk", **{"resource-set": "iamgroup1"})
    suspended = connector.roles_suspend(account=account)
    assert suspended.ok and okta.roles[dade["id"]] == []
    held = [(r["role_id"], r["scope"]) for r in suspended.snapshot.state["roles"]]
    assert held == [("ORG_ADMIN", "/"), ("cr0helpdesk", "iamgroup1")]
    again = connector.roles_suspend(account=account)
    assert again.ok and again.snapshot.state["roles"] == []
    assert len(okta.sent("DELETE", "/roles/")) == 2

    for _ in range(2):  # the second finds both held and assigns nothing
        assert connector.roles_restore(account=account, snapshot=suspended.snapshot).ok
    assert sorted(r["type"] for r in okta.roles[dade["id"]]) == ["CUSTOM", "ORG_ADMIN"]
    assert len(okta.sent("POST", "/roles$")) == 2


def test_a_snapshot_without_roles_restores_nothing(connector, okta, account):
    foreign = Snapshot("ext-dade", {"connector": "google_workspace", "roles": []})
    result = connector.roles_restore(account=account, snapshot=foreign)
    assert result.detail["code"] == "okta.snapshot_without_roles" and okta.requests == []


def test_without_a_super_admin_app_roles_stay_manual(okta, app_key, slept, dade, account):
    client = _client(okta, app_key, slept)
    narrow = OktaConnector(
        tenant=TENANT, settings=settings(okta, manage_roles=False), client=client
    )
    result = narrow.roles_suspend(account=account)
    assert result.detail["code"] == CAPABILITY_MISSING and "manage_roles" in result.error
    executed = narrow.execute(account=account, case_type="mfa_reset", case_id=1)
    assert executed.snapshot.state["roles"] is None
    assert okta.sent("GET", "/roles$") == [] and len(okta.roles[dade["id"]]) == 1


# --- the re-establishment window ------------------------------------------------------------


def _me(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "type": "User"}


def _changes(connector, account) -> dict[ChangeKind, Any]:
    since = datetime.now(UTC) - timedelta(minutes=5)
    return {change.kind: change for change in connector.changes_since(account=account, since=since)}


def test_a_factor_enrolled_in_the_window_is_removed(connector, okta, dade, account):
    rogue = okta.add_factor(dade["id"], "token:software:totp")
    okta.log_event(
        "user.mfa.factor.activate",
        actor=_me(dade),
        targets=[_me(dade), {"id": rogue["id"], "type": "AuthenticatorEnrollment"}],
    )
    change = _changes(connector, account)[ChangeKind.MFA_ENROLLED]
    for _ in range(2):
        result = connector.change_undo(account=account, change=change)
        assert result.ok and result.detail["done"] == [f"removed factor {rogue['id']}"]
    assert [f["factorType"] for f in okta.factors[dade["id"]]] == ["webauthn"]


def test_a_changed_recovery_address_is_put_back(connector, okta, dade, account):
    okta.users[dade["id"]]["profile"]["secondEmail"] = "acid.burn@evil.example"
    details = {
        "from": {"secondEmail": "dade@home.example"},
        "to": {"secondEmail": "acid.burn@evil.example"},
    }
    okta.log_event(
        "user.account.update_profile",
        actor=_me(dade),
        targets=[_me(dade) | {"changeDetails": details}],
    )
    change = _changes(connector, account)[ChangeKind.ADDRESS_CHANGED]
    assert connector.change_undo(account=account, change=change).ok
    assert okta.users[dade["id"]]["profile"]["secondEmail"] == "dade@home.example"


def test_a_consent_given_in_the_window_is_withdrawn(connector, okta, dade, account):
    okta.give_consent(dade["id"], "0oaevilmail")
    okta.give_consent(dade["id"], "0oacalendar")
    okta.log_event(
        "app.oauth2.as.consent.grant",
        actor=_me(dade),
        targets=[{"id": "0oaevilmail", "type": "AppInstance", "displayName": "Evil Mail"}],
    )
    change = _changes(connector, account)[ChangeKind.OAUTH_CONSENT]
    result = connector.change_undo(account=account, change=change)
    assert result.ok and result.detail["done"] == ["withdrew the consent to 0oaevilmail"]
    assert okta.consents[dade["id"]] == okta.refresh_tokens[dade["id"]] == {"0oacalendar"}


def test_a_role_granted_in_the_window_is_removed(connector, okta, dade, account):
    okta.roles[dade["id"]] = []
    okta.add_role(dade["id"], "SUPER_ADMIN")
    admin = {"id": "00uadmin", "type": "User"}
    okta.log_event(
        "user.account.privilege.grant",
        actor=admin,
        targets=[_me(dade)],
        debug_data={"privilegeGranted": "Super Organization administrator"},
    )
    change = _changes(connector, account)[ChangeKind.PRIVILEGED_ROLE]
    for _ in range(2):
        assert connector.change_undo(account=account, change=change).ok
    assert okta.roles[dade["id"]] == []


def test_a_role_grant_the_connector_cannot_match_fails_closed(connector, okta, dade, account):
    okta.log_event(
        "user.account.privilege.grant",
        actor={"id": "00uadmin", "type": "User"},
        targets=[_me(dade)],
        debug_data={"privilegeGranted": "Super administrator"},  # the label differs
    )
    change = _changes(connector, account)[ChangeKind.PRIVILEGED_ROLE]
    result = connector.change_undo(account=account, change=change)
    assert not result.ok and result.detail["code"] == "okta.change_target_unknown"
    assert "Super administrator" in result.error and len(okta.roles[dade["id"]]) == 1


@pytest.mark.parametrize("kind", [ChangeKind.MAILBOX_RULE, ChangeKind.DELEGATE_GRANTED])
def test_mail_changes_are_not_okta_s_to_undo(connector, okta, account, kind):
    change = ReportedChange("e1", datetime.now(UTC), kind, "forwarding to evil.example")
    result = connector.change_undo(account=account, change=change)
    assert result.detail["code"] == CAPABILITY_MISSING and "mail system" in result.error
    assert okta.requests == []


# --- revert ---------------------------------------------------------------------------------


def _recovered_by_someone_else(connector, okta, dade, account) -> Snapshot:
    """An mfa_reset run to its end by an impostor: snapshot, their link, their factor, the
    standing role suspended, a role granted to them since."""
    snapshot = connector.execute(account=account, case_type="mfa_reset", case_id=9).snapshot
    connector.temporary_pass_issue(account=account, case_type="mfa_reset", lifetime_minutes=60)
    okta.add_factor(dade["id"], "push")
    connector.roles_suspend(account=account)
    okta.add_role(dade["id"], "APP_ADMIN")
    okta.give_sessions(dade["id"])
    return snapshot


def test_revert_removes_what_came_after_the_snapshot_and_restores_roles(
    connector, okta, dade, account
):
    snapshot = _recovered_by_someone_else(connector, okta, dade, account)
    result = connector.revert(account=account, snapshot=snapshot)
    assert result.ok
    assert [f["factorType"] for f in okta.factors[dade["id"]]] == ["webauthn"]
    assert [r["type"] for r in okta.roles[dade["id"]]] == ["ORG_ADMIN"]
    assert okta.revocations[-1]["sessions"] == 1
    assert result.detail["done"][1:] == [
        "removed Application administrator at /",
        "restored Organization administrator at /",
        "sessions revoked",  # last: no session opened during the revert survives it
    ]
    assert result.detail["not_restored"] == result.detail["not_restorable"] == []

    writes = len(_writes(okta))
    again = connector.revert(account=account, snapshot=snapshot)
    assert again.ok and again.detail["done"] == ["sessions revoked"]
    assert _writes(okta)[writes:] == [f"DELETE /api/v1/users/{dade['id']}/sessions"]


def test_a_revert_runs_every_step_past_a_fault_and_finishes_when_called_again(
    connector, okta, dade, account, slept
):
    """A factor Okta cannot unenrol now does not keep the roles or the sessions (R-34)."""
    snapshot = _recovered_by_someone_else(connector, okta, dade, account)
    push = next(f for f in okta.factors[dade["id"]] if f["factorType"] == "push")
    removal = f"removed push method {push['id']}"
    okta.fail_next("DELETE", "/factors/", 500, {"errorCode": "E0000009"}, times=3)

    cut = connector.revert(account=account, snapshot=snapshot)

    assert not cut.ok and cut.detail["code"] == "okta.unavailable"
    assert [f["step"] for f in cut.detail["failed"]] == [removal]
    assert "1 of 4 steps failed" in cut.error and removal not in cut.detail["done"]
    assert [r["type"] for r in okta.roles[dade["id"]]] == ["ORG_ADMIN"]  # after the fault
    assert okta.revocations[-1]["sessions"] == 1
    assert push in okta.factors[dade["id"]] and len(slept) == 2
    finished = connector.revert(account=account, snapshot=snapshot)
    assert finished.ok and finished.detail["done"] == [removal, "sessions revoked"]
    assert [f["factorType"] for f in okta.factors[dade["id"]]] == ["webauthn"]


def test_revert_says_what_okta_cannot_put_back(connector, okta, dade, account):
    okta.users[dade["id"]]["status"] = "LOCKED_OUT"
    snapshot = connector.execute(account=account, case_type="unlock", case_id=4).snapshot
    okta.factors[dade["id"]] = []  # removed during the recovery
    result = connector.revert(account=account, snapshot=snapshot)
    assert result.ok and [m["kind"] for m in result.detail["not_restorable"]] == ["webauthn"]
    assert len(result.detail["not_restored"]) == 1 and "lock" in result.detail["not_restored"][0]
    assert okta.users[dade["id"]]["status"] == "ACTIVE"


def test_a_user_created_again_under_the_same_login_gets_nothing_back(
    connector, okta, dade, account
):
    snapshot = connector.roles_suspend(account=account).snapshot
    okta.users.pop(dade["id"])
    again = okta.add_user("dade.murphy@example.com", "Dade", "Murphy")
    for result in (
        connector.revert(account=account, snapshot=snapshot),
        connector.roles_restore(account=account, snapshot=snapshot),
    ):
        assert result.detail["code"] == "okta.user_changed" and again["id"] in result.error
    assert okta.roles[again["id"]] == [] and okta.sent("POST", "/roles$") == []


def test_revert_refuses_a_snapshot_it_did_not_take(connector, okta, account):
    result = connector.revert(account=account, snapshot=Snapshot("ext-dade", {"connector": "ldap"}))
    assert result.detail["code"] == "okta.snapshot_foreign" and okta.requests == []


# --- failures -------------------------------------------------------------------------------


def test_a_token_okta_ended_is_renewed_once(connector, okta, dade, account):
    connector.sessions_revoke(account=account)
    okta.end_access_tokens()
    assert connector.sessions_revoke(account=account).ok
    assert len(okta.sent("POST", "^/oauth2/v1/token$")) == 2


def test_a_token_refused_after_renewal_is_an_auth_failure(connector, okta, dade, account):
    okta.fail_next("GET", "/api/v1/users/", 401, {"errorCode": "E0000011"}, times=2)
    result = connector.sessions_revoke(account=account)
    assert (result.ok, result.detail["code"], result.detail["vendor_code"]) == (
        False,
        "okta.auth",
        "E0000011",
    )


def test_a_missing_permission_is_forbidden(connector, okta, dade, account):
    denied = {"errorCode": "E0000006", "errorSummary": "You do not have permission"}
    okta.fail_next("DELETE", "/sessions$", 403, denied)
    result = connector.sessions_revoke(account=account)
    assert (result.detail["code"], result.detail["status"]) == ("okta.forbidden", 403)
    assert "You do not have permission" in result.error


def test_a_user_who_is_gone_is_not_found(connector, okta, account):
    result = connector.method_remove(account=account, method=AuthMethod("opf1", "push"))
    assert (result.detail["code"], result.detail["vendor_code"]) == ("okta.not_found", "E0000007")
    with pytest.raises(VendorError):
        connector.methods_list(account=account)


def test_a_concurrent_role_change_is_a_conflict(connector, okta, dade, account):
    suspended = connector.roles_suspend(account=account)
    busy = {"errorCode": "E0000268", "errorSummary": "Another request is making changes"}
    okta.fail_next("POST", "/roles$", 409, busy)
    result = connector.roles_restore(account=account, snapshot=suspended.snapshot)
    assert (result.detail["code"], result.detail["vendor_code"]) == ("okta.conflict", "E0000268")
    assert okta.roles[dade["id"]] == []


def test_throttling_waits_with_the_injected_sleep(connector, okta, dade, account, slept):
    okta.rate_limit = 2  # a minute's worth: the user read and the sessions call
    assert connector.sessions_revoke(account=account).ok and slept == []
    assert connector.sessions_revoke(account=account).ok  # 429 E0000047, wait, repeat
    assert len(slept) == 1 and 0 < slept[0] <= 60
    assert len(okta.sent("GET", "/api/v1/users/")) == 3 and len(okta.revocations) == 2


def test_throttling_past_the_longest_wait_is_a_throttled_result(
    okta, app_key, slept, dade, account
):
    client = _client(okta, app_key, slept, max_wait=0.001)
    connector = OktaConnector(tenant=TENANT, settings=settings(okta), client=client)
    okta.rate_limit = 1
    result = connector.sessions_revoke(account=account)
    assert result.detail["code"] == "okta.throttled" and slept == []


def test_a_lasting_server_error_issues_no_pass(connector, okta, dade, account):
    okta.fail_next("POST", "/reset_password$", 500, {"errorCode": "E0000009"}, times=3)
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=60
    )
    assert issued is None and result.detail["code"] == "okta.unavailable"
    assert okta.users[dade["id"]]["status"] == "ACTIVE"


def test_a_hang_is_a_timeout(okta, app_key, slept, dade, account):
    client = _client(okta, app_key, slept, timeout=0.3, attempts=2)
    connector = OktaConnector(tenant=TENANT, settings=settings(okta), client=client)
    okta.fail_next("GET", "/factors$", hang_seconds=0.6, times=2)
    result = connector.execute(account=account, case_type="mfa_reset", case_id=1)
    assert not result.ok and result.detail["code"] == "okta.timeout"


# --- credentials and health -----------------------------------------------------------------


def test_the_key_is_read_from_the_named_variable_at_call_time(
    okta, app_key, dade, account, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    connector = OktaConnector(tenant=TENANT, settings=settings(okta))
    missing = connector.sessions_revoke(account=account)
    assert missing.detail["code"] == "okta.credential_missing" and KEY_ENV in missing.error
    monkeypatch.setenv(KEY_ENV, app_key.as_pem(private=True).decode())
    assert connector.sessions_revoke(account=account).ok
    (token,) = okta.sent("POST", "^/oauth2/v1/token$")
    assert token.form()["scope"].split() == [
        "okta.users.manage",
        "okta.roles.manage",
        "okta.logs.read",
    ]
    key_line = app_key.as_pem(private=True).decode().splitlines()[1]
    assert key_line not in caplog.text and "sessions" in caplog.text


def test_a_narrow_app_asks_for_no_role_scope(okta, app_key, dade, account, monkeypatch):
    monkeypatch.setenv(KEY_ENV, app_key.as_pem(private=True).decode())
    connector = OktaConnector(tenant=TENANT, settings=settings(okta, manage_roles=False))
    assert connector.execute(account=account, case_type="mfa_reset", case_id=1).ok
    (token,) = okta.sent("POST", "^/oauth2/v1/token$")
    assert token.form()["scope"].split() == ["okta.users.manage", "okta.logs.read"]


def test_a_key_file_and_an_api_token_are_read_too(
    okta, app_key, dade, account, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "okta.pem"
    key_file.write_text(app_key.as_pem(private=True).decode())
    by_file = settings(okta, private_key_env=None, private_key_file=str(key_file))
    assert OktaConnector(tenant=TENANT, settings=by_file).sessions_revoke(account=account).ok

    monkeypatch.setenv(TOKEN_ENV, API_TOKEN)
    by_token = settings(okta, client_id=None, private_key_env=None, api_token_env=TOKEN_ENV)
    assert OktaConnector(tenant=TENANT, settings=by_token).sessions_revoke(account=account).ok
    assert okta.sent("DELETE", "/sessions$")[-1].headers["authorization"] == f"SSWS {API_TOKEN}"
    assert API_TOKEN not in caplog.text

    gone = settings(okta, private_key_env=None, private_key_file=str(tmp_path / "none.pem"))
    result = OktaConnector(tenant=TENANT, settings=gone).sessions_revoke(account=account)
    assert result.detail["code"] == "okta.credential_missing" and "none.pem" in result.error


def test_a_broken_key_is_reported_without_its_text(okta, dade, account, monkeypatch, caplog):
    monkeypatch.setenv(
        KEY_ENV, "-----BEGIN PRIVATE KEY-----\nnot-really-a-key\n-----END PRIVATE KEY-----"
    )
    result = OktaConnector(tenant=TENANT, settings=settings(okta)).sessions_revoke(account=account)
    assert result.detail["code"] == "okta.credential_invalid" and KEY_ENV in result.error
    assert "not-really-a-key" not in f"{result!r} {caplog.text}"


def test_health_proves_the_credential_with_one_read(connector, okta, app_key, monkeypatch):
    assert connector.health().ok
    assert okta.sent("GET", "/api/v1/users/")[0].path.endswith("vouchsafe-health-probe.invalid")
    okta.fail_next("GET", "/api/v1/users/", 403, {"errorCode": "E0000006"})
    assert not connector.health().ok
    unset = OktaConnector(tenant=TENANT, settings=settings(okta)).health()
    assert not unset.ok and unset.detail.endswith(f"variable {KEY_ENV} is not set or empty.")

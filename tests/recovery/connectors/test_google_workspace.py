"""The Google Workspace connector against the Workspace fake over HTTP: each operation's
outcome read back from the fake's state, each repeated without changing anything more, a revert
that runs every step past a fault and finishes on a second call, every documented failure as a
result, backup codes kept out of results and logs, and the settings validator."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import googleapiclient.http
import pytest

from recovery.connectors.base import CAPABILITY_MISSING, Capability, Snapshot
from recovery.connectors.cloud import AuthMethod, ChangeKind, ReportedChange
from recovery.connectors.google_client import SCOPES, GoogleClient
from recovery.connectors.google_workspace import (
    GoogleWorkspaceConnector,
    validate_google_settings,
)
from recovery.connectors.validation import _Errors
from recovery.connectors.vendor_http import VendorError
from recovery.models import ProtectedAccount
from tenants.models import Tenant
from tests.fakes.google import FakeGoogle

TENANT = Tenant(pk=8, slug="globex", name="Globex")
KEY_ENV = "VOUCHSAFE_TEST_GOOGLE_KEY"
USERS = r"^/admin/directory/v1/users/"
NUM_RETRIES = 2


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """googleapiclient's pauses between retries, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(googleapiclient.http, "time", SimpleNamespace(sleep=pauses.append))
    return pauses


@pytest.fixture
def google(slept):
    with FakeGoogle() as fake:
        fake.key = fake.add_service_account()
        fake.delegate(fake.key["client_id"], *SCOPES)
        fake.add_user("admin@example.com", "Ada Admin", is_admin=True)
        bob = fake.add_user("bob@example.com", "Bob Builder", enrolled_2sv=True)
        fake.add_backup_codes(bob.id, "11112222")
        fake.add_grant(
            bob.id, "42.apps", "Calendar Sync", "https://www.googleapis.com/auth/calendar"
        )
        fake.app_password_id = fake.add_app_password(bob.id, "Thunderbird")
        fake.helpdesk = fake.add_role("_HELP_DESK_ADMIN_ROLE")
        fake.add_role_assignment(bob.id, fake.helpdesk)
        yield fake


def settings(google: FakeGoogle, **overrides: Any) -> dict[str, Any]:
    raw = {
        "admin_email": "admin@example.com",
        "service_account_key_env": KEY_ENV,
        "token_uri": f"{google.url}/token",
        "api_endpoint": google.url,
        **overrides,
    }
    errors = _Errors()
    data = validate_google_settings({k: v for k, v in raw.items() if v is not None}, errors)
    errors.raise_if_any()
    return data


def _client(google: FakeGoogle, **options: Any) -> GoogleClient:
    options = {"api_endpoint": google.url, "timeout": 2.0, "num_retries": NUM_RETRIES, **options}
    return GoogleClient(google.key, "admin@example.com", **options)


def _connector(google: FakeGoogle, *, client_options=None, **overrides) -> GoogleWorkspaceConnector:
    client = _client(google, **(client_options or {}))
    return GoogleWorkspaceConnector(
        tenant=TENANT, settings=settings(google, **overrides), client=client
    )


@pytest.fixture
def connector(google) -> GoogleWorkspaceConnector:
    return _connector(google)


@pytest.fixture
def bob(google):
    return google.user("bob@example.com")


@pytest.fixture
def account() -> ProtectedAccount:
    return ProtectedAccount(external_id="ext-bob", username="bob@example.com", display_name="Bob")


def _writes(google: FakeGoogle) -> list[str]:
    """Every request that could change the customer (all but reads and token requests)."""
    return [
        f"{r.method} {r.path}" for r in google.requests if r.method != "GET" and r.path != "/token"
    ]


# --- settings -------------------------------------------------------------------------------


def test_settings_fill_google_s_defaults_and_keep_only_the_key_s_name():
    errors = _Errors()
    data = validate_google_settings(
        {"admin_email": "admin@example.com", "service_account_key_file": "/etc/vouchsafe/g.json"},
        errors,
    )
    assert errors.fields == {}
    assert data == {
        "admin_email": "admin@example.com",
        "customer_id": "my_customer",
        "service_account_key_file": "/etc/vouchsafe/g.json",
        "service_account_key_env": "",
        "token_uri": "https://oauth2.googleapis.com/token",
        "api_endpoint": "https://admin.googleapis.com",
        "manage_roles": True,
        "manage_delegates": True,
        "gmail_endpoint": "https://gmail.googleapis.com",
    }


KEYS = ("service_account_key_env", "service_account_key_file")
ADMIN = {"admin_email": "a@example.com"}
WITH_KEY = {**ADMIN, KEYS[0]: "K"}


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({KEYS[0]: "K"}, {"admin_email"}),
        ({**WITH_KEY, "admin_email": "not an address"}, {"admin_email"}),
        (ADMIN, set(KEYS)),
        ({**ADMIN, **dict.fromkeys(KEYS, "K")}, set(KEYS)),
        ({**ADMIN, KEYS[0]: '{"type": "service_account"}'}, {KEYS[0]}),
        ({**ADMIN, KEYS[1]: "g.json"}, {KEYS[1]}),
        ({**WITH_KEY, "customer_id": "acme"}, {"customer_id"}),
        ({**WITH_KEY, "token_uri": "http://g.example/token"}, {"token_uri"}),
        ({**WITH_KEY, "api_endpoint": "https://g.example/v1"}, {"api_endpoint"}),
        ({**WITH_KEY, "manage_roles": 1}, {"manage_roles"}),
        ({**WITH_KEY, "private_key": "x"}, {"private_key"}),
    ],
)
def test_settings_problems_are_reported_against_their_setting(raw, fields):
    errors = _Errors()
    validate_google_settings(raw, errors)
    assert set(errors.fields) == fields


# --- capabilities ---------------------------------------------------------------------------


def test_capabilities_leave_out_removing_one_2sv_method_and_passwords(connector, google):
    missing = {Capability.METHODS_REMOVE, Capability.PASSWORD_SET}
    assert connector.capabilities == frozenset(Capability) - missing
    narrow = _connector(google, manage_roles=False)
    assert Capability.ROLES_SUSPEND not in narrow.capabilities


# --- execute --------------------------------------------------------------------------------


@pytest.mark.parametrize("case_type", ["mfa_reset", "temporary_access"])
def test_execute_snapshots_and_creates_no_credential(connector, google, bob, account, case_type):
    result = connector.execute(account=account, case_type=case_type, case_id=1)
    assert result.ok and result.detail == {"changed": False, "next": "temporary_pass"}
    state = result.snapshot.state
    assert (state["user_id"], state["enabled"], state["two_step_enrolled"]) == (bob.id, True, True)
    assert [m["id"] for m in state["methods"]] == [str(google.app_password_id)]
    assert state["oauth_grants"] == ["42.apps"]
    assert [(r["role_name"], r["scope"]) for r in state["roles"]] == [
        ("_HELP_DESK_ADMIN_ROLE", "/")
    ]
    assert google.backup_codes[bob.id] == ["11112222"] and _writes(google) == []
    assert (
        connector.execute(account=account, case_type=case_type, case_id=1).snapshot
        == result.snapshot
    )
    assert _writes(google) == []


def test_a_password_reset_is_not_native_and_says_why(connector, google, account):
    result = connector.execute(account=account, case_type="password_reset", case_id=1)
    assert result.detail["code"] == CAPABILITY_MISSING and "backup codes" in result.error
    issued = connector.temporary_pass_issue(
        account=account, case_type="password_reset", lifetime_minutes=60
    )
    assert issued[1] is None and issued[0].detail["code"] == CAPABILITY_MISSING
    assert google.requests == []


def test_execute_refuses_a_user_without_2sv_or_suspended(connector, google, bob, account):
    bob.enrolled_2sv = False
    result = connector.execute(account=account, case_type="mfa_reset", case_id=1)
    assert (result.ok, result.detail["code"]) == (False, "google_workspace.two_step_off")
    assert result.error.startswith("The user has 2-Step Verification off")
    bob.enrolled_2sv, bob.suspended = True, True
    result = connector.execute(account=account, case_type="temporary_access", case_id=1)
    assert result.detail["code"] == "google_workspace.user_disabled"


def test_unlock_lifts_the_suspension_once(connector, google, bob, account):
    bob.suspended = True
    result = connector.execute(account=account, case_type="unlock", case_id=2)
    assert result.ok and result.detail == {"changed": True}
    assert result.snapshot.state["enabled"] is False and bob.suspended is False
    again = connector.execute(account=account, case_type="unlock", case_id=2)
    assert again.detail == {"changed": False} and len(google.sent("PUT", USERS)) == 1


def test_the_user_is_found_by_idp_subject_before_username(connector, google, bob):
    account = ProtectedAccount(external_id="x", username="robert@example.com", idp_subject=bob.id)
    assert connector.execute(account=account, case_type="mfa_reset", case_id=1).ok
    assert google.sent("GET", USERS)[0].path == f"/admin/directory/v1/users/{bob.id}"


# --- the owner's pass -----------------------------------------------------------------------


def test_backup_codes_go_only_into_the_pass(connector, google, bob, account, caplog):
    caplog.set_level(logging.DEBUG)
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=120
    )
    codes = google.backup_codes[bob.id]
    assert result.ok and issued.secret.split(" ") == codes and "11112222" not in codes
    assert issued.usable_once and result.detail["codes"] == 10
    shown = f"{result!r} {issued!r} {caplog.text}"
    assert not any(code in shown for code in codes)
    assert "verificationCodes" in caplog.text  # the calls were logged, their answers not
    revoke_by = datetime.fromisoformat(result.detail["revoke_by"])
    assert timedelta(minutes=119) < revoke_by - datetime.now(UTC) <= timedelta(minutes=120)


def test_a_second_pass_replaces_the_first(connector, google, bob, account):
    first = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=5
    )
    second = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=5
    )
    assert google.backup_codes[bob.id] == second[1].secret.split(" ")
    assert not set(first[1].secret.split(" ")) & set(google.backup_codes[bob.id])


@pytest.mark.parametrize("minutes", [0, 481])
def test_a_pass_lifetime_outside_r31_is_refused(connector, google, account, minutes):
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="mfa_reset", lifetime_minutes=minutes
    )
    assert issued is None and result.detail["code"] == "google_workspace.lifetime_invalid"
    assert google.requests == []


def test_revoking_the_pass_invalidates_the_backup_codes(connector, google, bob, account):
    connector.temporary_pass_issue(account=account, case_type="mfa_reset", lifetime_minutes=60)
    for _ in range(2):
        result = connector.revoke_temporary_access(account=account)
        assert result.ok and result.detail == {"backup_codes_invalidated": True}
        assert bob.id not in google.backup_codes


# --- containment ----------------------------------------------------------------------------


def test_sessions_revoke_signs_out_and_deletes_grants_and_app_passwords(
    connector, google, bob, account
):
    first = connector.sessions_revoke(account=account)
    assert first.ok and first.detail == {
        "done": [
            "revoked the OAuth grant of 42.apps",
            f"removed app_password method {google.app_password_id}",
            "signed out",
        ],
        "failed": [],
    }
    assert google.signed_out == [bob.id] and google.grants[bob.id] == {}
    assert google.app_passwords[bob.id] == {}
    again = connector.sessions_revoke(account=account)
    assert again.detail["done"] == ["signed out"]
    assert len(google.sent("DELETE", USERS)) == 2


def test_methods_are_app_passwords_and_a_2sv_method_cannot_be_removed(
    connector, google, bob, account
):
    (method,) = connector.methods_list(account=account)
    assert (method.kind, method.label) == ("app_password", "Thunderbird")
    for _ in range(2):
        assert connector.method_remove(account=account, method=method).ok
    assert google.app_passwords[bob.id] == {}
    phone = AuthMethod(id="phone-1", kind="phone")
    refused = connector.method_remove(account=account, method=phone)
    assert refused.detail["code"] == CAPABILITY_MISSING and "turns 2SV off" in refused.error


def test_roles_are_suspended_and_restored_from_the_snapshot(connector, google, bob, account):
    groups = google.add_role("_GROUPS_ADMIN_ROLE")
    google.add_role_assignment(bob.id, groups, org_unit_id="03ph8a2z")
    suspended = connector.roles_suspend(account=account)
    assert suspended.ok and google.role_assignments == {}
    held = [(r["role_name"], r["scope"]) for r in suspended.snapshot.state["roles"]]
    assert held == [("_HELP_DESK_ADMIN_ROLE", "/"), ("_GROUPS_ADMIN_ROLE", "03ph8a2z")]
    assert connector.roles_suspend(account=account).snapshot.state["roles"] == []

    for _ in range(2):
        assert connector.roles_restore(account=account, snapshot=suspended.snapshot).ok
    restored = sorted(
        (a["roleId"], a.get("orgUnitId", "")) for a in google.role_assignments.values()
    )
    assert restored == sorted([(google.helpdesk, ""), (groups, "03ph8a2z")])


def test_without_the_role_scope_roles_stay_manual(google, bob, account):
    narrow = _connector(google, manage_roles=False)
    assert narrow.roles_suspend(account=account).detail["code"] == CAPABILITY_MISSING
    executed = narrow.execute(account=account, case_type="mfa_reset", case_id=1)
    assert executed.snapshot.state["roles"] is None
    assert google.sent("GET", "/roleassignments") == [] and len(google.role_assignments) == 1


# --- the re-establishment window ------------------------------------------------------------


def _change(connector, account, kind: ChangeKind) -> ReportedChange:
    since = datetime.now(UTC) - timedelta(minutes=5)
    changes = connector.changes_since(account=account, since=since)
    return next(change for change in changes if change.kind == kind)


def test_a_2sv_enrolment_in_the_window_turns_2sv_off_and_signs_out(connector, google, bob, account):
    google.add_activity("login", "bob@example.com", "2sv_enroll")
    change = _change(connector, account, ChangeKind.MFA_ENROLLED)
    for _ in range(2):
        result = connector.change_undo(account=account, change=change)
        assert result.ok and result.detail["done"] == [
            "2-Step Verification turned off",
            "signed out",
        ]
    assert bob.enrolled_2sv is False and google.signed_out == [bob.id, bob.id]


def test_a_consent_in_the_window_is_revoked(connector, google, bob, account):
    google.add_grant(bob.id, "666.apps", "Evil Mail", "https://mail.google.com/")
    params = {
        "client_id": "666.apps",
        "app_name": "Evil Mail",
        "scope": ["https://mail.google.com/"],
    }
    google.add_activity("token", "bob@example.com", "authorize", parameters=params)
    change = _change(connector, account, ChangeKind.OAUTH_CONSENT)
    for _ in range(2):
        assert connector.change_undo(account=account, change=change).ok
    assert list(google.grants[bob.id]) == ["42.apps"]


def test_a_role_assigned_in_the_window_is_removed(connector, google, bob, account):
    seed = google.add_role("_SEED_ADMIN_ROLE", super_admin=True)
    google.add_role_assignment(bob.id, seed)
    event = {"USER_EMAIL": "bob@example.com", "ROLE_NAME": "_SEED_ADMIN_ROLE"}
    google.add_activity("admin", "admin@example.com", "ASSIGN_ROLE", parameters=event)
    change = _change(connector, account, ChangeKind.PRIVILEGED_ROLE)
    for _ in range(2):
        assert connector.change_undo(account=account, change=change).ok
    assert [a["roleId"] for a in google.role_assignments.values()] == [google.helpdesk]


@pytest.mark.parametrize(
    ("event", "kind", "reason"),
    [
        ("recovery_email_edit", ChangeKind.ADDRESS_CHANGED, "no previous recovery address"),
        ("email_forwarding_out_of_domain", ChangeKind.MAILBOX_RULE, "Gmail setting"),
    ],
)
def test_changes_google_cannot_undo_stay_manual_with_the_reason(
    connector, google, account, event, kind, reason
):
    google.add_activity("login", "bob@example.com", event)
    change = _change(connector, account, kind)
    result = connector.change_undo(account=account, change=change)
    assert result.detail["code"] == CAPABILITY_MISSING and reason in result.error
    assert _writes(google) == []


# --- revert ---------------------------------------------------------------------------------


def _recovered_by_someone_else(connector, google, bob, account) -> Snapshot:
    """A suspended account unlocked for an impostor, who then added a grant and an app
    password; the standing role suspended, another granted since."""
    bob.suspended = True
    snapshot = connector.execute(account=account, case_type="unlock", case_id=9).snapshot
    google.add_grant(bob.id, "666.apps", "Evil Mail", "https://mail.google.com/")
    google.add_app_password(bob.id, "evil imap")
    connector.roles_suspend(account=account)
    google.add_role_assignment(bob.id, google.add_role("_SEED_ADMIN_ROLE", super_admin=True))
    return snapshot


def test_revert_contains_and_restores_what_the_snapshot_had(connector, google, bob, account):
    snapshot = _recovered_by_someone_else(connector, google, bob, account)
    result = connector.revert(account=account, snapshot=snapshot)
    assert result.ok and bob.suspended is True
    assert google.grants[bob.id] == {} and google.app_passwords[bob.id] == {}
    assert bob.id not in google.backup_codes and google.signed_out == [bob.id]
    assert [a["roleId"] for a in google.role_assignments.values()] == [google.helpdesk]
    assert {"removed _SEED_ADMIN_ROLE at /", "account disabled"} <= set(result.detail["done"])
    assert result.detail["done"][-1] == "signed out"  # last: no session outlives the revert
    assert len(result.detail["not_restored"]) == 1  # the 2SV methods: reviewed by a person

    again = connector.revert(account=account, snapshot=snapshot)
    assert again.ok and again.detail["done"] == ["backup codes invalidated", "signed out"]
    assert len(google.sent("POST", "/roleassignments$")) == 1


def test_a_revert_runs_every_step_past_a_fault_and_finishes_when_called_again(
    connector, google, bob, account, slept
):
    """A grant Google cannot delete now does not keep the roles, the suspension or the
    sessions (R-34)."""
    snapshot = _recovered_by_someone_else(connector, google, bob, account)
    google.fail_with("DELETE", "/tokens/42.apps$", 503, "backendError", times=NUM_RETRIES + 1)

    cut = connector.revert(account=account, snapshot=snapshot)

    assert not cut.ok and cut.detail["code"] == "google_workspace.unavailable"
    assert [f["step"] for f in cut.detail["failed"]] == ["revoked the OAuth grant of 42.apps"]
    assert list(google.grants[bob.id]) == ["42.apps"] and len(slept) == NUM_RETRIES
    # every step after the failed one ran
    assert google.app_passwords[bob.id] == {} and bob.id not in google.backup_codes
    assert [a["roleId"] for a in google.role_assignments.values()] == [google.helpdesk]
    assert bob.suspended is True and google.signed_out == [bob.id]
    finished = connector.revert(account=account, snapshot=snapshot)
    assert finished.ok and finished.detail["done"][0] == "revoked the OAuth grant of 42.apps"
    assert google.grants[bob.id] == {}


def test_a_user_created_again_under_the_same_address_gets_nothing_back(
    connector, google, bob, account
):
    snapshot = connector.execute(account=account, case_type="mfa_reset", case_id=1).snapshot
    google.users.pop(bob.id)
    again = google.add_user("bob@example.com", "Bob Again", enrolled_2sv=True)
    result = connector.revert(account=account, snapshot=snapshot)
    assert result.detail["code"] == "google_workspace.user_changed" and again.id in result.error
    assert _writes(google) == []


def test_revert_refuses_a_snapshot_it_did_not_take(connector, google, account):
    result = connector.revert(account=account, snapshot=Snapshot("ext-bob", {"connector": "okta"}))
    assert result.detail["code"] == "google_workspace.snapshot_foreign" and google.requests == []


# --- failures -------------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once(connector, google, bob, account):
    google.token_lifetime = 600  # google-auth still holds it valid when the fake expires it
    connector.revoke_temporary_access(account=account)
    google.advance(601)
    assert connector.revoke_temporary_access(account=account).ok


def test_a_token_refused_after_a_fresh_one_is_an_auth_failure(connector, google, account):
    google.fail_with("GET", USERS, 401, "authError", "Invalid Credentials", times=2)
    result = connector.sessions_revoke(account=account)
    assert (result.detail["code"], result.detail["vendor_code"]) == (
        "google_workspace.auth",
        "authError",
    )


def test_a_scope_not_delegated_is_forbidden(connector, google, account):
    google.delegation[google.key["client_id"]].discard(SCOPES[2])  # user.security
    result = connector.sessions_revoke(account=account)
    assert (result.detail["code"], result.detail["vendor_code"]) == (
        "google_workspace.forbidden",
        "unauthorized_client",
    )
    assert google.signed_out == []


def test_a_user_who_is_gone_is_not_found(connector, google):
    gone = ProtectedAccount(external_id="x", username="gone@example.com")
    result = connector.sessions_revoke(account=gone)
    assert (result.detail["code"], result.detail["status"]) == ("google_workspace.not_found", 404)
    with pytest.raises(VendorError):
        connector.changes_since(account=gone, since=datetime.now(UTC) - timedelta(hours=1))


def test_a_stale_precondition_is_a_conflict(connector, google, bob, account):
    bob.suspended = True
    google.fail_with("PUT", USERS, 412, "conditionNotMet", "Precondition Failed")
    result = connector.execute(account=account, case_type="unlock", case_id=1)
    assert (result.detail["code"], result.detail["status"]) == ("google_workspace.conflict", 412)
    assert bob.suspended is True


def test_throttling_is_waited_out_with_the_injected_sleep(connector, google, bob, account, slept):
    google.fail_with("POST", "/signOut$", 429, "rateLimitExceeded")
    assert connector.sessions_revoke(account=account).ok
    assert len(slept) == 1 and google.signed_out == [bob.id]
    google.fail_with("POST", "/signOut$", 403, "userRateLimitExceeded", times=NUM_RETRIES + 1)
    result = connector.sessions_revoke(account=account)
    assert result.detail["code"] == "google_workspace.throttled" and len(slept) == 1 + NUM_RETRIES


def test_a_lasting_server_error_issues_no_pass(connector, google, bob, account):
    google.fail_with("POST", "/verificationCodes/generate$", 500, "backendError", times=3)
    result, issued = connector.temporary_pass_issue(
        account=account, case_type="temporary_access", lifetime_minutes=60
    )
    assert issued is None and result.detail["code"] == "google_workspace.unavailable"
    assert google.backup_codes[bob.id] == ["11112222"]


def test_a_hang_is_a_timeout(google, account):
    connector = _connector(google, client_options={"timeout": 0.3})
    google.fail_next("GET", USERS, hang_seconds=1.0, times=NUM_RETRIES + 1)
    result = connector.execute(account=account, case_type="mfa_reset", case_id=1)
    assert result.detail["code"] == "google_workspace.timeout"


# --- credentials and health -----------------------------------------------------------------


def test_the_key_is_read_from_the_named_variable_at_call_time(google, bob, account, monkeypatch):
    connector = GoogleWorkspaceConnector(tenant=TENANT, settings=settings(google))
    missing = connector.revoke_temporary_access(account=account)
    assert missing.detail["code"] == "google_workspace.credential_missing"
    assert KEY_ENV in missing.error
    monkeypatch.setenv(KEY_ENV, json.dumps({**google.key, "token_uri": "https://elsewhere/"}))
    assert connector.revoke_temporary_access(account=account).ok  # token_uri from the settings
    assert google.sent("POST", "^/token$")  # the fake's endpoint, not the key file's


def test_a_key_file_is_read_too(google, bob, account, tmp_path):
    key_file = tmp_path / "workspace.json"
    key_file.write_text(json.dumps(google.key))
    by_file = settings(google, service_account_key_env=None, service_account_key_file=str(key_file))
    assert (
        GoogleWorkspaceConnector(tenant=TENANT, settings=by_file)
        .sessions_revoke(account=account)
        .ok
    )


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"type": "service_account"}'])
def test_a_broken_key_is_reported_without_its_text(google, account, monkeypatch, caplog, text):
    monkeypatch.setenv(KEY_ENV, text)
    connector = GoogleWorkspaceConnector(tenant=TENANT, settings=settings(google))
    result = connector.sessions_revoke(account=account)
    assert (
        result.detail["code"] == "google_workspace.credential_invalid" and KEY_ENV in result.error
    )
    assert text not in f"{result!r} {caplog.text}" and google.requests == []


def test_a_private_key_never_reaches_a_result_or_a_log(google, account, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, json.dumps(google.key))
    google.fail_with("GET", USERS, 403, "forbidden", "Not Authorized to access this resource/api")
    connector = GoogleWorkspaceConnector(tenant=TENANT, settings=settings(google))
    result = connector.sessions_revoke(account=account)
    body = google.key["private_key"].splitlines()[1]
    assert not result.ok and body not in f"{result!r} {caplog.text}"


def test_health_reads_the_delegated_administrator(connector, google):
    assert connector.health().ok
    assert google.sent("GET", USERS)[0].params["user_key"] == "admin@example.com"
    google.fail_with("GET", USERS, 403, "forbidden", "Not Authorized to access this resource/api")
    failed = connector.health()
    assert not failed.ok and "Not Authorized" in failed.detail
    unset = GoogleWorkspaceConnector(tenant=TENANT, settings=settings(google)).health()
    assert not unset.ok and unset.detail.endswith(f"variable {KEY_ENV} is not set or empty.")

"""GoogleClient (Google's own client library) against the Google Workspace fake: every
operation, and every documented failure turned into its `VendorError` kind."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import googleapiclient.http
import pytest

from recovery.connectors.cloud import ChangeKind
from recovery.connectors.google_client import (
    AUDIT_READONLY,
    ROLE_MANAGEMENT,
    SCOPES,
    USER,
    USER_READONLY,
    USER_SECURITY,
    GoogleClient,
)
from recovery.connectors.vendor_http import VendorError
from tests.fakes.base import free_port
from tests.fakes.google import FakeGoogle

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
        fake.add_user("bob@example.com", "Bob Builder")
        yield fake


def _client(google, **options) -> GoogleClient:
    options = {"api_endpoint": google.url, "timeout": 2.0, "num_retries": NUM_RETRIES, **options}
    return GoogleClient(google.key, "admin@example.com", **options)


@pytest.fixture
def client(google) -> GoogleClient:
    return _client(google)


def _failure(call, *args) -> VendorError:
    with pytest.raises(VendorError) as caught:
        call(*args)
    return caught.value


# --- operations ------------------------------------------------------------------------------


def test_user_get_acts_as_the_delegated_admin_with_the_read_only_scope(google, client):
    google.user("bob@example.com").enrolled_2sv = True
    user = client.user_get("bob@example.com")
    bob = google.user("bob@example.com")
    assert (user.id, user.username, user.display_name, user.enabled, user.two_step_enrolled) == (
        bob.id,
        "bob@example.com",
        "Bob Builder",
        True,
        True,
    )
    (token,) = google.tokens.values()
    assert (
        token.scopes == {USER_READONLY} and token.subject_id == google.user("admin@example.com").id
    )


def test_sign_out_and_two_step_turn_off_reach_the_user(google, client):
    bob = google.user("bob@example.com")
    bob.enrolled_2sv = True
    client.sign_out("bob@example.com")
    client.two_step_turn_off(bob.id)
    assert google.signed_out == [bob.id] and bob.enrolled_2sv is False
    assert len(google.sent("POST", r"/signOut$")) == 1
    (token,) = google.tokens.values()
    assert token.scopes == {USER_SECURITY}


def test_backup_codes_are_the_new_set_and_their_secret_is_never_shown(google, client, caplog):
    google.add_backup_codes("bob@example.com", "12345678")
    caplog.set_level(logging.DEBUG)
    passes = client.backup_codes_generate("bob@example.com")
    codes = google.backup_codes[google.user("bob@example.com").id]
    assert [p.secret for p in passes] == codes and "12345678" not in codes
    assert len({p.id for p in passes}) == 10 and all(p.usable_once for p in passes)
    shown = repr(passes) + caplog.text
    assert not any(code in shown for code in codes)


def test_backup_codes_invalidate_leaves_none(google, client):
    google.add_backup_codes("bob@example.com", "12345678")
    client.backup_codes_invalidate("bob@example.com")
    assert google.user("bob@example.com").id not in google.backup_codes


def test_oauth_grants_are_listed_and_a_grant_already_gone_counts_as_deleted(google, client):
    google.add_grant("bob@example.com", "42.apps", "Mail Sync", "https://mail.google.com/")
    (grant,) = client.tokens_list("bob@example.com")
    assert (grant.client_id, grant.display_name, grant.scopes) == (
        "42.apps",
        "Mail Sync",
        ("https://mail.google.com/",),
    )
    client.token_delete("bob@example.com", "42.apps")
    client.token_delete("bob@example.com", "42.apps")  # 404: done
    assert client.tokens_list("bob@example.com") == []
    assert len(google.sent("DELETE", r"/tokens/42\.apps$")) == 2


def test_app_passwords_are_listed_as_auth_methods_and_deleted(google, client):
    code_id = google.add_app_password("bob@example.com", "Thunderbird")
    (method,) = client.app_passwords_list("bob@example.com")
    assert (method.id, method.kind, method.label) == (str(code_id), "app_password", "Thunderbird")
    assert abs(method.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    client.app_password_delete("bob@example.com", method.id)
    client.app_password_delete("bob@example.com", method.id)  # 404: done
    assert google.app_passwords[google.user("bob@example.com").id] == {}


def test_password_change_required_sends_only_that_field_with_the_user_scope(google, client):
    client.password_change_required("bob@example.com")
    assert google.user("bob@example.com").change_password_at_next_login is True
    (update,) = google.sent("PUT", USERS)
    assert update.json() == {"changePasswordAtNextLogin": True}
    (token,) = google.tokens.values()
    assert token.scopes == {USER}


def test_a_suspension_is_lifted_and_set_with_the_user_scope(google, client):
    bob = google.user("bob@example.com")
    bob.suspended = True
    client.suspended_set("bob@example.com", False)
    assert bob.suspended is False
    client.suspended_set(bob.id, True)
    assert bob.suspended is True
    assert [r.json() for r in google.sent("PUT", USERS)] == [
        {"suspended": False},
        {"suspended": True},
    ]
    (token,) = google.tokens.values()
    assert token.scopes == {USER}


# --- admin roles -----------------------------------------------------------------------------


def test_role_assignments_are_listed_with_role_names_across_pages(google, client):
    google.page_size = 1
    helpdesk = google.add_role("_HELP_DESK_ADMIN_ROLE")
    groups = google.add_role("_GROUPS_ADMIN_ROLE")
    first = google.add_role_assignment("bob@example.com", helpdesk)
    second = google.add_role_assignment("bob@example.com", groups, org_unit_id="03ph8a2z")
    google.add_role_assignment("admin@example.com", helpdesk)
    found = client.role_assignments_list("bob@example.com")
    assert [(a.id, a.role_name, a.scope) for a in found] == [
        (first, "_HELP_DESK_ADMIN_ROLE", "/"),
        (second, "_GROUPS_ADMIN_ROLE", "03ph8a2z"),
    ]
    listed = google.sent("GET", r"/roleassignments$")
    assert len(listed) == 2 and listed[1].arg("pageToken")


def test_a_role_assignment_made_twice_answers_the_existing_one(google, client):
    role = google.add_role("_USER_MANAGEMENT_ADMIN_ROLE")
    bob = google.user("bob@example.com")
    made = client.role_assignment_create(bob.id, role, scope="03ph8a2z")
    again = client.role_assignment_create(bob.id, role, scope="03ph8a2z")
    assert again == made and made.role_name == "_USER_MANAGEMENT_ADMIN_ROLE"
    assert [a["orgUnitId"] for a in google.role_assignments.values()] == ["03ph8a2z"]
    assert len(google.sent("POST", r"/roleassignments$")) == 2
    (token,) = google.tokens.values()
    assert token.scopes == {ROLE_MANAGEMENT}


def test_a_role_assignment_already_gone_counts_as_deleted(google, client):
    role = google.add_role("_HELP_DESK_ADMIN_ROLE")
    assignment = google.add_role_assignment("bob@example.com", role)
    client.role_assignment_delete(assignment)
    client.role_assignment_delete(assignment)  # 404: done
    assert google.role_assignments == {}


# --- the re-establishment window -------------------------------------------------------------


def test_changes_since_maps_reported_activities_to_r35_kinds_across_pages(google, client):
    google.page_size = 1
    since = datetime.now(UTC) - timedelta(hours=1)
    google.add_activity("login", "bob@example.com", "2sv_enroll", at=since - timedelta(hours=2))
    google.add_activity("login", "bob@example.com", "login_success")
    google.add_activity("login", "carol@example.com", "recovery_phone_edit")
    google.add_activity(
        "login", "bob@example.com", "recovery_email_edit", at=since + timedelta(minutes=5)
    )
    google.add_activity(
        "login", "bob@example.com", "passkey_enrolled", event_type="account_warning"
    )
    google.add_activity(
        "login",
        "bob@example.com",
        "email_forwarding_out_of_domain",
        parameters={"email_forwarding_destination_address": "x@evil.example"},
    )
    google.add_activity(
        "token",
        "bob@example.com",
        "authorize",
        parameters={"client_id": "42.apps", "app_name": "Mail Sync", "scope": ["mail"]},
    )
    role_event = {"USER_EMAIL": "bob@example.com", "ROLE_NAME": "_SEED_ADMIN_ROLE"}
    google.add_activity("admin", "admin@example.com", "ASSIGN_ROLE", parameters=role_event)
    other = {"USER_EMAIL": "carol@example.com", "ROLE_NAME": "_SEED_ADMIN_ROLE"}
    google.add_activity("admin", "admin@example.com", "ASSIGN_ROLE", parameters=other)

    changes = client.changes_since("bob@example.com", since)

    assert changes[0].kind == ChangeKind.ADDRESS_CHANGED
    assert sorted(change.kind for change in changes) == sorted(
        [
            ChangeKind.ADDRESS_CHANGED,
            ChangeKind.MFA_ENROLLED,
            ChangeKind.MAILBOX_RULE,
            ChangeKind.OAUTH_CONSENT,
            ChangeKind.PRIVILEGED_ROLE,
        ]
    )
    by_kind = {change.kind: change for change in changes}
    assert by_kind[ChangeKind.OAUTH_CONSENT].target["client_id"] == "42.apps"
    assert by_kind[ChangeKind.PRIVILEGED_ROLE].target["ROLE_NAME"] == "_SEED_ADMIN_ROLE"
    forwarding = by_kind[ChangeKind.MAILBOX_RULE].target
    assert forwarding["email_forwarding_destination_address"] == "x@evil.example"
    assert len({change.id for change in changes}) == len(changes)
    assert [change.at for change in changes] == sorted(change.at for change in changes)
    assert len(google.sent("GET", r"/applications/login$")) > 1  # followed nextPageToken
    (token,) = google.tokens.values()
    assert token.scopes == {AUDIT_READONLY}


def test_a_window_starting_in_the_future_is_rejected(client):
    later = datetime.now(UTC) + timedelta(hours=1)
    failure = _failure(client.changes_since, "bob@example.com", later)
    assert (failure.kind, failure.status, failure.code) == ("rejected", 400, "invalid")


# --- failures --------------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once_then_the_call_succeeds(google, client):
    google.token_lifetime = 600  # google-auth still holds it valid when the fake expires it
    client.user_get("bob@example.com")
    google.advance(601)
    assert client.user_get("bob@example.com").username == "bob@example.com"
    assert len(google.sent("POST", r"^/token$")) == 2
    bearers = [r.headers["authorization"] for r in google.sent("GET", USERS)]
    assert len(bearers) == 3 and bearers[0] == bearers[1] != bearers[2]


def test_a_token_refused_again_after_a_fresh_one_is_auth(google, client):
    google.fail_with("GET", USERS, 401, "authError", "Invalid Credentials", times=2)
    failure = _failure(client.user_get, "bob@example.com")
    assert (failure.kind, failure.status, failure.code) == ("auth", 401, "authError")
    assert len(google.sent("POST", r"^/token$")) == 2 and len(google.sent("GET", USERS)) == 2


def test_a_missing_permission_is_forbidden_and_not_repeated(google, client, slept):
    google.fail_with("POST", r"/signOut$", 403, "insufficientPermissions")
    failure = _failure(client.sign_out, "bob@example.com")
    assert (failure.kind, failure.code) == ("forbidden", "insufficientPermissions")
    assert len(google.sent("POST", r"/signOut$")) == 1 and slept == []


def test_a_delegated_admin_who_is_no_administrator_is_forbidden(google):
    client = GoogleClient(google.key, "bob@example.com", api_endpoint=google.url)
    failure = _failure(client.user_get, "bob@example.com")
    assert (failure.kind, failure.status, failure.code) == ("forbidden", 403, "forbidden")


def test_a_scope_not_delegated_turns_off_only_the_operations_that_need_it(google, client):
    google.delegation[google.key["client_id"]].discard(ROLE_MANAGEMENT)
    failure = _failure(client.role_assignments_list, "bob@example.com")
    assert (failure.kind, failure.code) == ("forbidden", "unauthorized_client")
    assert google.sent("GET", r"/roleassignments") == []
    assert client.user_get("bob@example.com").username == "bob@example.com"


def test_a_user_who_is_gone_is_not_found(client):
    failure = _failure(client.sign_out, "gone@example.com")
    assert (failure.kind, failure.status, failure.code) == ("not_found", 404, "notFound")


def test_a_stale_precondition_is_a_conflict(google, client):
    google.fail_with("PUT", USERS, 412, "conditionNotMet", "Precondition Failed")
    failure = _failure(client.password_change_required, "bob@example.com")
    assert (failure.kind, failure.status) == ("conflict", 412)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded"), (503, "backendError")],
)
def test_throttling_and_server_errors_are_retried_by_the_library(
    google, client, slept, status, reason
):
    google.fail_with("GET", USERS, status, reason)
    assert client.user_get("bob@example.com").username == "bob@example.com"
    assert len(google.sent("GET", USERS)) == 2 and len(slept) == 1


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (429, "rateLimitExceeded", "throttled"),
        (403, "rateLimitExceeded", "throttled"),
        (403, "userRateLimitExceeded", "throttled"),
        (500, "backendError", "unavailable"),
    ],
)
def test_throttling_or_errors_past_the_retries_give_up_with_their_kind(
    google, client, slept, status, reason, kind
):
    google.fail_with("GET", USERS, status, reason, times=NUM_RETRIES + 1)
    failure = _failure(client.user_get, "bob@example.com")
    assert (failure.kind, failure.status, failure.code) == (kind, status, reason)
    assert len(google.sent("GET", USERS)) == NUM_RETRIES + 1 and len(slept) == NUM_RETRIES


def test_one_hang_is_retried_and_hangs_past_the_retries_are_a_timeout(google, slept):
    client = _client(google, timeout=0.3)
    google.fail_next("GET", USERS, hang_seconds=1.0)
    assert client.user_get("bob@example.com").username == "bob@example.com"
    google.fail_next("GET", USERS, hang_seconds=1.0, times=NUM_RETRIES + 1)
    failure = _failure(client.user_get, "bob@example.com")
    assert (failure.kind, failure.status) == ("timeout", None)
    assert len(slept) == 1 + NUM_RETRIES


def test_an_endpoint_that_refuses_connections_is_unavailable(google, slept):
    client = _client(google, api_endpoint=f"http://127.0.0.1:{free_port()}")
    failure = _failure(client.user_get, "bob@example.com")
    assert (failure.kind, failure.status) == ("unavailable", None)
    assert len(slept) == NUM_RETRIES

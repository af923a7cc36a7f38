"""The Google Workspace fake against Google's documented behaviour: the service-account
JWT-bearer grant with domain-wide delegation, the Directory API methods the connector uses,
the Reports API activity list, and Google's error shape."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .google import (
    AUDIT_READONLY,
    GMAIL_SHARING,
    JWT_BEARER,
    ROLES,
    TOKEN_AUDIENCE,
    USER,
    USER_READONLY,
    USER_SECURITY,
    FakeGoogle,
)

DIRECTORY = "/admin/directory/v1"
ALL_SCOPES = (USER, USER_READONLY, USER_SECURITY, ROLES, AUDIT_READONLY)


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def key(google):
    """A service account whose client id holds every scope the connector uses."""
    info = google.add_service_account()
    google.delegate(info["client_id"], *ALL_SCOPES)
    google.add_user("admin@example.com", "Ada Admin", is_admin=True)
    return info


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _assertion(info: dict, private_key_pem: str | None = None, **claims) -> str:
    """An RS256 JWT as a service account signs it for the token endpoint."""
    now = int(time.time())
    payload = {
        "iss": info["client_email"],
        "sub": "admin@example.com",
        "scope": USER_READONLY,
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signer = serialization.load_pem_private_key(
        (private_key_pem or info["private_key"]).encode(), password=None
    )
    signature = signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _grant(google, assertion: str) -> requests.Response:
    return requests.post(
        f"{google.url}/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        timeout=5,
    )


def _token(google, key, *scopes: str, sub: str = "admin@example.com") -> str:
    answer = _grant(google, _assertion(key, scope=" ".join(scopes or ALL_SCOPES), sub=sub))
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def _call(
    google, token: str, method: str, path: str, headers: dict | None = None, **kwargs
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    return requests.request(method, f"{google.url}{path}", headers=headers, timeout=5, **kwargs)


def _error(answer: requests.Response) -> tuple[int, str, str]:
    error = answer.json()["error"]
    assert error["code"] == answer.status_code and error["errors"][0]["domain"] == "global"
    return answer.status_code, error["errors"][0]["reason"], error["status"]


# --- the token endpoint -----------------------------------------------------------------------


def test_a_signed_assertion_for_delegated_scopes_gets_a_bearer_token_for_an_hour(google, key):
    answer = _grant(google, _assertion(key, scope=f"{USER_READONLY} {USER_SECURITY}"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    issued = google.tokens[body["access_token"]]
    assert issued.scopes == {USER_READONLY, USER_SECURITY} and issued.client_id == key["client_id"]
    assert issued.subject_id == google.user("admin@example.com").id


def test_a_scope_not_granted_domain_wide_is_unauthorized_client(google, key):
    google.delegation[key["client_id"]] = {USER_READONLY}
    answer = _grant(google, _assertion(key, scope=f"{USER_READONLY} {ROLES}"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized_client"


def _other_key() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"private_key_pem": "other"}, 400, "invalid_grant"),  # not signed by the account's key
        ({"aud": "https://example.com/token"}, 400, "invalid_grant"),
        ({"exp_after": 7200}, 400, "invalid_grant"),  # longer than an hour
        ({"sub": "nobody@example.com"}, 400, "invalid_grant"),
        ({"iss": "stranger@example.iam.gserviceaccount.com"}, 401, "invalid_client"),
    ],
)
def test_a_bad_assertion_is_refused(google, key, change, status, error):
    claims = dict(change)
    if claims.pop("private_key_pem", None):
        claims["private_key_pem"] = _other_key()
    if "exp_after" in claims:
        claims["exp"] = int(time.time()) + claims.pop("exp_after")
    answer = _grant(google, _assertion(key, **claims))
    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_an_assertion_expired_on_the_fakes_clock_is_refused(google, key):
    assertion = _assertion(key)
    google.advance(3600 + 600)
    assert _grant(google, assertion).json()["error"] == "invalid_grant"


def test_another_grant_type_is_unsupported(google, key):
    answer = requests.post(
        f"{google.url}/token", data={"grant_type": "client_credentials"}, timeout=5
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "unsupported_grant_type")


# --- bearer tokens on the Admin SDK ----------------------------------------------------------


def test_no_token_or_an_expired_one_is_401_auth_error(google, key):
    google.add_user("bob@example.com")
    path = f"{DIRECTORY}/users/bob@example.com"
    assert _error(_call(google, "forged", "GET", path)) == (401, "authError", "UNAUTHENTICATED")
    token = _token(google, key)
    assert _call(google, token, "GET", path).status_code == 200
    google.advance(3600)
    answer = _call(google, token, "GET", path)
    assert _error(answer)[:2] == (401, "authError")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_without_the_methods_scope_is_403_insufficient_permissions(google, key):
    google.add_user("bob@example.com")
    token = _token(google, key, USER_READONLY)
    answer = _call(google, token, "POST", f"{DIRECTORY}/users/bob@example.com/signOut")
    assert _error(answer) == (403, "insufficientPermissions", "PERMISSION_DENIED")
    assert google.signed_out == []


def test_a_delegated_subject_who_is_no_admin_is_403_forbidden(google, key):
    google.add_user("bob@example.com")
    token = _token(google, key, sub="bob@example.com")
    answer = _call(google, token, "GET", f"{DIRECTORY}/users/bob@example.com")
    assert _error(answer)[:2] == (403, "forbidden")
    assert answer.json()["error"]["message"] == "Not Authorized to access this resource/api"


# --- Directory: users ------------------------------------------------------------------------


@pytest.fixture
def bob(google):
    return google.add_user("bob@example.com", "Bob Builder", aliases=["b@example.com"])


@pytest.mark.parametrize("how", ["primary", "alias", "id"])
def test_users_get_finds_a_user_by_email_alias_or_id(google, key, bob, how):
    user_key = {"primary": "Bob@example.com", "alias": "b@example.com", "id": bob.id}[how]
    answer = _call(google, _token(google, key), "GET", f"{DIRECTORY}/users/{user_key}")
    user = answer.json()
    assert user["kind"] == "admin#directory#user" and user["id"] == bob.id
    assert user["primaryEmail"] == "bob@example.com"
    assert user["name"]["fullName"] == "Bob Builder" and user["suspended"] is False


def test_a_user_who_is_gone_is_404_not_found(google, key):
    answer = _call(google, _token(google, key), "GET", f"{DIRECTORY}/users/gone@example.com")
    assert _error(answer) == (404, "notFound", "NOT_FOUND")


def test_users_update_sets_change_password_at_next_login_and_keeps_the_rest(google, key, bob):
    token = _token(google, key)
    path = f"{DIRECTORY}/users/{bob.id}"
    answer = _call(google, token, "PUT", path, json={"changePasswordAtNextLogin": True})
    assert answer.status_code == 200 and answer.json()["changePasswordAtNextLogin"] is True
    assert bob.change_password_at_next_login is True and bob.full_name == "Bob Builder"
    current = {"If-Match": answer.json()["etag"]}
    assert _call(google, token, "PUT", path, current, json={"suspended": True}).status_code == 200
    stale = _call(google, token, "PUT", path, current, json={"suspended": False})
    assert _error(stale)[:2] == (412, "conditionNotMet") and bob.suspended is True


def test_sign_out_is_recorded_and_two_step_verification_turned_off(google, key, bob):
    bob.enrolled_2sv = True
    token = _token(google, key)
    assert _call(google, token, "POST", f"{DIRECTORY}/users/{bob.id}/signOut").status_code == 204
    turn_off = f"{DIRECTORY}/users/{bob.id}/twoStepVerification/turnOff"
    assert _call(google, token, "POST", turn_off).status_code == 204
    assert google.signed_out == [bob.id] and bob.enrolled_2sv is False


# --- Directory: backup codes, OAuth grants, app passwords ------------------------------------


def test_backup_codes_are_generated_listed_and_invalidated(google, key, bob):
    google.add_backup_codes(bob.id, "11111111")
    token = _token(google, key)
    codes = f"{DIRECTORY}/users/{bob.id}/verificationCodes"
    assert _call(google, token, "POST", f"{codes}/generate").status_code == 204
    listed = _call(google, token, "GET", codes).json()
    assert listed["kind"] == "admin#directory#verificationCodesList"
    values = [item["verificationCode"] for item in listed["items"]]
    assert len(values) == 10 and "11111111" not in values
    assert all(len(value) == 8 and value.isdigit() for value in values)
    assert _call(google, token, "POST", f"{codes}/invalidate").status_code == 204
    assert "items" not in _call(google, token, "GET", codes).json()


def test_oauth_grants_are_listed_and_deleted_once(google, key, bob):
    google.add_grant(
        bob.id, "123.apps.googleusercontent.com", "Mail Sync", "https://mail.google.com/"
    )
    token = _token(google, key)
    tokens = f"{DIRECTORY}/users/{bob.id}/tokens"
    (grant,) = _call(google, token, "GET", tokens).json()["items"]
    assert grant["clientId"] == "123.apps.googleusercontent.com"
    assert grant["displayText"] == "Mail Sync" and grant["userKey"] == bob.id
    path = f"{tokens}/123.apps.googleusercontent.com"
    assert _call(google, token, "DELETE", path).status_code == 204
    assert _error(_call(google, token, "DELETE", path))[:2] == (404, "notFound")
    assert google.grants[bob.id] == {}


def test_app_passwords_are_listed_and_deleted(google, key, bob):
    code_id = google.add_app_password(bob.id, "Thunderbird")
    token = _token(google, key)
    asps = f"{DIRECTORY}/users/{bob.id}/asps"
    (listed,) = _call(google, token, "GET", asps).json()["items"]
    assert listed["codeId"] == code_id and listed["name"] == "Thunderbird"
    assert listed["creationTime"].isdigit()
    assert _call(google, token, "DELETE", f"{asps}/{code_id}").status_code == 204
    assert google.app_passwords[bob.id] == {}


# --- Directory: admin roles ------------------------------------------------------------------


def test_role_assignments_are_listed_by_user_inserted_once_and_deleted(google, key, bob):
    helpdesk = google.add_role("_HELP_DESK_ADMIN_ROLE")
    other = google.add_user("carol@example.com")
    google.add_role_assignment(other.id, helpdesk)
    token = _token(google, key)
    base = f"{DIRECTORY}/customer/my_customer/roleassignments"
    body = {"roleId": helpdesk, "assignedTo": bob.id, "scopeType": "CUSTOMER"}
    created = _call(google, token, "POST", base, json=body).json()
    assert created["kind"] == "admin#directory#roleAssignment" and created["assignedTo"] == bob.id
    assert _error(_call(google, token, "POST", base, json=body))[:2] == (409, "duplicate")
    mine = _call(google, token, "GET", base, params={"userKey": "bob@example.com"}).json()
    assert [item["roleAssignmentId"] for item in mine["items"]] == [created["roleAssignmentId"]]
    path = f"{base}/{created['roleAssignmentId']}"
    assert _call(google, token, "DELETE", path).status_code == 204
    assert _error(_call(google, token, "DELETE", path))[:2] == (404, "notFound")


def test_roles_are_listed_in_pages(google, key):
    names = {google.add_role(name) for name in ("A", "B", "C")}
    token = _token(google, key)
    path = f"{DIRECTORY}/customer/my_customer/roles"
    first = _call(google, token, "GET", path, params={"maxResults": 2}).json()
    assert len(first["items"]) == 2 and first["nextPageToken"]
    params = {"maxResults": 2, "pageToken": first["nextPageToken"]}
    second = _call(google, token, "GET", path, params=params).json()
    assert "nextPageToken" not in second
    assert {item["roleId"] for item in first["items"] + second["items"]} == names
    bad = _call(google, token, "GET", path, params={"pageToken": "invented"})
    assert _error(bad)[:2] == (400, "invalid")


# --- Reports ---------------------------------------------------------------------------------


def test_activities_are_filtered_by_user_time_event_and_parameter_newest_first(google, key, bob):
    start = datetime.now(UTC) - timedelta(hours=2)
    google.add_activity("login", "bob@example.com", "2sv_enroll", at=start - timedelta(hours=1))
    recent = google.add_activity(
        "login", "bob@example.com", "2sv_enroll", at=start + timedelta(hours=1)
    )
    newest = google.add_activity("login", "bob@example.com", "recovery_email_edit")
    google.add_activity("login", "carol@example.com", "2sv_enroll")
    google.add_activity(
        "admin", "admin@example.com", "ASSIGN_ROLE", parameters={"USER_EMAIL": "bob@example.com"}
    )
    google.add_activity(
        "admin", "admin@example.com", "ASSIGN_ROLE", parameters={"USER_EMAIL": "x@example.com"}
    )
    token = _token(google, key)
    reports = "/admin/reports/v1/activity/users"
    params = {"startTime": start.isoformat().replace("+00:00", "Z")}
    login = _call(
        google, token, "GET", f"{reports}/bob@example.com/applications/login", params=params
    )
    assert login.json()["kind"] == "admin#reports#activities"
    assert [a["id"]["uniqueQualifier"] for a in login.json()["items"]] == [newest, recent]
    only = {**params, "eventName": "2sv_enroll"}
    enrolments = _call(google, token, "GET", f"{reports}/{bob.id}/applications/login", params=only)
    assert [a["id"]["uniqueQualifier"] for a in enrolments.json()["items"]] == [recent]
    filtered = {"eventName": "ASSIGN_ROLE", "filters": "USER_EMAIL==bob@example.com"}
    roles = _call(google, token, "GET", f"{reports}/all/applications/admin", params=filtered)
    (activity,) = roles.json()["items"]
    event = activity["events"][0]
    assert event["parameters"] == [{"name": "USER_EMAIL", "value": "bob@example.com"}]
    assert activity["actor"]["email"] == "admin@example.com"


def test_activities_are_paged_with_next_page_token(google, key, bob):
    made = {google.add_activity("token", "bob@example.com", "authorize") for _ in range(3)}
    token = _token(google, key)
    path = "/admin/reports/v1/activity/users/bob@example.com/applications/token"
    seen, params = [], {"maxResults": 1}
    while True:
        page = _call(google, token, "GET", path, params=params).json()
        seen += [activity["id"]["uniqueQualifier"] for activity in page["items"]]
        if "nextPageToken" not in page:
            break
        params = {"maxResults": 1, "pageToken": page["nextPageToken"]}
    assert sorted(seen) == sorted(made) and len(seen) == 3


def test_a_start_time_in_the_future_is_refused(google, key):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    path = "/admin/reports/v1/activity/users/all/applications/login"
    answer = _call(google, _token(google, key), "GET", path, params={"startTime": later})
    assert _error(answer)[:2] == (400, "invalid")


def test_an_injected_failure_has_googles_error_shape(google, key, bob):
    google.fail_with("GET", "/users/", 403, "userRateLimitExceeded", times=1)
    token = _token(google, key)
    first = _call(google, token, "GET", f"{DIRECTORY}/users/{bob.id}")
    assert _error(first) == (403, "userRateLimitExceeded", "PERMISSION_DENIED")
    assert _call(google, token, "GET", f"{DIRECTORY}/users/{bob.id}").status_code == 200


# --- Gmail delegates ------------------------------------------------------------------------

SETTINGS_BASIC = "https://www.googleapis.com/auth/gmail.settings.basic"
DELEGATES = "/gmail/v1/users/{}/settings/delegates"


@pytest.fixture
def mailbox(google, key):
    """A shared mailbox user (no admin) and the service account allowed Gmail's settings."""
    google.delegate(key["client_id"], GMAIL_SHARING, SETTINGS_BASIC)
    google.add_user("alice@example.com", "Alice Able")
    return google.add_user("payroll@example.com", "Payroll")


def test_a_delegate_is_created_accepted_at_once_listed_got_and_deleted(google, key, mailbox):
    token = _token(google, key, GMAIL_SHARING, SETTINGS_BASIC, sub="payroll@example.com")
    path = DELEGATES.format("payroll@example.com")
    created = _call(google, token, "POST", path, json={"delegateEmail": "alice@example.com"})
    assert created.status_code == 200
    assert created.json() == {
        "delegateEmail": "alice@example.com",
        "verificationStatus": "accepted",
    }
    assert google.delegates_of("payroll@example.com") == ["alice@example.com"]
    listed = _call(google, token, "GET", DELEGATES.format("me"))
    assert listed.json()["delegates"] == [created.json()]
    got = _call(google, token, "GET", f"{path}/alice@example.com")
    assert got.status_code == 200 and got.json()["verificationStatus"] == "accepted"
    again = _call(google, token, "POST", path, json={"delegateEmail": "alice@example.com"})
    assert again.status_code == 409
    assert again.json()["error"]["errors"][0]["reason"] == "alreadyExists"
    assert _call(google, token, "DELETE", f"{path}/alice@example.com").status_code == 204
    assert _call(google, token, "DELETE", f"{path}/alice@example.com").status_code == 404
    assert google.delegates_of("payroll@example.com") == []
    assert "delegates" not in _call(google, token, "GET", path).json()  # empty: no key


def test_delegates_are_managed_only_as_the_mailbox_s_own_user(google, key, mailbox):
    as_admin = _token(google, key, GMAIL_SHARING)  # the administrator, not the mailbox
    body = {"delegateEmail": "alice@example.com"}
    answer = _call(google, as_admin, "POST", DELEGATES.format("payroll@example.com"), json=body)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Delegation denied for admin@example.com"
    assert google.delegates_of("payroll@example.com") == []


def test_creating_and_deleting_need_the_sharing_scope(google, key, mailbox):
    basic = _token(google, key, SETTINGS_BASIC, sub="payroll@example.com")
    path = DELEGATES.format("payroll@example.com")
    answer = _call(google, basic, "POST", path, json={"delegateEmail": "alice@example.com"})
    assert answer.status_code == 403
    assert answer.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    assert _call(google, basic, "GET", path).status_code == 200  # reading is allowed


@pytest.mark.parametrize("delegate", ["stranger@elsewhere.example", "payroll@example.com"])
def test_a_delegate_outside_the_workspace_or_the_mailbox_itself_is_invalid(
    google, key, mailbox, delegate
):
    token = _token(google, key, GMAIL_SHARING, sub="payroll@example.com")
    path = DELEGATES.format("payroll@example.com")
    answer = _call(google, token, "POST", path, json={"delegateEmail": delegate})
    assert answer.status_code == 400
    assert answer.json()["error"]["errors"][0]["reason"] == "invalidArgument"

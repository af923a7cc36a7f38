"""GraphClient against the Graph fake: every operation, and the failures Graph documents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from recovery.connectors.cloud import AuthMethod, ChangeKind
from recovery.connectors.graph_client import PERMISSIONS, GraphClient, UserRisk
from recovery.connectors.vendor_http import VendorError
from tests.fakes.base import free_port
from tests.fakes.graph import PASSWORD_METHOD_ID, FakeGraph

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
TAP_PATH = r"/authentication/temporaryAccessPassMethods"


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_path)
        yield fake


@pytest.fixture
def slept() -> list[float]:
    return []


def client_for(graph: FakeGraph, slept: list[float], **options: Any) -> GraphClient:
    settings: dict[str, Any] = {
        "tenant_id": graph.tenant_id,
        "client_id": graph.client_id,
        "client_secret": graph.client_secret,
        "authority_host": graph.url,
        "graph_url": graph.graph_url,
        "sleep": slept.append,
        **options,
    }
    return GraphClient(**settings)


@pytest.fixture
def client(graph: FakeGraph, slept: list[float]) -> GraphClient:
    return client_for(graph, slept)


@pytest.fixture
def ada(graph: FakeGraph) -> str:
    return graph.add_user("ada@contoso.com", "Ada Lovelace")


def token_requests(graph: FakeGraph) -> int:
    return len(graph.sent("POST", r"/oauth2/v2\.0/token$"))


# --- users and sessions --------------------------------------------------------------------


def test_user_get_reads_the_user_by_id_or_principal_name(graph, client, ada):
    graph.users[ada]["accountEnabled"] = False
    user = client.user_get("ada@contoso.com")
    assert (user.id, user.username, user.display_name, user.enabled) == (
        ada,
        "ada@contoso.com",
        "Ada Lovelace",
        False,
    )
    assert client.user_get(ada) == user
    selected = graph.sent("GET", rf"/users/{ada}$")[-1].query["$select"]
    assert "accountEnabled" in selected[0]  # not among Graph's default properties


def test_user_enabled_set_writes_account_enabled_and_a_repeat_changes_nothing(graph, client, ada):
    graph.users[ada]["accountEnabled"] = False
    client.user_enabled_set("ada@contoso.com", True)
    assert graph.users[ada]["accountEnabled"] is True
    client.user_enabled_set(ada, True)
    assert graph.users[ada]["accountEnabled"] is True
    client.user_enabled_set(ada, False)
    assert graph.users[ada]["accountEnabled"] is False
    sent = graph.sent("PATCH", r"/users/")
    assert [r.json() for r in sent] == [{"accountEnabled": v} for v in (True, True, False)]


def test_sessions_revoke_ends_the_users_sessions(graph, client, ada):
    assert client.sessions_revoke(ada) is True
    assert ada in graph.sessions_revoked_at


# --- Temporary Access Pass -----------------------------------------------------------------


def test_temporary_pass_create_answers_the_pass_only_the_create_call_shows(graph, client, ada):
    issued = client.temporary_pass_create(ada, 60, usable_once=True)
    assert issued.secret == graph.pass_values[issued.id]
    assert issued.usable_once is True
    expected_end = graph.now_datetime() + dt.timedelta(minutes=60)
    assert abs((issued.expires_at - expected_end).total_seconds()) < 5
    assert graph.sent("POST", TAP_PATH)[-1].json() == {
        "lifetimeInMinutes": 60,
        "isUsableOnce": True,
    }
    assert issued.secret not in repr(issued)


def test_a_lifetime_above_eight_hours_is_refused_before_calling_graph(graph, client, ada):
    with pytest.raises(ValueError, match="480"):
        client.temporary_pass_create(ada, 481)
    assert graph.sent("POST", TAP_PATH) == []
    assert graph.method_ids(ada) == [PASSWORD_METHOD_ID]


def test_a_lifetime_outside_the_tenants_policy_is_graphs_refusal(graph, client, ada):
    graph.tap_max_minutes = 120
    with pytest.raises(VendorError) as caught:
        client.temporary_pass_create(ada, 240)
    assert (caught.value.kind, caught.value.status, caught.value.code) == (
        "rejected",
        400,
        "badRequest",
    )
    assert "valid range between 60 and 120" in caught.value.message


def test_temporary_pass_delete_removes_it_and_a_second_delete_is_done(graph, client, ada):
    issued = client.temporary_pass_create(ada, 60)
    client.temporary_pass_delete(ada, issued.id)
    assert graph.method_ids(ada) == [PASSWORD_METHOD_ID]
    client.temporary_pass_delete(ada, issued.id)  # 404: already gone
    assert len(graph.sent("DELETE", TAP_PATH)) == 2


# --- authentication methods ----------------------------------------------------------------


def test_methods_list_follows_next_links_and_reads_each_kind(graph, client, ada):
    graph.add_method(ada, "fido2", displayName="Red key")
    graph.add_method(ada, "microsoftAuthenticator", displayName="Pixel 8")
    graph.add_method(ada, "phone", phoneType="mobile", phoneNumber="+1 2065555555")
    graph.add_method(ada, "windowsHelloForBusiness", displayName="Surface")
    graph.page_size = 2
    methods = client.methods_list(ada)
    assert [(m.id, m.kind, m.label) for m in methods] == [
        (PASSWORD_METHOD_ID, "password", ""),
        (graph.method_ids(ada)[1], "fido2", "Red key"),
        (graph.method_ids(ada)[2], "microsoftAuthenticator", "Pixel 8"),
        (graph.method_ids(ada)[3], "phone", "+1 2065555555"),
        (graph.method_ids(ada)[4], "windowsHelloForBusiness", "Surface"),
    ]
    assert [m.phishing_resistant for m in methods] == [False, True, False, False, True]
    assert methods[1].created_at is not None
    assert len(graph.sent("GET", r"/authentication/methods$")) == 3


@pytest.mark.parametrize(
    ("kind", "properties", "collection"),
    [
        ("microsoftAuthenticator", {"displayName": "Pixel"}, "microsoftAuthenticatorMethods"),
        ("phone", {"phoneType": "office"}, "phoneMethods"),
        ("fido2", {"displayName": "Red key"}, "fido2Methods"),
        ("softwareOath", {}, "softwareOathMethods"),
        ("email", {"emailAddress": "ada@example.org"}, "emailMethods"),
        ("windowsHelloForBusiness", {"displayName": "PC"}, "windowsHelloForBusinessMethods"),
    ],
)
def test_method_delete_routes_each_kind_to_its_collection(
    graph, client, ada, kind, properties, collection
):
    graph.add_method(ada, kind, **properties)
    method = next(m for m in client.methods_list(ada) if m.kind == kind)
    client.method_delete(ada, method)
    assert graph.method_ids(ada) == [PASSWORD_METHOD_ID]
    assert graph.sent("DELETE", rf"/authentication/{collection}/")


def test_method_delete_of_a_method_already_gone_is_done(graph, client, ada):
    client.method_delete(ada, AuthMethod(id="gone-already", kind="fido2"))
    assert len(graph.sent("DELETE", r"/fido2Methods/gone-already$")) == 1


def test_method_delete_refuses_a_kind_graph_cannot_delete(graph, client, ada):
    with pytest.raises(ValueError, match="password"):
        client.method_delete(ada, AuthMethod(id=PASSWORD_METHOD_ID, kind="password"))
    assert graph.sent("DELETE", r"/authentication/") == []


def test_the_default_method_is_refused_while_others_remain(graph, client, ada):
    app = graph.add_method(ada, "microsoftAuthenticator", displayName="Pixel")
    graph.add_method(ada, "fido2", displayName="Red key")
    graph.set_default_method(ada, app)
    with pytest.raises(VendorError) as caught:
        client.method_delete(ada, AuthMethod(id=app, kind="microsoftAuthenticator"))
    assert (caught.value.kind, caught.value.code) == ("rejected", "badRequest")
    assert "default method" in caught.value.message
    assert app in graph.method_ids(ada)


# --- directory roles -----------------------------------------------------------------------


def test_role_assignments_list_names_each_role_across_pages(graph, client, ada):
    bob = graph.add_user("bob@contoso.com")
    global_admin = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    user_admin = graph.add_role_assignment(ada, USER_ADMIN, "/administrativeUnits/au-1")
    graph.add_role_assignment(bob, GLOBAL_ADMIN)
    graph.page_size = 1
    held = client.role_assignments_list(ada)
    assert [(a.id, a.role_id, a.role_name, a.scope) for a in held] == [
        (global_admin, GLOBAL_ADMIN, "Global Administrator", "/"),
        (user_admin, USER_ADMIN, "User Administrator", "/administrativeUnits/au-1"),
    ]
    first = graph.sent("GET", r"/roleAssignments$")[0]
    assert first.query["$filter"] == [f"principalId eq '{ada}'"]


def test_role_assignment_delete_removes_it_and_a_second_delete_is_done(graph, client, ada):
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    client.role_assignment_delete(assignment)
    assert assignment not in graph.role_assignments
    client.role_assignment_delete(assignment)
    assert len(graph.sent("DELETE", r"/roleAssignments/")) == 2


def test_role_assignment_create_grants_the_role_back(graph, client, ada):
    restored = client.role_assignment_create(ada, USER_ADMIN, "/")
    stored = graph.role_assignments[restored.id]
    assert (stored["principalId"], stored["roleDefinitionId"], stored["directoryScopeId"]) == (
        ada,
        USER_ADMIN,
        "/",
    )
    assert restored.role_name == "User Administrator"


def test_role_assignment_create_of_an_existing_one_answers_it(graph, client, ada):
    existing = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    answer = client.role_assignment_create(ada, GLOBAL_ADMIN)
    assert (answer.id, answer.role_name) == (existing, "Global Administrator")
    assert list(graph.role_assignments) == [existing]


def test_a_duplicate_refusal_without_a_matching_assignment_is_raised(graph, client, ada):
    conflict = {
        "error": {
            "code": "Request_BadRequest",
            "message": "A conflicting object with one or more of the specified property values "
            "is present in the directory.",
        }
    }
    graph.fail_next("POST", r"/roleAssignments$", 400, conflict)
    with pytest.raises(VendorError) as caught:
        client.role_assignment_create(ada, GLOBAL_ADMIN)
    assert caught.value.code == "Request_BadRequest"


# --- the re-establishment window -----------------------------------------------------------


def test_changes_since_maps_the_audit_log_to_r35_kinds_oldest_first(graph, client, ada):
    since = graph.now_datetime()
    graph.add_audit(
        "Update user", "UserManagement", [{"id": ada}], at=since - dt.timedelta(minutes=1)
    )
    mfa = graph.add_audit(
        "User registered security info",
        "UserManagement",
        [{"id": ada, "type": "User"}],
        initiated_by=ada,
        service="Authentication Methods",
    )
    graph.advance(60)
    role = graph.add_audit(
        "Add member to role",
        "RoleManagement",
        [
            {
                "id": ada,
                "type": "User",
                "modifiedProperties": [
                    {"displayName": "Role.DisplayName", "newValue": '"Global Administrator"'},
                    {"displayName": "Role.TemplateId", "newValue": f'"{GLOBAL_ADMIN}"'},
                ],
            }
        ],
    )
    graph.advance(60)
    consent = graph.add_audit(
        "Consent to application",
        "ApplicationManagement",
        [{"id": "sp-1", "type": "ServicePrincipal", "displayName": "Mail Sync"}],
        initiated_by=ada,
    )
    graph.advance(60)
    address = graph.add_audit(
        "Update user",
        "UserManagement",
        [
            {
                "id": ada,
                "type": "User",
                "modifiedProperties": [
                    {"displayName": "OtherMail", "newValue": '["thief@example.net"]'},
                    {"displayName": "Included Updated Properties", "newValue": '"OtherMail"'},
                ],
            }
        ],
    )
    graph.add_audit(
        "Update user",
        "UserManagement",
        [{"id": ada, "modifiedProperties": [{"displayName": "DisplayName", "newValue": '"A"'}]}],
    )
    graph.add_audit(
        "User registered security info", "UserManagement", [{"id": ada}], result="failure"
    )
    graph.add_audit("Add member to role", "RoleManagement", [{"id": "someone-else"}])

    changes = client.changes_since(ada, since)

    assert [(c.id, c.kind) for c in changes] == [
        (mfa, ChangeKind.MFA_ENROLLED),
        (role, ChangeKind.PRIVILEGED_ROLE),
        (consent, ChangeKind.OAUTH_CONSENT),
        (address, ChangeKind.ADDRESS_CHANGED),
    ]
    assert changes[1].target == {
        "user_id": ada,
        "role_id": GLOBAL_ADMIN,
        "role_name": "Global Administrator",
    }
    assert changes[2].target["service_principal_id"] == "sp-1"
    assert changes[3].target["properties"] == ["OtherMail"]
    assert changes[0].summary == "User registered security info (by ada@contoso.com)"
    assert changes[0].at <= changes[1].at <= changes[2].at <= changes[3].at


def test_changes_since_pages_through_both_reads(graph, client, ada):
    since = graph.now_datetime() - dt.timedelta(seconds=1)
    for _ in range(3):
        graph.add_audit("User registered security info", "UserManagement", [{"id": ada}])
    graph.page_size = 2
    assert len(client.changes_since(ada, since)) == 3
    filters = [r.query["$filter"][0] for r in graph.sent("GET", r"/directoryAudits$")]
    assert any("targetResources/any" in f for f in filters)
    assert any("initiatedBy/user/id" in f for f in filters)


def test_changes_since_needs_an_aware_time(client, ada):
    with pytest.raises(ValueError):
        client.changes_since(ada, dt.datetime(2025, 1, 1))


def test_risk_get_answers_identity_protections_view_or_none(graph, client, ada):
    bob = graph.add_user("bob@contoso.com")
    graph.set_risk(ada, "high", "atRisk")
    risk = client.risk_get(ada)
    assert isinstance(risk, UserRisk) and (risk.level, risk.state) == ("high", "atRisk")
    assert risk.updated_at is not None
    assert client.risk_get(bob) is None


# --- permissions ---------------------------------------------------------------------------


def operations(graph: FakeGraph, ada: str) -> dict[str, Callable[[GraphClient], object]]:
    """Each operation, on a tenant that holds what it acts on."""
    key = graph.add_method(ada, "fido2", displayName="Red key")
    tap = graph.add_method(
        ada,
        "temporaryAccessPass",
        startDateTime="2025-01-01T00:00:00Z",
        lifetimeInMinutes=60,
        isUsableOnce=True,
    )
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.set_risk(ada, "low", "atRisk")
    since = graph.now_datetime() - dt.timedelta(days=1)
    return {
        "user_get": lambda c: c.user_get(ada),
        "user_enabled_set": lambda c: c.user_enabled_set(ada, True),
        "temporary_pass_delete": lambda c: c.temporary_pass_delete(ada, tap),
        "temporary_pass_create": lambda c: c.temporary_pass_create(ada, 60),
        "methods_list": lambda c: c.methods_list(ada),
        "method_delete": lambda c: c.method_delete(ada, AuthMethod(id=key, kind="fido2")),
        "sessions_revoke": lambda c: c.sessions_revoke(ada),
        "role_assignments_list": lambda c: c.role_assignments_list(ada),
        "role_assignment_delete": lambda c: c.role_assignment_delete(assignment),
        "role_assignment_create": lambda c: c.role_assignment_create(ada, USER_ADMIN),
        "changes_since": lambda c: c.changes_since(ada, since),
        "risk_get": lambda c: c.risk_get(ada),
    }


def test_every_operation_works_with_exactly_the_declared_permissions(graph, slept, ada):
    graph.permissions = frozenset(PERMISSIONS.values())
    client = client_for(graph, slept)
    calls = operations(graph, ada)
    assert set(calls) == set(PERMISSIONS)
    for call in calls.values():
        call(client)
    assert len(graph.role_assignments) == 1 and ada in graph.sessions_revoked_at


@pytest.mark.parametrize("operation", sorted(PERMISSIONS))
def test_an_operation_without_its_permission_is_forbidden(graph, slept, ada, operation):
    graph.permissions = frozenset(PERMISSIONS.values()) - {PERMISSIONS[operation]}
    with pytest.raises(VendorError) as caught:
        operations(graph, ada)[operation](client_for(graph, slept))
    assert (caught.value.kind, caught.value.status, caught.value.code) == (
        "forbidden",
        403,
        "Authorization_RequestDenied",
    )


# --- failures ------------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once_and_the_call_succeeds(graph, client, ada):
    client.user_get(ada)
    assert token_requests(graph) == 1
    client.user_get(ada)
    assert token_requests(graph) == 1  # msal's cache
    graph.advance(3600)  # the fake's clock: the token expired, msal does not know yet
    assert client.user_get(ada).id == ada
    assert token_requests(graph) == 2
    assert [r.path for r in graph.sent("GET", r"/users/")].count(f"/v1.0/users/{ada}") == 4


def test_a_user_gone_is_not_found_with_graphs_code(graph, client):
    for call in (
        lambda: client.user_get("gone@contoso.com"),
        lambda: client.methods_list("gone@contoso.com"),
        lambda: client.temporary_pass_create("gone@contoso.com", 60),
        lambda: client.sessions_revoke("gone@contoso.com"),
        lambda: client.user_enabled_set("gone@contoso.com", True),
    ):
        with pytest.raises(VendorError) as caught:
            call()
        assert (caught.value.kind, caught.value.code) == ("not_found", "Request_ResourceNotFound")


@pytest.mark.parametrize("status", [409, 412])
def test_a_conflict_on_a_delete_is_raised_not_taken_as_done(graph, client, ada, status):
    key = graph.add_method(ada, "fido2", displayName="Red key")
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    body = {"error": {"code": "Directory_ConcurrencyViolation", "message": "Try again."}}
    graph.fail_next("DELETE", r"/fido2Methods/", status, body)
    graph.fail_next("DELETE", r"/roleAssignments/", status, body)
    for call in (
        lambda: client.method_delete(ada, AuthMethod(id=key, kind="fido2")),
        lambda: client.role_assignment_delete(assignment),
    ):
        with pytest.raises(VendorError) as caught:
            call()
        assert (caught.value.kind, caught.value.status) == ("conflict", status)
        assert caught.value.code == "Directory_ConcurrencyViolation"
    assert key in graph.method_ids(ada) and assignment in graph.role_assignments


def test_throttling_waits_retry_after_then_repeats(graph, client, slept, ada):
    graph.throttle("GET", r"/authentication/methods$", retry_after=7)
    graph.throttle("POST", TAP_PATH, retry_after=3)
    assert [m.kind for m in client.methods_list(ada)] == ["password"]
    issued = client.temporary_pass_create(ada, 60)
    assert slept == [7.0, 3.0]
    assert issued.secret == graph.pass_values[issued.id]
    assert [m for m in graph.method_ids(ada) if m != PASSWORD_METHOD_ID] == [issued.id]


def test_a_server_error_is_repeated_and_a_lasting_one_reported(graph, client, slept, ada):
    graph.fail_next("GET", r"/users/", 502, {"error": {"code": "BadGateway", "message": "x"}})
    assert client.user_get(ada).id == ada
    assert slept == [0.5]  # the backoff before the repeat
    graph.fail_next(
        "POST", r"/revokeSignInSessions$", 503, {"error": {"code": "ServiceUnavailable"}}, times=3
    )
    with pytest.raises(VendorError) as caught:
        client.sessions_revoke(ada)
    assert (caught.value.kind, caught.value.status) == ("unavailable", 503)
    assert len(graph.sent("POST", r"/revokeSignInSessions$")) == 3
    assert ada not in graph.sessions_revoked_at


def test_a_timeout_on_a_pass_create_is_repeated_and_leaves_one_pass(graph, slept, ada):
    client = client_for(graph, slept, timeout=0.4)
    client.user_get(ada)  # the token first, so only the create hangs
    graph.fail_next("POST", TAP_PATH, hang_seconds=1.0)
    issued = client.temporary_pass_create(ada, 60)
    assert len(graph.sent("POST", TAP_PATH)) == 2
    assert [m for m in graph.method_ids(ada) if m != PASSWORD_METHOD_ID] == [issued.id]
    assert issued.secret == graph.pass_values[issued.id]


def test_a_lasting_timeout_is_reported_as_a_timeout(graph, slept, ada):
    client = client_for(graph, slept, timeout=0.3, attempts=2)
    client.user_get(ada)
    graph.fail_next("GET", r"/riskyUsers/", hang_seconds=0.8, times=2)
    with pytest.raises(VendorError) as caught:
        client.risk_get(ada)
    assert caught.value.kind == "timeout" and caught.value.status is None


def test_a_wrong_secret_is_an_auth_error_that_never_shows_the_secret(graph, slept, ada):
    secret = "s3cret-value-that-must-not-leak"
    client = client_for(graph, slept, client_secret=secret)
    with pytest.raises(VendorError) as caught:
        client.user_get(ada)
    error = caught.value
    assert (error.kind, error.code) == ("auth", "invalid_client")
    assert error.message.startswith("AADSTS7000215")
    for shown in (str(error), repr(error), repr(client), str(vars(client))):
        assert secret not in shown
    assert graph.sent("GET", r"/users/") == []  # nothing reached Graph without a token


def test_the_right_secret_does_not_show_in_repr_or_errors_either(graph, client, ada):
    graph.fail_next("GET", r"/users/", 403, {"error": {"code": "Authorization_RequestDenied"}})
    with pytest.raises(VendorError) as caught:
        client.user_get(ada)
    for shown in (str(caught.value), repr(caught.value), repr(client), str(vars(client))):
        assert graph.client_secret not in shown


def test_an_unreachable_token_endpoint_is_unavailable(graph, slept, ada):
    client = client_for(graph, slept, authority_host=f"https://127.0.0.1:{free_port()}")
    with pytest.raises(VendorError) as caught:
        client.user_get(ada)
    assert (caught.value.kind, caught.value.status) == ("unavailable", None)
    assert graph.client_secret not in str(caught.value)

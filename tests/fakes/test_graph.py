"""The Graph fake against the request and response examples of the Graph v1.0 reference."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .graph import (
    EMAIL_METHOD_ID,
    GRAPH_SCOPE,
    PASSWORD_METHOD_ID,
    PHONE_METHOD_IDS,
    FakeGraph,
)

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


def token_answer(graph: FakeGraph, **form: str) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": graph.client_id,
        "client_secret": graph.client_secret,
        "scope": GRAPH_SCOPE,
        **form,
    }
    return requests.post(
        f"{graph.authority}/oauth2/v2.0/token", data=data, verify=graph.ca_path, timeout=5
    )


def token(graph: FakeGraph) -> str:
    return token_answer(graph).json()["access_token"]


def call(
    graph: FakeGraph, method: str, path: str, bearer: str | None = None, **options: Any
) -> requests.Response:
    """A Graph request with a fresh token (or `bearer`)."""
    headers = {"Authorization": f"Bearer {bearer or token(graph)}"}
    url = path if "://" in path else f"{graph.graph_url}{path}"
    return requests.request(
        method, url, headers=headers, verify=graph.ca_path, timeout=5, **options
    )


def assert_graph_error(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error


# --- OAuth ---------------------------------------------------------------------------------


def test_openid_configuration_names_the_tenants_token_endpoint(graph):
    answer = requests.get(
        f"{graph.authority}/v2.0/.well-known/openid-configuration",
        verify=graph.ca_path,
        timeout=5,
    )
    config = answer.json()
    assert config["token_endpoint"] == f"{graph.authority}/oauth2/v2.0/token"
    assert config["issuer"] == f"{graph.authority}/v2.0"
    unknown = requests.get(
        f"{graph.url}/nope/v2.0/.well-known/openid-configuration", verify=graph.ca_path, timeout=5
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_tenant"


def test_client_credentials_issue_a_bearer_token_with_a_lifetime(graph):
    answer = token_answer(graph)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"] in graph.tokens


def test_a_wrong_secret_is_invalid_client_aadsts7000215(graph):
    answer = token_answer(graph, client_secret="not-the-secret")
    assert answer.status_code == 401
    body = answer.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"trace_id", "correlation_id", "timestamp", "error_uri"} <= set(body)


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, 400, "unauthorized_client"),
        ({"scope": "User.Read.All"}, 400, "invalid_scope"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_secret": ""}, 401, "invalid_client"),
    ],
)
def test_other_token_requests_are_refused_as_entra_refuses_them(graph, form, status, error):
    answer = token_answer(graph, **form)
    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert not graph.tokens


def test_an_expired_token_is_invalid_authentication_token(graph):
    user_id = graph.add_user("ada@contoso.com")
    bearer = token(graph)
    assert call(graph, "GET", f"/users/{user_id}", bearer).status_code == 200
    graph.advance(3600)
    answer = call(graph, "GET", f"/users/{user_id}", bearer)
    assert_graph_error(answer, 401, "InvalidAuthenticationToken")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert call(graph, "GET", f"/users/{user_id}").status_code == 200  # a new token works


def test_a_token_carries_the_permissions_granted_when_it_was_issued(graph):
    user_id = graph.add_user("ada@contoso.com")
    graph.permissions = frozenset({"AuditLog.Read.All"})
    bearer = token(graph)
    denied = call(graph, "GET", f"/users/{user_id}", bearer)
    assert_graph_error(denied, 403, "Authorization_RequestDenied")
    graph.permissions = frozenset({"User.Read.All"})
    assert call(graph, "GET", f"/users/{user_id}", bearer).status_code == 403  # still the old
    assert call(graph, "GET", f"/users/{user_id}").status_code == 200


# --- users and sessions --------------------------------------------------------------------


def test_get_user_answers_the_default_properties_or_the_selected_ones(graph):
    user_id = graph.add_user("ada@contoso.com", "Ada Lovelace", enabled=False)
    plain = call(graph, "GET", "/users/ada@contoso.com").json()
    assert plain["id"] == user_id and plain["displayName"] == "Ada Lovelace"
    assert "accountEnabled" not in plain  # not among the defaults
    selected = call(
        graph, "GET", f"/users/{user_id}", params={"$select": "id,accountEnabled"}
    ).json()
    assert {k: v for k, v in selected.items() if not k.startswith("@")} == {
        "id": user_id,
        "accountEnabled": False,
    }
    wrong = call(graph, "GET", f"/users/{user_id}", params={"$select": "shoeSize"})
    assert_graph_error(wrong, 400, "Request_BadRequest")


def test_an_unknown_user_is_request_resource_not_found(graph):
    answer = call(graph, "GET", "/users/nobody@contoso.com")
    error = assert_graph_error(answer, 404, "Request_ResourceNotFound")
    assert "nobody@contoso.com" in error["message"]


def test_revoke_sign_in_sessions_answers_true_and_moves_the_cut_off(graph):
    user_id = graph.add_user("ada@contoso.com")
    graph.advance(600)
    answer = call(graph, "POST", f"/users/{user_id}/revokeSignInSessions")
    assert answer.status_code == 200 and answer.json()["value"] is True
    assert abs((graph.sessions_revoked_at[user_id] - graph.now_datetime()).total_seconds()) < 5
    valid_from = graph.users[user_id]["signInSessionsValidFromDateTime"]
    assert abs(dt.datetime.fromisoformat(valid_from).timestamp() - graph.now()) < 5


def test_patch_user_sets_account_enabled_with_the_narrow_permission(graph):
    user_id = graph.add_user("ada@contoso.com", enabled=False)
    graph.permissions = frozenset({"User.EnableDisableAccount.All"})
    answer = call(graph, "PATCH", "/users/ada@contoso.com", json={"accountEnabled": True})
    assert answer.status_code == 204 and not answer.content
    assert graph.users[user_id]["accountEnabled"] is True
    other = call(graph, "PATCH", f"/users/{user_id}", json={"displayName": "A"})
    assert_graph_error(other, 403, "Authorization_RequestDenied")  # needs User.ReadWrite.All
    graph.permissions = frozenset({"User.ReadWrite.All"})
    for body in ({"shoeSize": 42}, {"accountEnabled": "yes"}):
        refused = call(graph, "PATCH", f"/users/{user_id}", json=body)
        assert_graph_error(refused, 400, "Request_BadRequest")
    assert graph.users[user_id]["accountEnabled"] is True


# --- Temporary Access Pass -----------------------------------------------------------------


def test_create_a_temporary_access_pass_as_in_the_reference_example(graph):
    user_id = graph.add_user("ada@contoso.com")
    start = graph.now_datetime() + dt.timedelta(days=3)
    answer = call(
        graph,
        "POST",
        f"/users/{user_id}/authentication/temporaryAccessPassMethods",
        json={
            "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "lifetimeInMinutes": 60,
            "isUsableOnce": False,
        },
    )
    assert answer.status_code == 201
    created = answer.json()
    assert created["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod"
    assert created["temporaryAccessPass"] == graph.pass_values[created["id"]]
    assert (created["lifetimeInMinutes"], created["isUsableOnce"]) == (60, False)
    assert (created["isUsable"], created["methodUsabilityReason"]) == (False, "NotYetValid")
    read = call(
        graph, "GET", f"/users/{user_id}/authentication/temporaryAccessPassMethods/{created['id']}"
    ).json()
    assert read["temporaryAccessPass"] is None  # the pass is shown only on creation


def test_a_pass_is_usable_from_its_start_until_its_lifetime_ends(graph):
    user_id = graph.add_user("ada@contoso.com")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    pass_id = call(graph, "POST", path, json={"lifetimeInMinutes": 60}).json()["id"]
    assert call(graph, "GET", f"{path}/{pass_id}").json()["methodUsabilityReason"] == (
        "EnabledByPolicy"
    )
    graph.advance(3601)
    later = call(graph, "GET", f"{path}/{pass_id}").json()
    assert (later["isUsable"], later["methodUsabilityReason"]) == (False, "Expired")


def test_a_user_holds_one_pass_a_new_one_replaces_it(graph):
    user_id = graph.add_user("ada@contoso.com")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    first = call(graph, "POST", path, json={"lifetimeInMinutes": 60}).json()["id"]
    second = call(graph, "POST", path, json={"lifetimeInMinutes": 60}).json()["id"]
    listed = call(graph, "GET", path).json()["value"]
    assert [m["id"] for m in listed] == [second] and first != second


@pytest.mark.parametrize("lifetime", [59, 481])
def test_a_lifetime_outside_the_tenant_policy_is_bad_request(graph, lifetime):
    user_id = graph.add_user("ada@contoso.com")
    answer = call(
        graph,
        "POST",
        f"/users/{user_id}/authentication/temporaryAccessPassMethods",
        json={"lifetimeInMinutes": lifetime},
    )
    error = assert_graph_error(answer, 400, "badRequest")
    assert error["message"] == (
        "Invalid LifetimeInMinutes specified. The valid range between 60 and 480."
    )
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID]


def test_the_policy_bounds_and_one_time_rule_are_the_tenants(graph):
    user_id = graph.add_user("ada@contoso.com")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    graph.tap_min_minutes, graph.tap_max_minutes = 10, 30
    assert call(graph, "POST", path, json={"lifetimeInMinutes": 10}).status_code == 201
    assert call(graph, "POST", path, json={"lifetimeInMinutes": 60}).status_code == 400
    graph.tap_usable_once_only = True
    reusable = call(graph, "POST", path, json={"lifetimeInMinutes": 10, "isUsableOnce": False})
    assert_graph_error(reusable, 400, "badRequest")


# --- authentication methods ----------------------------------------------------------------


def test_list_methods_answers_each_with_its_odata_type(graph):
    user_id = graph.add_user("ada@contoso.com")
    graph.add_method(user_id, "fido2", displayName="Red key", model="NFC key")
    graph.add_method(user_id, "windowsHelloForBusiness", displayName="Jordan's Surface Book")
    listed = call(graph, "GET", f"/users/{user_id}/authentication/methods").json()["value"]
    assert [m["@odata.type"] for m in listed] == [
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.fido2AuthenticationMethod",
        "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
    ]
    assert listed[0]["id"] == PASSWORD_METHOD_ID and listed[1]["displayName"] == "Red key"


def test_a_long_list_is_paged_with_next_links_that_keep_the_query(graph):
    user_id = graph.add_user("ada@contoso.com")
    for number in range(4):
        graph.add_method(user_id, "softwareOath", displayName=f"token {number}")
    graph.page_size = 2
    page = call(graph, "GET", f"/users/{user_id}/authentication/methods").json()
    seen = [m["id"] for m in page["value"]]
    while "@odata.nextLink" in page:
        assert len(page["value"]) == 2
        page = call(graph, "GET", page["@odata.nextLink"]).json()
        seen += [m["id"] for m in page["value"]]
    assert seen == graph.method_ids(user_id) and len(seen) == 5


@pytest.mark.parametrize(
    ("kind", "collection", "properties"),
    [
        ("microsoftAuthenticator", "microsoftAuthenticatorMethods", {"displayName": "Pixel"}),
        ("phone", "phoneMethods", {"phoneType": "office", "phoneNumber": "+1 2065555555"}),
        ("fido2", "fido2Methods", {"displayName": "Red key"}),
        ("softwareOath", "softwareOathMethods", {}),
        ("email", "emailMethods", {"emailAddress": "kim@contoso.com"}),
        ("windowsHelloForBusiness", "windowsHelloForBusinessMethods", {"displayName": "PC"}),
    ],
)
def test_each_deletable_method_type_is_deleted_through_its_collection(
    graph, kind, collection, properties
):
    user_id = graph.add_user("ada@contoso.com")
    method_id = graph.add_method(user_id, kind, **properties)
    path = f"/users/{user_id}/authentication/{collection}/{method_id}"
    assert call(graph, "DELETE", path).status_code == 204
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID]
    assert_graph_error(call(graph, "DELETE", path), 404, "Request_ResourceNotFound")


def test_documented_fixed_method_ids(graph):
    user_id = graph.add_user("ada@contoso.com")
    assert graph.add_method(user_id, "email", emailAddress="kim@contoso.com") == EMAIL_METHOD_ID
    assert graph.add_method(user_id, "phone", phoneType="mobile") == PHONE_METHOD_IDS["mobile"]


def test_the_password_method_cannot_be_deleted(graph):
    user_id = graph.add_user("ada@contoso.com")
    path = f"/users/{user_id}/authentication/passwordMethods/{PASSWORD_METHOD_ID}"
    assert_graph_error(call(graph, "DELETE", path), 405, "Request_BadRequest")
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID]


def test_the_default_method_cannot_be_deleted_while_others_remain(graph):
    user_id = graph.add_user("ada@contoso.com")
    app = graph.add_method(user_id, "microsoftAuthenticator", displayName="Pixel")
    key = graph.add_method(user_id, "fido2", displayName="Red key")
    graph.set_default_method(user_id, app)
    path = f"/users/{user_id}/authentication/microsoftAuthenticatorMethods/{app}"
    error = assert_graph_error(call(graph, "DELETE", path), 400, "badRequest")
    assert error["message"].startswith("Cannot delete default method with other methods")
    assert call(graph, "DELETE", f"/users/{user_id}/authentication/fido2Methods/{key}").ok
    assert call(graph, "DELETE", path).status_code == 204  # the last one goes
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID]


def test_a_mobile_number_cannot_go_before_the_alternate_mobile(graph):
    user_id = graph.add_user("ada@contoso.com")
    mobile = graph.add_method(user_id, "phone", phoneType="mobile", phoneNumber="+1 1")
    graph.add_method(user_id, "phone", phoneType="alternateMobile", phoneNumber="+1 2")
    answer = call(graph, "DELETE", f"/users/{user_id}/authentication/phoneMethods/{mobile}")
    assert_graph_error(answer, 400, "badRequest")
    assert mobile in graph.method_ids(user_id)


def test_a_temporary_access_pass_is_listed_and_deleted_like_any_method(graph):
    user_id = graph.add_user("ada@contoso.com")
    path = f"/users/{user_id}/authentication/temporaryAccessPassMethods"
    pass_id = call(graph, "POST", path, json={"lifetimeInMinutes": 60}).json()["id"]
    listed = call(graph, "GET", f"/users/{user_id}/authentication/methods").json()["value"]
    assert pass_id in [m["id"] for m in listed]
    assert all(m.get("temporaryAccessPass") is None for m in listed)
    assert call(graph, "DELETE", f"{path}/{pass_id}").status_code == 204
    assert graph.method_ids(user_id) == [PASSWORD_METHOD_ID]


# --- directory roles -----------------------------------------------------------------------


def test_role_assignments_filtered_by_principal_as_in_the_reference_example(graph):
    ada, bob = graph.add_user("ada@contoso.com"), graph.add_user("bob@contoso.com")
    mine = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.add_role_assignment(bob, USER_ADMIN)
    answer = call(
        graph,
        "GET",
        "/roleManagement/directory/roleAssignments",
        params={"$filter": f"principalId eq '{ada}'"},
    ).json()
    assert answer["value"] == [
        {
            "id": mine,
            "principalId": ada,
            "roleDefinitionId": GLOBAL_ADMIN,
            "directoryScopeId": "/",
            "resourceScope": "/",
        }
    ]
    expanded = call(
        graph,
        "GET",
        "/roleManagement/directory/roleAssignments",
        params={"$filter": f"principalId eq '{ada}'", "$expand": "roleDefinition"},
    ).json()["value"][0]
    assert expanded["roleDefinition"]["displayName"] == "Global Administrator"


def test_an_unsupported_role_filter_is_refused(graph):
    answer = call(
        graph,
        "GET",
        "/roleManagement/directory/roleAssignments",
        params={"$filter": "startswith(principalId, 'a')"},
    )
    assert_graph_error(answer, 400, "Request_UnsupportedQuery")


def test_create_a_role_assignment_then_a_duplicate_is_a_conflicting_object(graph):
    ada = graph.add_user("ada@contoso.com")
    body = {
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
        "roleDefinitionId": USER_ADMIN,
        "principalId": ada,
        "directoryScopeId": "/",
    }
    created = call(graph, "POST", "/roleManagement/directory/roleAssignments", json=body)
    assert created.status_code == 201
    assert created.json()["id"] in graph.role_assignments
    duplicate = call(graph, "POST", "/roleManagement/directory/roleAssignments", json=body)
    error = assert_graph_error(duplicate, 400, "Request_BadRequest")
    assert error["message"].startswith("A conflicting object with one or more of the specified")
    assert len(graph.role_assignments) == 1


def test_delete_a_role_assignment_then_it_is_not_found(graph):
    ada = graph.add_user("ada@contoso.com")
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    path = f"/roleManagement/directory/roleAssignments/{assignment}"
    assert call(graph, "DELETE", path).status_code == 204
    assert not graph.role_assignments
    assert_graph_error(call(graph, "DELETE", path), 404, "Request_ResourceNotFound")


def test_role_definitions_name_the_roles(graph):
    graph.add_role_definition("custom-1", "Recovery Operator")
    listed = call(graph, "GET", "/roleManagement/directory/roleDefinitions").json()["value"]
    names = {role["id"]: role["displayName"] for role in listed}
    assert names[GLOBAL_ADMIN] == "Global Administrator"
    assert names["custom-1"] == "Recovery Operator"
    one = call(graph, "GET", f"/roleManagement/directory/roleDefinitions/{USER_ADMIN}").json()
    assert (one["displayName"], one["isBuiltIn"]) == ("User Administrator", True)


def test_writing_roles_needs_the_write_permission(graph):
    ada = graph.add_user("ada@contoso.com")
    assignment = graph.add_role_assignment(ada, GLOBAL_ADMIN)
    graph.permissions = frozenset({"RoleManagement.Read.Directory"})
    path = f"/roleManagement/directory/roleAssignments/{assignment}"
    assert call(graph, "GET", "/roleManagement/directory/roleAssignments").status_code == 200
    assert_graph_error(call(graph, "DELETE", path), 403, "Authorization_RequestDenied")
    assert assignment in graph.role_assignments


# --- audit log and risk --------------------------------------------------------------------


def test_directory_audits_filtered_by_time_and_target_newest_first(graph):
    ada, bob = graph.add_user("ada@contoso.com"), graph.add_user("bob@contoso.com")
    start = graph.now_datetime()
    old = graph.add_audit(
        "Update user", "UserManagement", [{"id": ada}], at=start - dt.timedelta(hours=1)
    )
    first = graph.add_audit("User registered security info", "UserManagement", [{"id": ada}])
    graph.add_audit("Update user", "UserManagement", [{"id": bob}])
    graph.advance(60)
    second = graph.add_audit("Add member to role", "RoleManagement", [{"id": ada}])
    since = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = call(
        graph,
        "GET",
        "/auditLogs/directoryAudits",
        params={
            "$filter": f"activityDateTime ge {since} and targetResources/any(t:t/id eq '{ada}')"
        },
    ).json()
    assert [record["id"] for record in answer["value"]] == [second, first]
    assert old not in [record["id"] for record in answer["value"]]
    record = answer["value"][0]
    assert {"activityDisplayName", "category", "initiatedBy", "targetResources", "result"} <= set(
        record
    )


def test_directory_audits_filtered_by_the_initiating_user(graph):
    ada = graph.add_user("ada@contoso.com")
    consent = graph.add_audit(
        "Consent to application",
        "ApplicationManagement",
        [{"id": "sp-1", "type": "ServicePrincipal", "displayName": "Mail Sync"}],
        initiated_by=ada,
    )
    since = (graph.now_datetime() - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = call(
        graph,
        "GET",
        "/auditLogs/directoryAudits",
        params={"$filter": f"activityDateTime ge {since} and initiatedBy/user/id eq '{ada}'"},
    ).json()
    assert [record["id"] for record in answer["value"]] == [consent]
    assert answer["value"][0]["initiatedBy"]["user"]["userPrincipalName"] == "ada@contoso.com"


@pytest.mark.parametrize(
    "condition",
    [None, "activityDisplayName eq 'Update user'", "activityDateTime ge yesterday and x eq 'y'"],
)
def test_other_audit_filters_are_refused(graph, condition):
    params = {"$filter": condition} if condition else {}
    answer = call(graph, "GET", "/auditLogs/directoryAudits", params=params)
    assert_graph_error(answer, 400, "Request_UnsupportedQuery")


def test_risky_user_answers_level_and_state_or_404(graph):
    ada, bob = graph.add_user("ada@contoso.com"), graph.add_user("bob@contoso.com")
    graph.set_risk(ada, "high", "atRisk")
    risky = call(graph, "GET", f"/identityProtection/riskyUsers/{ada}").json()
    assert (risky["riskLevel"], risky["riskState"]) == ("high", "atRisk")
    assert risky["userPrincipalName"] == "ada@contoso.com"
    answer = call(graph, "GET", f"/identityProtection/riskyUsers/{bob}")
    assert_graph_error(answer, 404, "Request_ResourceNotFound")


# --- throttling and unknown paths -----------------------------------------------------------


def test_throttling_answers_429_with_retry_after_and_graphs_error_body(graph):
    user_id = graph.add_user("ada@contoso.com")
    bearer = token(graph)
    graph.throttle("GET", r"/users/", retry_after=7)
    answer = call(graph, "GET", f"/users/{user_id}", bearer)
    assert_graph_error(answer, 429, "TooManyRequests")
    assert answer.headers["Retry-After"] == "7"
    assert call(graph, "GET", f"/users/{user_id}", bearer).status_code == 200


def test_an_unknown_segment_is_a_bad_request(graph):
    answer = call(graph, "GET", "/usres/x")
    error = assert_graph_error(answer, 400, "BadRequest")
    assert "'x'" in error["message"]


def test_the_client_request_id_is_echoed_in_errors(graph):
    answer = requests.get(
        f"{graph.graph_url}/users/nobody",
        headers={"Authorization": f"Bearer {token(graph)}", "client-request-id": "abc-123"},
        verify=graph.ca_path,
        timeout=5,
    )
    assert answer.json()["error"]["innerError"]["client-request-id"] == "abc-123"

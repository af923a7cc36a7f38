"""The Okta fake against Okta's documented requests and answers: the service-app token request
("Implement OAuth for Okta with a service app"), the OAuth 2.0 and Management API error codes,
the Users (partial update, unlock), User Grants, Factors, User Sessions, Role Assignment and
System Log references, and the rate-limit headers ("Rate limit best practices")."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from .okta import ASSERTION_TYPE, FakeOkta

CLIENT_ID = "0oar95zt9zIpYuz6A0h7"


@pytest.fixture(scope="module")
def app_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "my_key_id"}, private=True)


@pytest.fixture
def okta(app_key: RSAKey) -> Iterator[FakeOkta]:
    with FakeOkta() as fake:
        granted = {"okta.users.read", "okta.users.manage", "okta.logs.read"}
        fake.register_app(CLIENT_ID, [app_key.as_dict(private=False)], granted)
        fake.add_api_token("00QCjAl4MlV-WPXM-ABCDEFGHIJKL-0HmjFx-vbGua")
        yield fake


def _assertion(okta: FakeOkta, key: RSAKey, **changes: Any) -> str:
    now = int(okta.now())
    claims = {
        "aud": f"{okta.url}/oauth2/v1/token",
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        **changes,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def _token_request(okta: FakeOkta, assertion: str, scope: str = "okta.users.read"):
    return requests.post(
        f"{okta.url}/oauth2/v1/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        headers={"Accept": "application/json"},
        timeout=5,
    )


def _bearer(okta: FakeOkta, key: RSAKey, scope: str = "okta.users.read") -> dict[str, str]:
    token = _token_request(okta, _assertion(okta, key), scope).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


SSWS = {"Authorization": "SSWS 00QCjAl4MlV-WPXM-ABCDEFGHIJKL-0HmjFx-vbGua"}


def _call(okta: FakeOkta, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("headers", SSWS)
    url = path if path.startswith("http") else f"{okta.url}{path}"
    return requests.request(method, url, timeout=5, **kwargs)


# --- the token endpoint ---------------------------------------------------------------------


def test_a_signed_assertion_gets_an_hour_long_bearer_token_for_granted_scopes(okta, app_key):
    answer = _token_request(okta, _assertion(okta, app_key))
    body = answer.json()
    assert answer.status_code == 200
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        3600,
        "okta.users.read",
    )
    user = okta.add_user("isaac.brock@example.com", "Isaac", "Brock")
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert _call(okta, "GET", f"/api/v1/users/{user['id']}", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        (
            {"aud": "https://elsewhere.example/oauth2/v1/token"},
            "The audience claim for client_assertion must be the endpoint invoked for the request.",
        ),
        (
            {"exp": None},
            "The client_assertion must contain the 'exp' claim as seconds since epoch.",
        ),
        ({"exp": 1}, "The client_assertion token is expired."),
        (
            {"exp": 10**10},
            "The client_assertion token has an expiration too far into the future.",
        ),
        (
            {"sub": "0oaSOMEONEELSE"},
            "The subject claim for client_assertion is not a valid client_id.",
        ),
        (
            {"iss": "0oaSOMEONEELSE"},
            "The issuer claim for client_assertion is not a valid client_id.",
        ),
    ],
)
def test_an_assertion_with_bad_claims_is_invalid_client(okta, app_key, changes, description):
    assertion = _assertion(okta, app_key, **changes)
    answer = _token_request(okta, assertion)
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": description}


def test_an_assertion_signed_by_another_key_is_refused(okta):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "my_key_id"}, private=True)
    answer = _token_request(okta, _assertion(okta, stranger))
    assert answer.status_code == 401
    assert answer.json()["error_description"] == "The client_assertion signature is invalid."


def test_a_replayed_jti_is_refused(okta, app_key):
    assertion = _assertion(okta, app_key)
    assert _token_request(okta, assertion).status_code == 200
    replay = _token_request(okta, assertion)
    assert replay.status_code == 401
    assert replay.json() == {
        "error": "invalid_client",
        "error_description": "The client_assertion token has already been used.",
    }


def test_a_scope_not_granted_to_the_app_is_invalid_scope(okta, app_key):
    answer = _token_request(okta, _assertion(okta, app_key), "okta.users.read okta.roles.manage")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"
    assert "okta.roles.manage" in answer.json()["error_description"]


# --- authentication on the Management API ---------------------------------------------------


def test_a_token_past_its_hour_is_e0000011(okta, app_key):
    user = okta.add_user("dade.murphy@example.com")
    headers = _bearer(okta, app_key)
    okta.advance(3601)
    answer = _call(okta, "GET", f"/api/v1/users/{user['id']}", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["errorCode"] == "E0000011"
    assert answer.json()["errorSummary"] == "Invalid token provided"
    assert set(answer.json()) == {
        "errorCode",
        "errorSummary",
        "errorLink",
        "errorId",
        "errorCauses",
    }


def test_a_token_without_the_scope_is_e0000006_and_an_unknown_api_token_e0000011(okta, app_key):
    user = okta.add_user("dade.murphy@example.com")
    headers = _bearer(okta, app_key, "okta.logs.read")
    denied = _call(okta, "GET", f"/api/v1/users/{user['id']}/factors", headers=headers)
    assert denied.status_code == 403 and denied.json()["errorCode"] == "E0000006"
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    unknown = _call(okta, "GET", "/api/v1/logs", headers={"Authorization": "SSWS nope"})
    assert unknown.status_code == 401 and unknown.json()["errorCode"] == "E0000011"


def test_manage_scopes_include_read(okta, app_key):
    user = okta.add_user("dade.murphy@example.com")
    headers = _bearer(okta, app_key, "okta.users.manage")
    assert _call(okta, "GET", f"/api/v1/users/{user['id']}", headers=headers).status_code == 200


# --- users, factors, sessions, passwords ----------------------------------------------------


def test_a_user_is_found_by_id_or_url_encoded_login_and_a_missing_one_is_e0000007(okta):
    user = okta.add_user("isaac.brock@example.com", "Isaac", "Brock", mobilePhone="555-415-1337")
    by_login = _call(okta, "GET", "/api/v1/users/isaac.brock%40example.com").json()
    assert by_login["id"] == user["id"] and by_login["status"] == "ACTIVE"
    assert by_login["profile"] == {
        "firstName": "Isaac",
        "lastName": "Brock",
        "email": "isaac.brock@example.com",
        "login": "isaac.brock@example.com",
        "mobilePhone": "555-415-1337",
    }
    missing = _call(okta, "GET", "/api/v1/users/missing%40example.com")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "E0000007"
    assert missing.json()["errorSummary"] == (
        "Not found: Resource not found: missing@example.com (User)"
    )


def test_a_partial_update_sets_the_attributes_given_and_keeps_the_others(okta):
    user = okta.add_user("isaac.brock@example.com", "Isaac", "Brock", secondEmail="ib@home.example")
    changes = {"email": "isaac.brock@update.example.com", "mobilePhone": "555-415-1337"}
    answer = _call(okta, "POST", f"/api/v1/users/{user['id']}", json={"profile": changes})
    assert answer.status_code == 200 and answer.json()["id"] == user["id"]
    profile = answer.json()["profile"]
    assert (profile["email"], profile["mobilePhone"]) == (changes["email"], changes["mobilePhone"])
    assert (profile["lastName"], profile["secondEmail"]) == ("Brock", "ib@home.example")
    cleared = {"profile": {"secondEmail": None}}
    assert _call(okta, "POST", f"/api/v1/users/{user['id']}", json=cleared).status_code == 200
    assert "secondEmail" not in okta.users[user["id"]]["profile"]


def test_unlock_returns_a_locked_out_user_to_active_and_refuses_any_other_status(okta):
    user = okta.add_user("dade.murphy@example.com", status="LOCKED_OUT")
    path = f"/api/v1/users/{user['id']}/lifecycle/unlock"
    answer = _call(okta, "POST", path)
    assert answer.status_code == 200 and okta.users[user["id"]]["status"] == "ACTIVE"
    again = _call(okta, "POST", path)
    assert again.status_code == 403
    assert again.json()["errorSummary"] == (
        "This operation is not allowed in the user's current status."
    )
    assert again.json()["errorCode"] == "E0000038"


def test_a_clients_grants_and_refresh_tokens_are_revoked_apart_and_twice_is_204(okta):
    user = okta.add_user("dade.murphy@example.com")
    okta.give_consent(user["id"], "0oaevil")
    okta.give_consent(user["id"], "0oamail")
    client = f"/api/v1/users/{user['id']}/clients/0oaevil"
    revoked = _call(okta, "DELETE", f"{client}/grants")
    assert revoked.status_code == 204 and revoked.content == b""
    assert okta.consents[user["id"]] == {"0oamail"}
    assert okta.refresh_tokens[user["id"]] == {"0oaevil", "0oamail"}
    assert _call(okta, "DELETE", f"{client}/tokens").status_code == 204
    assert okta.refresh_tokens[user["id"]] == {"0oamail"}
    assert _call(okta, "DELETE", f"{client}/grants").status_code == 204  # nothing left


def test_factors_are_listed_unenrolled_one_by_one_and_reset_all_at_once(okta):
    user = okta.add_user("dade.murphy@example.com")
    sms = okta.add_factor(user["id"], "sms", phoneNumber="+1-555-415-1337")
    question = okta.add_factor(user["id"], "question", question="favorite_art_piece")
    listed = _call(okta, "GET", f"/api/v1/users/{user['id']}/factors").json()
    assert [(f["id"], f["factorType"], f["status"]) for f in listed] == [
        (sms["id"], "sms", "ACTIVE"),
        (question["id"], "question", "ACTIVE"),
    ]
    path = f"/api/v1/users/{user['id']}/factors/{sms['id']}"
    assert _call(okta, "DELETE", path).status_code == 204
    again = _call(okta, "DELETE", path)
    assert again.status_code == 404 and again.json()["errorCode"] == "E0000007"
    assert [f["id"] for f in okta.factors[user["id"]]] == [question["id"]]
    reset = _call(okta, "POST", f"/api/v1/users/{user['id']}/lifecycle/reset_factors")
    assert reset.status_code == 200 and okta.factors[user["id"]] == []


def test_unenrolling_okta_verify_push_takes_its_totp_along(okta):
    user = okta.add_user("dade.murphy@example.com")
    push = okta.add_factor(user["id"], "push")
    okta.add_factor(user["id"], "token:software:totp")
    key = okta.add_factor(user["id"], "webauthn", authenticatorName="YubiKey")
    assert _call(okta, "DELETE", f"/api/v1/users/{user['id']}/factors/{push['id']}").ok
    assert okta.factors[user["id"]] == [key]


def test_clearing_sessions_revokes_oauth_tokens_only_when_asked(okta):
    user = okta.add_user("dade.murphy@example.com")
    okta.give_sessions(user["id"], sessions=2, oauth_tokens=3)
    plain = _call(okta, "DELETE", f"/api/v1/users/{user['id']}/sessions")
    assert plain.status_code == 204 and plain.content == b""
    assert okta.oauth_tokens[user["id"]] == 3
    path = f"/api/v1/users/{user['id']}/sessions?oauthTokens=true"
    assert _call(okta, "DELETE", path).status_code == 204
    assert [(r["sessions"], r["oauth_tokens"]) for r in okta.revocations] == [(2, 0), (0, 3)]


def test_reset_password_without_email_answers_a_one_time_url_and_puts_the_user_in_recovery(okta):
    user = okta.add_user("dade.murphy@example.com")
    path = f"/api/v1/users/{user['id']}/lifecycle/reset_password"
    answer = _call(okta, "POST", f"{path}?sendEmail=false")
    assert answer.status_code == 200
    assert answer.json() == {"resetPasswordUrl": okta.reset_urls[user["id"]]}
    assert answer.json()["resetPasswordUrl"].startswith(f"{okta.url}/reset_password/")
    assert okta.users[user["id"]]["status"] == "RECOVERY"
    assert _call(okta, "POST", f"{path}?sendEmail=true").json() == {}
    required = _call(okta, "POST", path)
    assert required.status_code == 400 and required.json()["errorCode"] == "E0000001"


def test_expire_password_answers_the_user_in_password_expired(okta):
    user = okta.add_user("dade.murphy@example.com")
    answer = _call(okta, "POST", f"/api/v1/users/{user['id']}/lifecycle/expire_password")
    assert answer.status_code == 200 and answer.json()["status"] == "PASSWORD_EXPIRED"


# --- admin roles ----------------------------------------------------------------------------


def test_roles_are_assigned_listed_refused_twice_and_unassigned(okta):
    user = okta.add_user("dade.murphy@example.com")
    path = f"/api/v1/users/{user['id']}/roles"
    created = _call(okta, "POST", path, json={"type": "SUPER_ADMIN"})
    assert created.status_code == 201
    assigned = created.json()
    assert (assigned["type"], assigned["label"], assigned["status"]) == (
        "SUPER_ADMIN",
        "Super Organization administrator",
        "ACTIVE",
    )
    assert assigned["assignmentType"] == "USER"
    duplicate = _call(okta, "POST", path, json={"type": "SUPER_ADMIN"})
    assert duplicate.status_code == 409
    assert (duplicate.json()["errorCode"], duplicate.json()["errorSummary"]) == (
        "E0000090",
        "The role specified is already assigned to the user.",
    )
    assert [r["id"] for r in _call(okta, "GET", path).json()] == [assigned["id"]]
    assert _call(okta, "DELETE", f"{path}/{assigned['id']}").status_code == 204
    gone = _call(okta, "DELETE", f"{path}/{assigned['id']}")
    assert gone.status_code == 404 and okta.roles[user["id"]] == []


def test_a_custom_role_is_assigned_with_its_resource_set(okta):
    user = okta.add_user("dade.murphy@example.com")
    body = {
        "type": "CUSTOM",
        "role": "cr0Yq6IJxGIr0ouum0g3",
        "resource-set": "iamoJDFKaJxGIr0oamd9g",
    }
    answer = _call(okta, "POST", f"/api/v1/users/{user['id']}/roles", json=body)
    assert answer.status_code == 201
    assert (answer.json()["role"], answer.json()["resource-set"]) == (
        "cr0Yq6IJxGIr0ouum0g3",
        "iamoJDFKaJxGIr0oamd9g",
    )
    unknown = _call(okta, "POST", f"/api/v1/users/{user['id']}/roles", json={"type": "KING"})
    assert unknown.status_code == 400 and unknown.json()["errorCode"] == "E0000001"


# --- System Log -----------------------------------------------------------------------------


def _activation(okta: FakeOkta, user_id: str) -> dict[str, Any]:
    return okta.log_event(
        "user.mfa.factor.activate",
        actor={"id": user_id, "type": "User"},
        targets=[{"id": user_id, "type": "User"}],
    )


def test_a_polling_query_always_links_a_next_page_even_past_the_last_event(okta):
    user = okta.add_user("dade.murphy@example.com")
    first, second, third = (_activation(okta, user["id"]) for _ in range(3))
    since = "2000-01-01T00:00:00.000Z"
    answer = _call(okta, "GET", "/api/v1/logs", params={"since": since, "limit": 2})
    assert [e["uuid"] for e in answer.json()] == [first["uuid"], second["uuid"]]
    assert 'rel="self"' in answer.headers["Link"]
    following = _call(okta, "GET", answer.links["next"]["url"])
    assert [e["uuid"] for e in following.json()] == [third["uuid"]]
    empty = _call(okta, "GET", following.links["next"]["url"])
    assert empty.json() == [] and "next" in empty.links
    fourth = _activation(okta, user["id"])
    assert [e["uuid"] for e in _call(okta, "GET", empty.links["next"]["url"]).json()] == [
        fourth["uuid"]
    ]


def test_a_bounded_query_has_no_next_link_on_its_last_page(okta):
    user = okta.add_user("dade.murphy@example.com")
    _activation(okta, user["id"])
    params = {"since": "2000-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z", "limit": 5}
    answer = _call(okta, "GET", "/api/v1/logs", params=params)
    assert len(answer.json()) == 1 and "next" not in answer.links


def test_the_filter_selects_by_event_type_actor_and_target(okta):
    user = okta.add_user("dade.murphy@example.com")
    other = okta.add_user("kate.libby@example.com")
    mine = _activation(okta, user["id"])
    _activation(okta, other["id"])
    okta.log_event("user.session.start", actor={"id": user["id"]}, targets=[])
    consent = okta.log_event(
        "app.oauth2.as.consent.grant",
        actor={"id": user["id"], "type": "User"},
        targets=[{"id": "0oaapp", "type": "AppInstance"}],
    )
    query = (
        f'(actor.id eq "{user["id"]}" or target.id eq "{user["id"]}") and '
        '(eventType eq "user.mfa.factor.activate" or eventType eq "app.oauth2.as.consent.grant")'
    )
    answer = _call(okta, "GET", "/api/v1/logs", params={"filter": query})
    assert [e["uuid"] for e in answer.json()] == [mine["uuid"], consent["uuid"]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"filter": 'debugContext.debugData.url co "/oauth/"'}, "E0000031"),
        ({"filter": 'eventType eqq "user.session.start"'}, "E0000053"),
        ({"filter": 'eventType eq "x" and'}, "E0000053"),
        ({"q": "San Francisco"}, "E0000031"),
        ({"since": "yesterday"}, "E0000001"),
    ],
)
def test_queries_the_fake_does_not_support_are_refused_with_okta_codes(okta, params, code):
    answer = _call(okta, "GET", "/api/v1/logs", params=params)
    assert answer.status_code == 400 and answer.json()["errorCode"] == code


# --- rate limits, unknown paths -------------------------------------------------------------


def test_every_answer_reports_the_rate_limit_and_the_excess_request_is_e0000047(okta):
    okta.rate_limit = 2
    first = _call(okta, "GET", "/api/v1/logs")
    assert (first.headers["X-Rate-Limit-Limit"], first.headers["X-Rate-Limit-Remaining"]) == (
        "2",
        "1",
    )
    reset = int(first.headers["X-Rate-Limit-Reset"])
    assert okta.now() < reset <= okta.now() + 60
    assert _call(okta, "GET", "/api/v1/logs").status_code == 200
    throttled = _call(okta, "GET", "/api/v1/logs")
    assert throttled.status_code == 429 and throttled.json()["errorCode"] == "E0000047"
    assert throttled.headers["X-Rate-Limit-Remaining"] == "0"
    okta.advance(reset - okta.now())
    assert _call(okta, "GET", "/api/v1/logs").status_code == 200


def test_unknown_paths_and_methods_answer_okta_errors(okta):
    assert _call(okta, "GET", "/api/v1/nothing").json()["errorCode"] == "E0000008"
    assert _call(okta, "PATCH", "/api/v1/logs").json()["errorCode"] == "E0000022"

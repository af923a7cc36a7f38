"""OktaClient against the Okta fake: every operation, the service-app and API-token
authentication, and the failures Okta documents (expired token, missing permission, user
gone, duplicate role, throttling with `X-Rate-Limit-Reset`, server errors, timeouts)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

from recovery.connectors.cloud import ChangeKind
from recovery.connectors.okta_client import OktaApiToken, OktaClient, OktaServiceApp
from recovery.connectors.vendor_http import VendorError
from tests.fakes.okta import FakeOkta

CLIENT_ID = "0oavouchsafe1234567"
API_TOKEN = "00QCjAl4MlV-WPXM-vouchsafe-0HmjFx-vbGua"
SCOPES = {"okta.users.manage", "okta.roles.manage", "okta.logs.read"}


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


@pytest.fixture
def client(okta: FakeOkta, app_key: RSAKey, slept: list[float]) -> OktaClient:
    return _client(okta, _app(app_key), slept)


def _app(key: RSAKey | ECKey, **options: Any) -> OktaServiceApp:
    pem = key.as_pem(private=True).decode()
    return OktaServiceApp(CLIENT_ID, pem, key_id=key.kid, **options)


def _client(okta: FakeOkta, credentials, slept: list[float], **options: Any) -> OktaClient:
    """The client on the fake's clock; waiting records the wait and moves that clock."""

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        okta.advance(seconds)

    return OktaClient(okta.url, credentials, sleep=sleep, clock=okta.now, **options)


@pytest.fixture
def dade(okta: FakeOkta) -> dict[str, Any]:
    return okta.add_user("dade.murphy@example.com", "Dade", "Murphy")


def _token_requests(okta: FakeOkta) -> list[dict[str, str]]:
    return [request.form() for request in okta.sent("POST", r"^/oauth2/v1/token$")]


# --- authentication -------------------------------------------------------------------------


def test_the_service_app_signs_a_one_time_assertion_and_reuses_the_token(okta, client, dade):
    assert client.user_get(dade["id"]).username == "dade.murphy@example.com"
    assert client.user_get("dade.murphy@example.com").id == dade["id"]
    (form,) = _token_requests(okta)
    assert form["grant_type"] == "client_credentials"
    assert form["scope"].split() == ["okta.users.manage", "okta.roles.manage", "okta.logs.read"]
    claims = jwt.decode(form["client_assertion"], okta.apps[CLIENT_ID][0]).claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        CLIENT_ID,
        CLIENT_ID,
        f"{okta.url}/oauth2/v1/token",
    )
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]
    api_calls = okta.sent("GET", r"^/api/v1/users/")
    assert {request.headers["authorization"].split()[0] for request in api_calls} == {"Bearer"}


def test_a_token_near_its_hour_is_renewed_before_okta_refuses_it(okta, client, dade):
    client.user_get(dade["id"])
    okta.advance(3550)
    client.user_get(dade["id"])
    assert len(_token_requests(okta)) == 2
    assert len(okta.sent("GET", "/api/v1/users/")) == 2  # no 401 on the way


def test_a_token_okta_ended_early_is_replaced_once_and_the_call_repeated(okta, client, dade):
    client.user_get(dade["id"])
    okta.end_access_tokens()
    assert client.user_get(dade["id"]).id == dade["id"]
    assert len(_token_requests(okta)) == 2
    assert len(okta.sent("GET", "/api/v1/users/")) == 3  # ok, 401 E0000011, ok


def test_a_token_refused_again_after_renewal_is_an_auth_error(okta, client, dade):
    invalid = {"errorCode": "E0000011", "errorSummary": "Invalid token provided"}
    okta.fail_next("GET", "/api/v1/users/", 401, invalid, times=2)
    with pytest.raises(VendorError) as caught:
        client.user_get(dade["id"])
    assert (caught.value.kind, caught.value.code) == ("auth", "E0000011")
    assert len(_token_requests(okta)) == 2


def test_each_token_request_has_its_own_jti_and_a_replayed_assertion_is_refused(okta, client, dade):
    client.user_get(dade["id"])
    okta.advance(3600)
    client.user_get(dade["id"])
    first, second = _token_requests(okta)
    keys = okta.apps[CLIENT_ID][0]
    jtis = {jwt.decode(f["client_assertion"], keys).claims["jti"] for f in (first, second)}
    assert len(jtis) == 2
    replay = requests.post(f"{okta.url}/oauth2/v1/token", data=second, timeout=5)
    assert replay.status_code == 401
    assert replay.json()["error_description"] == "The client_assertion token has already been used."


def test_a_scope_the_app_was_not_granted_fails_as_auth_with_okta_s_reason(okta, app_key, slept):
    client = _client(okta, _app(app_key, scopes=("okta.users.manage", "okta.apps.manage")), slept)
    with pytest.raises(VendorError) as caught:
        client.factors_list("00u1")
    assert (caught.value.kind, caught.value.status, caught.value.code) == (
        "auth",
        400,
        "invalid_scope",
    )
    assert okta.sent("GET", "/api/v1/") == []


def test_an_ec_key_given_as_a_jwk_signs_es256(okta, slept, dade):
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
    okta.register_app(CLIENT_ID, [key.as_dict(private=False)], SCOPES)
    credentials = OktaServiceApp(CLIENT_ID, json.dumps(key.as_dict(private=True)))
    assert _client(okta, credentials, slept).user_get(dade["id"]).id == dade["id"]
    (form,) = _token_requests(okta)
    header = jws.extract_compact(form["client_assertion"].encode()).headers()
    assert (header["alg"], header["kid"]) == ("ES256", "ec-1")


def test_a_public_key_is_refused_when_the_client_is_built(app_key, okta):
    public = app_key.as_pem(private=False).decode()
    with pytest.raises(ValueError, match="private key"):
        OktaClient(okta.url, OktaServiceApp(CLIENT_ID, public))


def test_the_api_token_fallback_sends_ssws_and_never_asks_for_tokens(okta, slept, dade):
    client = _client(okta, OktaApiToken(API_TOKEN), slept)
    assert client.user_get(dade["id"]).display_name == "Dade Murphy"
    assert okta.sent("GET", "/api/v1/users/")[0].headers["authorization"] == f"SSWS {API_TOKEN}"
    assert _token_requests(okta) == []
    assert API_TOKEN not in repr(OktaApiToken(API_TOKEN))


# --- users and authenticators ---------------------------------------------------------------


def test_user_get_reads_the_user_and_a_missing_one_is_not_found(okta, client, dade):
    okta.users[dade["id"]]["status"] = "SUSPENDED"
    user = client.user_get("dade.murphy@example.com")
    assert (user.id, user.username, user.display_name, user.enabled, user.status) == (
        dade["id"],
        "dade.murphy@example.com",
        "Dade Murphy",
        False,
        "SUSPENDED",
    )
    assert okta.sent("GET", "/api/v1/users/")[0].path == "/api/v1/users/dade.murphy%40example.com"
    with pytest.raises(VendorError) as caught:
        client.user_get("gone@example.com")
    assert (caught.value.kind, caught.value.code) == ("not_found", "E0000007")
    assert "gone@example.com (User)" in caught.value.message


def test_factors_are_listed_deleted_and_reset(okta, client, dade):
    push = okta.add_factor(dade["id"], "push")
    key = okta.add_factor(dade["id"], "webauthn", provider="FIDO")
    methods = client.factors_list(dade["id"])
    assert [(m.id, m.kind, m.label, m.phishing_resistant) for m in methods] == [
        (push["id"], "push", "OKTA", False),
        (key["id"], "webauthn", "FIDO", True),
    ]
    assert methods[0].created_at is not None and methods[0].created_at.tzinfo is not None
    client.factor_delete(dade["id"], push["id"])
    client.factor_delete(dade["id"], push["id"])  # already gone: done
    assert okta.factors[dade["id"]] == [key]
    client.factors_reset(dade["id"])
    assert okta.factors[dade["id"]] == []


def test_a_factor_of_a_user_who_is_gone_counts_as_deleted(okta, client):
    client.factor_delete("00ugone", "opf123")
    assert len(okta.sent("DELETE", "/factors/")) == 1


def test_sessions_clear_ends_sessions_and_revokes_oauth_tokens(okta, client, dade):
    okta.give_sessions(dade["id"], sessions=2, oauth_tokens=4)
    client.sessions_clear(dade["id"])
    assert okta.revocations == [
        {"user": dade["id"], "sessions": 2, "oauth_tokens": 4, "forget_devices": True}
    ]
    (sent,) = okta.sent("DELETE", "/sessions")
    assert sent.arg("oauthTokens") == "true"


def test_unlock_returns_a_locked_out_user_to_active(okta, client, dade):
    okta.users[dade["id"]]["status"] = "LOCKED_OUT"
    client.unlock(dade["id"])
    assert okta.users[dade["id"]]["status"] == "ACTIVE"
    with pytest.raises(VendorError) as caught:  # Okta unlocks only a LOCKED_OUT user
        client.unlock(dade["id"])
    assert (caught.value.kind, caught.value.code) == ("forbidden", "E0000038")


def test_profile_update_sets_only_the_attributes_given(okta, client, dade):
    okta.users[dade["id"]]["profile"]["secondEmail"] = "acid.burn@evil.example"
    client.profile_update(dade["id"], {"secondEmail": None, "mobilePhone": "+1 555 0100"})
    profile = okta.users[dade["id"]]["profile"]
    assert "secondEmail" not in profile and profile["mobilePhone"] == "+1 555 0100"
    assert profile["login"] == "dade.murphy@example.com"  # a partial update
    (sent,) = okta.sent("POST", rf"^/api/v1/users/{dade['id']}$")
    assert sent.json() == {"profile": {"secondEmail": None, "mobilePhone": "+1 555 0100"}}


def test_a_clients_consent_and_refresh_tokens_are_revoked(okta, client, dade):
    okta.give_consent(dade["id"], "0oaevil")
    okta.give_consent(dade["id"], "0oamail")
    client.client_grants_revoke(dade["id"], "0oaevil")
    client.client_grants_revoke(dade["id"], "0oaevil")  # nothing left: done
    assert okta.consents[dade["id"]] == okta.refresh_tokens[dade["id"]] == {"0oamail"}
    assert len(okta.sent("DELETE", "/clients/0oaevil/grants$")) == 2


# --- password -------------------------------------------------------------------------------


def test_the_reset_link_is_the_owners_secret_and_stays_out_of_repr_and_logs(
    okta, client, dade, caplog
):
    with caplog.at_level(logging.DEBUG):
        issued = client.password_reset_link(dade["id"])
    url = okta.reset_urls[dade["id"]]
    assert issued.secret == url and issued.usable_once
    assert url not in repr(issued) and url.rsplit("/", 1)[-1] not in issued.id
    assert url not in caplog.text and "reset_password" in caplog.text  # urllib3 did log the call
    assert okta.users[dade["id"]]["status"] == "RECOVERY"
    assert okta.sent("POST", "/reset_password")[0].arg("sendEmail") == "false"


def test_an_error_on_reset_carries_okta_s_reason_and_no_link(okta, client, dade):
    denied = {"errorCode": "E0000006", "errorSummary": "You do not have permission"}
    okta.fail_next("POST", "/reset_password", 403, denied)
    with pytest.raises(VendorError) as caught:
        client.password_reset_link(dade["id"])
    assert (caught.value.kind, caught.value.code) == ("forbidden", "E0000006")
    assert dade["id"] not in okta.reset_urls


def test_password_expire_puts_the_user_in_password_expired(okta, client, dade):
    client.password_expire(dade["id"])
    assert okta.users[dade["id"]]["status"] == "PASSWORD_EXPIRED"


# --- admin roles ----------------------------------------------------------------------------


def test_roles_are_listed_unassigned_and_assigned_back(okta, client, dade):
    held = okta.add_role(dade["id"], "SUPER_ADMIN")
    (listed,) = client.roles_list(dade["id"])
    assert (listed.id, listed.role_id, listed.role_name, listed.scope) == (
        held["id"],
        "SUPER_ADMIN",
        "Super Organization administrator",
        "/",
    )
    client.role_unassign(dade["id"], held["id"])
    client.role_unassign(dade["id"], held["id"])  # already gone: done
    assert okta.roles[dade["id"]] == []
    restored = client.role_assign(dade["id"], "SUPER_ADMIN")
    assert [a["id"] for a in okta.roles[dade["id"]]] == [restored.id]
    assert okta.sent("POST", "/roles$")[0].json() == {"type": "SUPER_ADMIN"}


def test_assigning_a_role_already_held_answers_the_existing_assignment(okta, client, dade):
    held = okta.add_role(dade["id"], "ORG_ADMIN")
    again = client.role_assign(dade["id"], "ORG_ADMIN")
    assert again.id == held["id"] and len(okta.roles[dade["id"]]) == 1
    assert len(okta.sent("GET", "/roles$")) == 1  # read after Okta's 409 E0000090


def test_a_custom_role_is_assigned_back_to_its_resource_set(okta, client, dade):
    restored = client.role_assign(dade["id"], "cr0Yq6IJxGIr0ouum0g3", "iamoJDFKaJxGIr0oamd9g")
    assert (restored.role_id, restored.scope) == ("cr0Yq6IJxGIr0ouum0g3", "iamoJDFKaJxGIr0oamd9g")
    assert okta.sent("POST", "/roles$")[0].json() == {
        "type": "CUSTOM",
        "role": "cr0Yq6IJxGIr0ouum0g3",
        "resource-set": "iamoJDFKaJxGIr0oamd9g",
    }


def test_a_conflict_without_the_role_held_is_raised(okta, client, dade):
    busy = {"errorCode": "E0000268", "errorSummary": "Another request is making changes"}
    okta.fail_next("POST", "/roles$", 409, busy)
    with pytest.raises(VendorError) as caught:
        client.role_assign(dade["id"], "HELP_DESK_ADMIN")
    assert (caught.value.kind, caught.value.code) == ("conflict", "E0000268")


def test_a_missing_permission_is_forbidden(okta, app_key, slept, dade):
    okta.register_app(CLIENT_ID, [app_key.as_dict(private=False)], {"okta.users.manage"})
    client = _client(okta, _app(app_key, scopes=("okta.users.manage",)), slept)
    with pytest.raises(VendorError) as caught:
        client.roles_list(dade["id"])
    assert (caught.value.kind, caught.value.status, caught.value.code) == (
        "forbidden",
        403,
        "E0000006",
    )


# --- System Log -----------------------------------------------------------------------------


def _as_user(user_id: str) -> dict[str, str]:
    return {"id": user_id, "type": "User"}


def test_changes_since_follows_next_links_until_an_empty_page(okta, client, dade):
    enrolments = [
        okta.log_event(
            "user.mfa.factor.activate",
            actor=_as_user(dade["id"]),
            targets=[_as_user(dade["id"]), {"id": f"opf{n}", "type": "AuthenticatorEnrollment"}],
        )
        for n in range(5)
    ]
    since = datetime.now(UTC) - timedelta(hours=1)
    changes = client.changes_since(dade["id"], since, page_size=2)
    assert [c.id for c in changes] == [e["uuid"] for e in enrolments]
    assert {c.kind for c in changes} == {ChangeKind.MFA_ENROLLED}
    assert changes[0].target["targets"] == [
        {"type": "AuthenticatorEnrollment", "id": "opf0", "name": None}
    ]
    pages = okta.sent("GET", "^/api/v1/logs$")
    assert len(pages) == 4  # 2 + 2 + 1 events, then the empty page ends the poll
    assert pages[0].arg("since") == since.isoformat(timespec="milliseconds")
    assert pages[1].arg("after") == enrolments[1]["uuid"]


def test_changes_map_okta_event_types_to_r35_kinds(okta, client, dade):
    me, admin = _as_user(dade["id"]), {"id": "00uadmin", "type": "User"}
    address = okta.log_event(
        "user.account.update_profile",
        actor=me,
        targets=[
            me
            | {
                "changeDetails": {
                    "from": {"secondEmail": "dade@example.com", "title": "a"},
                    "to": {"secondEmail": "acid.burn@evil.example", "title": "b"},
                }
            }
        ],
    )
    okta.log_event(  # a profile change that is not a recovery address
        "user.account.update_profile",
        actor=me,
        targets=[me | {"changeDetails": {"from": {"title": "a"}, "to": {"title": "b"}}}],
    )
    consent = okta.log_event(
        "app.oauth2.as.consent.grant",
        actor=me,
        targets=[{"id": "0oaevil", "type": "AppInstance", "displayName": "Evil Mail"}],
    )
    role = okta.log_event(
        "user.account.privilege.grant",
        actor=admin,
        targets=[me],
        debug_data={"privilegeGranted": "Super administrator"},
    )
    okta.log_event("user.mfa.factor.activate", actor=me, targets=[me], outcome="FAILURE")
    ourselves = {"id": CLIENT_ID, "type": "PublicClientApp"}
    # the connector's own restore of a role is not a change to undo
    okta.log_event("user.account.privilege.grant", actor=ourselves, targets=[me])
    okta.log_event("user.account.privilege.grant", actor=me, targets=[admin])  # not on dade

    changes = client.changes_since(dade["id"], datetime.now(UTC) - timedelta(minutes=5))
    assert [(c.id, c.kind) for c in changes] == [
        (address["uuid"], ChangeKind.ADDRESS_CHANGED),
        (consent["uuid"], ChangeKind.OAUTH_CONSENT),
        (role["uuid"], ChangeKind.PRIVILEGED_ROLE),
    ]
    assert changes[0].target["previous"] == {"secondEmail": "dade@example.com"}
    assert changes[1].target["targets"][0]["id"] == "0oaevil"
    assert changes[2].target["privilege"] == "Super administrator"


def test_the_log_filter_sent_is_one_the_fake_accepts(okta, client, dade):
    """The fake refuses filter shapes it does not know (400 E0000031/E0000053): the client's
    must pass, and must be the user's and the mapped event types only."""
    okta.log_event("user.session.start", actor=_as_user(dade["id"]), targets=[])
    assert client.changes_since(dade["id"], datetime.now(UTC) - timedelta(minutes=1)) == []
    query = okta.sent("GET", "/api/v1/logs")[0].arg("filter")
    assert f'actor.id eq "{dade["id"]}"' in query and "user.session.start" not in query


# --- throttling, server errors, timeouts ----------------------------------------------------


def test_429_waits_until_x_rate_limit_reset_then_repeats(okta, client, dade, slept):
    okta.rate_limit = 2
    client.user_get(dade["id"])
    probe = requests.get(
        f"{okta.url}/api/v1/logs", headers={"Authorization": f"SSWS {API_TOKEN}"}, timeout=5
    )
    reset = int(probe.headers["X-Rate-Limit-Reset"])
    before = okta.now()
    assert client.factors_list(dade["id"]) == []
    assert len(slept) == 1 and slept[0] == pytest.approx(reset - before, abs=0.5)
    assert len(okta.sent("GET", "/factors$")) == 2  # 429 E0000047, then the answer


def test_a_reset_beyond_the_longest_wait_is_throttled_without_waiting(okta, app_key, slept, dade):
    client = _client(okta, _app(app_key), slept, max_wait=5)
    okta.rate_limit = 1
    client.user_get(dade["id"])
    with pytest.raises(VendorError) as caught:
        client.user_get(dade["id"])
    assert (caught.value.kind, caught.value.code) == ("throttled", "E0000047")
    assert caught.value.retry_after > 5 and slept == []


def test_a_server_error_is_repeated_and_a_lasting_one_is_unavailable(okta, client, dade, slept):
    body = {"errorCode": "E0000009", "errorSummary": "Internal Server Error"}
    okta.fail_next("GET", "/roles$", 500, body)
    assert client.roles_list(dade["id"]) == []
    okta.fail_next("POST", "/expire_password", 503, body, times=3)
    with pytest.raises(VendorError) as caught:
        client.password_expire(dade["id"])
    assert (caught.value.kind, caught.value.code) == ("unavailable", "E0000009")
    assert okta.users[dade["id"]]["status"] == "ACTIVE"


def test_a_hang_is_repeated_then_reported_as_a_timeout(okta, app_key, slept, dade):
    client = _client(okta, _app(app_key), slept, timeout=0.3, attempts=2)
    client.user_get(dade["id"])  # the token first, so the hangs hit the API call
    okta.fail_next("GET", "/factors$", hang_seconds=0.6)
    assert client.factors_list(dade["id"]) == []
    okta.fail_next("GET", "/factors$", hang_seconds=0.6, times=2)
    with pytest.raises(VendorError) as caught:
        client.factors_list(dade["id"])
    assert caught.value.kind == "timeout"

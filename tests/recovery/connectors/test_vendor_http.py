"""VendorSession against a real HTTP fake: token refresh, throttling, retries, error kinds."""

from __future__ import annotations

import pytest

from recovery.connectors.vendor_http import VendorError, VendorSession
from tests.fakes.base import FakeRequest, FakeResponse, FakeService, route


class Api(FakeService):
    """A vendor that takes only the token it issued last."""

    def __init__(self) -> None:
        super().__init__()
        self.valid_token = "t1"

    @route("GET", r"/things/(?P<thing>\w+)")
    def thing(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.valid_token}":
            return FakeResponse(401, {"error": {"code": "InvalidAuthenticationToken"}})
        return FakeResponse(200, {"id": request.params["thing"]})

    @route("POST", r"/things")
    def create(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(201, {"made": True})


def _reader(body):
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return error.get("code", ""), error.get("message", "")


@pytest.fixture
def api():
    with Api() as fake:
        yield fake


def _session(api, tokens, slept, **options) -> VendorSession:
    def token(fresh: bool) -> str:
        tokens.append(fresh)
        return api.valid_token if fresh else "t1"

    return VendorSession(api.url, token, error_reader=_reader, sleep=slept.append, **options)


def test_an_expired_token_is_refreshed_once_and_the_call_repeated(api):
    tokens, slept = [], []
    api.valid_token = "t2"  # the vendor expired t1
    assert _session(api, tokens, slept).json("GET", "/things/a") == {"id": "a"}
    assert tokens == [False, True]


def test_a_token_refused_twice_is_an_auth_error(api):
    api.valid_token = "never"
    with pytest.raises(VendorError) as caught:
        VendorSession(api.url, lambda fresh: "t1", error_reader=_reader).json("GET", "/things/a")
    assert caught.value.kind == "auth" and caught.value.code == "InvalidAuthenticationToken"


def test_throttling_waits_what_the_vendor_asks_then_repeats(api):
    tokens, slept = [], []
    api.fail_next("GET", "/things/", 429, {"error": {"code": "TooMany"}}, {"Retry-After": "7"})
    assert _session(api, tokens, slept).json("GET", "/things/b") == {"id": "b"}
    assert slept == [7.0]


def test_a_wait_longer_than_allowed_is_given_up_as_throttled(api):
    tokens, slept = [], []
    api.fail_next("GET", "/things/", 429, {"error": {"code": "TooMany"}}, {"Retry-After": "120"})
    with pytest.raises(VendorError) as caught:
        _session(api, tokens, slept, max_wait=30).json("GET", "/things/b")
    assert caught.value.kind == "throttled" and caught.value.retry_after == 120 and slept == []


def test_a_vendors_own_wait_header_is_read_through_the_retry_after_hook(api):
    """A vendor that names the wait otherwise (Okta: an epoch in `X-Rate-Limit-Reset`) passes
    its reader; the session waits what it answers, and `Retry-After` is then not consulted."""
    tokens, slept = [], []
    reset_at = {"X-Rate-Limit-Reset": "1000", "Retry-After": "99"}
    api.fail_next("GET", "/things/", 429, {"error": {"code": "TooMany"}}, reset_at)
    session = _session(
        api,
        tokens,
        slept,
        retry_after=lambda answer: float(answer.headers["X-Rate-Limit-Reset"]) - 996.5,
    )
    assert session.json("GET", "/things/f") == {"id": "f"}
    assert slept == [3.5]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (412, "conflict"),
        (400, "rejected"),
    ],
)
def test_client_errors_are_not_repeated_and_carry_their_kind(api, status, kind):
    tokens, slept = [], []
    api.fail_next("GET", "/things/", status, {"error": {"code": "X", "message": "why"}})
    with pytest.raises(VendorError) as caught:
        _session(api, tokens, slept).json("GET", "/things/c")
    assert (caught.value.kind, caught.value.status, caught.value.message) == (kind, status, "why")
    assert len(api.sent("GET", "/things/c")) == 1


def test_a_server_error_is_repeated_for_a_read_but_not_for_a_change(api):
    tokens, slept = [], []
    api.fail_next("GET", "/things/", 502, {"error": {"code": "Bad"}})
    assert _session(api, tokens, slept).json("GET", "/things/d") == {"id": "d"}
    api.fail_next("POST", "/things", 500, {"error": {"code": "Bad"}})
    with pytest.raises(VendorError) as caught:
        _session(api, tokens, slept).json("POST", "/things", json={})
    assert caught.value.kind == "unavailable" and len(api.sent("POST", "/things")) == 1


def test_a_timeout_is_repeated_for_a_read_and_reported_for_a_change(api):
    tokens, slept = [], []
    api.fail_next("GET", "/things/", hang_seconds=0.6)
    assert _session(api, tokens, slept, timeout=0.2).json("GET", "/things/e") == {"id": "e"}
    api.fail_next("POST", "/things", hang_seconds=0.6)
    with pytest.raises(VendorError) as caught:
        _session(api, tokens, slept, timeout=0.2).json("POST", "/things", json={})
    assert caught.value.kind == "timeout"


def test_a_refused_connection_is_unavailable_after_the_attempts():
    with pytest.raises(VendorError) as caught:
        VendorSession("http://127.0.0.1:1", lambda fresh: "t", sleep=lambda s: None).json(
            "GET", "/x"
        )
    assert caught.value.kind == "unavailable" and caught.value.status is None

"""HTTP to a cloud identity provider's REST API, with the failures every vendor documents.

The cloud connectors (Entra ID through Microsoft Graph, Okta) call their vendor through one
`VendorSession`, which turns the vendor's answers into either a parsed body or a
`VendorError` with a stable `kind`, so that connectors decide on kinds, not on status codes:

| answer | what the session does | `VendorError.kind` if it gives up |
|---|---|---|
| 401 | asks the token source for a fresh token once, repeats the request | `auth` |
| 403 | nothing: a permission the app registration lacks | `forbidden` |
| 404 | nothing | `not_found` |
| 409 / 412 | nothing | `conflict` |
| 429, 503 + a wait | waits as asked (at most `max_wait`), repeats | `throttled` |
| other 5xx, timeout, refused | repeats after a backoff | `unavailable`, `timeout` |
| other 4xx | nothing | `rejected` |

Repeats are bounded by `attempts`; a request that changes something is repeated only when the
vendor says it did not happen (429/503 before any work, or a connection never made), or when
the caller marks it idempotent (`DELETE`, `PUT`, and calls the connector made safe to repeat).
The sleeping function is injectable so tests do not wait. How long the vendor asks to wait is
read by `retry_after`: `Retry-After` by default; a vendor that signals it otherwise (Okta's
`X-Rate-Limit-Reset`, an epoch time) passes its own reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

AUTH, FORBIDDEN, NOT_FOUND, CONFLICT = "auth", "forbidden", "not_found", "conflict"
THROTTLED, UNAVAILABLE, TIMEOUT, REJECTED = "throttled", "unavailable", "timeout", "rejected"
KIND_OF_STATUS = {401: AUTH, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT, 412: CONFLICT}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass
class VendorError(Exception):
    """A vendor call that did not succeed; `code` and `message` are the vendor's own."""

    kind: str
    status: int | None
    code: str = ""
    message: str = ""
    retry_after: float | None = None

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.kind} ({status}{f', {self.code}' if self.code else ''}): {self.message}"


# A function that returns a bearer token; `fresh=True` asks for a new one (after a 401).
TokenSource = Callable[[bool], str]
# Reads the vendor's error body into (code, message).
ErrorReader = Callable[[Any], tuple[str, str]]
# Reads from an unsuccessful answer how many seconds the vendor asks to wait (None: no wait asked).
RetryAfterReader = Callable[[requests.Response], float | None]


def _plain_error(body: Any) -> tuple[str, str]:
    return "", str(body)[:300]


def read_retry_after(answer: requests.Response) -> float | None:
    """`Retry-After` in seconds (the delta form; an HTTP date is read as "soon")."""
    raw = answer.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


class VendorHttp(requests.Session):
    """A requests session for one vendor: a default timeout on every request, and the CA bundle
    it is given kept even when REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set (requests lets those
    override a session's own `verify`). Token libraries (msal) take it as their HTTP client."""

    def __init__(self, *, verify: bool | str = True, timeout: float = 10.0) -> None:
        super().__init__()
        self.verify = verify
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and isinstance(self.verify, str):
            merged["verify"] = self.verify
        return merged


class VendorSession:
    """Authenticated requests to one vendor base URL."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        scheme: str = "Bearer",
        error_reader: ErrorReader = _plain_error,
        retry_after: RetryAfterReader = read_retry_after,
        timeout: float = 10.0,
        attempts: int = 3,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool | str = True,
    ) -> None:
        """`verify`: check the vendor's TLS certificate (True), or against this CA bundle."""
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._scheme = scheme
        self._error_reader = error_reader
        self._retry_after = retry_after
        self._timeout = timeout
        self._attempts = attempts
        self._max_wait = max_wait
        self._sleep = sleep
        self._http = VendorHttp(verify=verify, timeout=timeout)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """The vendor's successful answer (2xx), or `VendorError`."""
        url = path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
        repeatable = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        fresh_token = False
        last: VendorError | None = None
        for attempt in range(self._attempts):
            sent_headers = {
                "Authorization": f"{self._scheme} {self._token(fresh_token)}",
                "Accept": "application/json",
                **(headers or {}),
            }
            try:
                answer = self._http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=sent_headers,
                    timeout=self._timeout,
                )
            except requests.ConnectionError as error:
                if isinstance(error, requests.ConnectTimeout) or "refused" in str(error).lower():
                    last = VendorError(UNAVAILABLE, None, message=str(error)[:300])
                    self._backoff(attempt)
                    continue  # never reached the vendor: safe to repeat
                raise VendorError(UNAVAILABLE, None, message=str(error)[:300]) from error
            except requests.Timeout as error:
                last = VendorError(TIMEOUT, None, message=f"no answer in {self._timeout:g} s")
                if not repeatable:
                    raise last from error
                self._backoff(attempt)
                continue
            if answer.ok:
                return answer
            last = self._error(answer)
            if last.kind == AUTH and not fresh_token:
                fresh_token = True
                continue
            if last.status in (429, 503) and last.retry_after is not None:
                if last.retry_after > self._max_wait:
                    raise last
                self._sleep(last.retry_after)
                continue
            if last.status is not None and last.status >= 500 and repeatable:
                self._backoff(attempt)
                continue
            raise last
        assert last is not None
        raise last

    def json(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        """`request`, answering the parsed body (None for 204 No Content)."""
        answer = self.request(method, path_or_url, **kwargs)
        return answer.json() if answer.content else None

    def _backoff(self, attempt: int) -> None:
        if attempt + 1 < self._attempts:
            self._sleep(min(self._max_wait, 0.5 * 2**attempt))

    def _error(self, answer: requests.Response) -> VendorError:
        try:
            body: Any = answer.json()
        except ValueError:
            body = answer.text
        code, message = self._error_reader(body)
        status = answer.status_code
        if status in KIND_OF_STATUS:
            kind = KIND_OF_STATUS[status]
        elif status == 429:
            kind = THROTTLED
        elif status >= 500:
            kind = UNAVAILABLE
        else:
            kind = REJECTED
        return VendorError(kind, status, code, message, self._retry_after(answer))

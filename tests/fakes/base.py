"""The harness of the vendor fakes: a real HTTP server on 127.0.0.1, in a thread of the test
process, that a connector reaches over the network like the vendor's API.

Cloud identity providers lie outside this machine, so their connectors are tested against
fakes the project owns (`tests/fakes/<vendor>.py`). Each fake subclasses `FakeService`,
declares its routes with `@route(METHOD, r"/path/(?P<id>[^/]+)")` and keeps the vendor's
state in plain Python objects. The harness gives every fake the same test controls:

- `fail_next(...)`: the next matching request(s) answer a vendor error (status, body,
  headers such as `Retry-After`) or hang past the client's timeout;
- `requests`: every request the fake received (method, path, query, headers, body), for
  asserting what a connector sent and that a retry did not repeat a change;
- `advance(seconds)`: move the fake's clock (token expiry, `Retry-After`, event times).

Nothing here knows a vendor: the documented behaviour (paths, status codes, error bodies,
pagination, throttling) is each fake's.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # the route's named groups

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.body.decode()).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class FakeResponse:
    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An answer forced on the next `times` requests matching `method` and `path` (a regex
    searched in the path)."""

    method: str
    path: str
    response: FakeResponse | None  # None: hang for `hang_seconds`, then close
    times: int = 1
    hang_seconds: float = 0.0


Handler = Callable[["FakeService", FakeRequest], FakeResponse]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Declare a handler of a fake for `method` on paths matching `pattern` (full match)."""

    def mark(handler: Handler) -> Handler:
        handler.route = (method.upper(), re.compile(pattern))  # type: ignore[attr-defined]
        return handler

    return mark


class FakeService:
    """A vendor API fake served over HTTP; `with Fake() as fake:` starts and stops it."""

    routes: ClassVar[list[tuple[str, re.Pattern[str], Handler]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.routes = [
            (*handler.route, handler)
            for klass in reversed(cls.__mro__)
            for handler in vars(klass).values()
            if callable(handler) and hasattr(handler, "route")
        ]

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self._faults: list[Fault] = []
        self._offset = 0.0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Where `start` listens: 0 (tests) takes a free port; the development runner
        # (scripts/fake_idps.py) sets a fixed one, which the dev connector settings name.
        self.listen_port = 0

    # --- test controls --------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def now(self) -> float:
        """The fake's clock: real time plus what `advance` added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def fail_next(
        self,
        method: str,
        path: str,
        status: int = 500,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        hang_seconds: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with this error (or, with `hang_seconds`,
        no answer at all until then: the client's timeout)."""
        response = None if hang_seconds else FakeResponse(status, body, headers or {})
        with self._lock:
            self._faults.append(Fault(method.upper(), path, response, times, hang_seconds))

    def sent(self, method: str, path: str) -> list[FakeRequest]:
        """The requests received for `method` whose path matches `path` (a regex search)."""
        return [r for r in self.requests if r.method == method and re.search(path, r.path)]

    # --- serving --------------------------------------------------------------------------

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = FakeRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                response = service.answer(request)
                if response is None:
                    self.close_connection = True
                    return
                if isinstance(response.body, bytes | None):
                    payload = response.body or b""
                    content_type = response.headers.get("Content-Type", "text/plain")
                else:
                    payload = json.dumps(response.body).encode()
                    content_type = "application/json"
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", self.listen_port or free_port()), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, request: FakeRequest) -> FakeResponse | None:
        """The fault due for `request`, else its route's answer, else the fake's 404/405."""
        with self._lock:
            self.requests.append(request)
            fault = self._take_fault(request)
        if fault is not None:
            if fault.response is None:
                time.sleep(fault.hang_seconds)
                return None
            return fault.response
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = match.groupdict()
            with self._lock:
                return handler(self, request)
        if allowed:
            return self.method_not_allowed(request)
        return self.not_found(request)

    def _take_fault(self, request: FakeRequest) -> Fault | None:
        for fault in self._faults:
            if fault.method == request.method and re.search(fault.path, request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # Each vendor answers these in its own error shape.
    def not_found(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(404, {"error": "not found"})

    def method_not_allowed(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(405, {"error": "method not allowed"})

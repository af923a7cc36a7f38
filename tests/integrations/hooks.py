"""Shared pieces of the webhook tests: a real HTTP receiver, key principals, event emitters."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.db import transaction

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from integrations.models import WebhookSubscription
from integrations.outbox import webhooks_derive
from integrations.services import webhook_subscription_create
from tenants.apikeys import apikey_create
from tenants.choices import PrincipalKind, Role
from tenants.models import Tenant, User

from ..factories import staff


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook endpoint on 127.0.0.1 in a thread; answers with the queued status codes."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.default_status = 200
        self.delay_seconds = 0.0
        self.redirect_to = ""
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    owner.requests.append(Received(self.path, dict(self.headers), body))
                    status = owner.statuses.popleft() if owner.statuses else owner.default_status
                if owner.delay_seconds:
                    time.sleep(owner.delay_seconds)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", owner.redirect_to or "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/vouchsafe"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def key_principal(tenant: Tenant, scopes: list[str], *, admin: User | None = None) -> User:
    """The non-human principal of a new API key of `tenant` with `scopes`."""
    admin = admin or staff(Role.TENANT_ADMIN, tenant=tenant)
    issued = apikey_create(
        actor=admin, tenant=tenant, name="SIEM", kind=PrincipalKind.INTEGRATION, scopes=scopes
    )
    return issued.key.principal


def subscribe(
    tenant: Tenant, url: str, event_types: list[str], *, admin: User | None = None
) -> tuple[WebhookSubscription, str]:
    admin = admin or staff(Role.TENANT_ADMIN, tenant=tenant)
    return webhook_subscription_create(actor=admin, tenant=tenant, url=url, event_types=event_types)


def emit(
    tenant: Tenant,
    action: str = "alert.raised",
    *,
    data: dict[str, Any] | None = None,
    target: Any = None,
    derive: bool = True,
) -> AuditEvent:
    """Record one audit event in the tenant's chain in its own transaction (as a service does),
    then (`derive`) write its deliveries as the worker does once it has committed."""
    with transaction.atomic():
        event = record(
            action=action,
            actor=Actor.system("detection"),
            tenant=tenant,
            target=target,
            data={"type": "sim_swap_recovery_attempt"} if data is None else data,
        )
    if derive:
        webhooks_derive(tenant_id=tenant.pk)
    return event

"""The webhook connector: the tenant's own automation makes the change, asked by a signed POST.

The request leaves through the same transactional outbox as every other webhook (a row written
in the caller's transaction, sent after commit by a worker, retried with backoff, logged per
attempt, given up as `webhook.delivery_dead`), signed the same way
(`Vouchsafe-Signature: t=…,v1=HMAC-SHA256(secret, "<t>." + body)`, see `integrations.signing`).
The outbox belongs to the integrations app, a layer above this one, so it plugs itself in at
start-up with `outbox_register`; without it every call fails closed.

`ok=True` means "queued": the automation is responsible for the change, and for keeping what it
needs to undo it. The snapshot therefore records the request, which `revert` names when it asks
the automation to undo. One request per case and operation: asking again returns the request
already queued. The body carries no secret and never a password (R-10).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from tenants.models import Tenant

from ..addresses import url_origin
from ..models import ProtectedAccount
from .base import CAPABILITY_MISSING, Capability, ExecutionResult, Health, Snapshot

EXECUTE = "connector.execute"
REVERT = "connector.revert"
REVOKE = "connector.revoke_temporary_access"


class OutboxEnqueue(Protocol):
    def __call__(
        self,
        *,
        tenant_id: int,
        event_type: str,
        request_key: str,
        data: dict[str, Any],
        repeatable: bool,
    ) -> tuple[str, bool]:
        """Write one connector request into the outbox in the caller's transaction.

        Returns (delivery id, created). A `request_key` already queued returns that row,
        created=False; with `repeatable`, only a still-pending row of that key is reused.
        """
        ...


_outbox: OutboxEnqueue | None = None


def outbox_register(enqueue: OutboxEnqueue | None) -> None:
    """Called by the app that owns the outbox (integrations) when Django starts."""
    global _outbox
    _outbox = enqueue


def outbox_registered() -> bool:
    return _outbox is not None


class WebhookConnector:
    kind = "webhook"
    # Queued to the tenant's automation, which makes the change.
    capabilities: frozenset[Capability] = frozenset({Capability.EXECUTE, Capability.REVERT})

    def __init__(self, *, tenant: Tenant, settings: dict[str, Any]) -> None:
        self.tenant = tenant
        self.url: str = settings["url"]
        self.secret_env: str = settings["secret_env"]

    @property
    def path(self) -> str:
        return f"webhook {url_origin(self.url)}"

    def _account(self, account: ProtectedAccount) -> dict[str, str]:
        return {"external_id": account.external_id, "username": account.username}

    def _send(
        self,
        event_type: str,
        request_key: str,
        data: dict[str, Any],
        *,
        repeatable: bool = False,
        snapshot: Callable[[str], Snapshot] | None = None,
    ) -> ExecutionResult:
        if _outbox is None:
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path=self.path,
                error="No webhook outbox is installed (the integrations app provides it).",
            )
        delivery, created = _outbox(
            tenant_id=self.tenant.pk,
            event_type=event_type,
            request_key=request_key,
            data={"operation": event_type.removeprefix("connector."), **data},
            repeatable=repeatable,
        )
        return ExecutionResult(
            ok=True,
            connector=self.kind,
            path=self.path,
            snapshot=snapshot(delivery) if snapshot else None,
            detail={
                "asynchronous": True,
                "delivery": delivery,
                "queued": created,
                "changed": created,
            },
        )

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        return None  # the automation reads and keeps the state it changes

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        def taken(delivery: str) -> Snapshot:
            return Snapshot(
                account.external_id,
                {
                    "connector": self.kind,
                    "case_id": case_id,
                    "case_type": case_type,
                    "request": delivery,
                },
            )

        return self._send(
            EXECUTE,
            f"execute:{case_id}",
            {"case": case_id, "case_type": case_type, "account": self._account(account)},
            snapshot=taken,
        )

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        state = snapshot.state
        if state.get("connector") != self.kind or not state.get("request"):
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path=self.path,
                error="This snapshot was not taken by the webhook connector.",
            )
        return self._send(
            REVERT,
            f"revert:{state['request']}",
            {
                "case": state.get("case_id"),
                "case_type": state.get("case_type"),
                "account": self._account(account),
                "reverts": state["request"],
            },
        )

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        return self._send(
            REVOKE,
            f"revoke:{account.pk}",
            {"account": self._account(account)},
            repeatable=True,
        )

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        # Never: a password must not travel to (or be queued for) anyone's automation.
        return ExecutionResult(
            ok=False,
            connector=self.kind,
            path=self.path,
            error="The webhook connector never sends a password: the owner sets it at the "
            "organisation's own sign-in page.",
            detail={"code": CAPABILITY_MISSING, "capability": "password_set"},
        )

    def health(self) -> Health:
        problems = []
        if _outbox is None:
            problems.append("no webhook outbox is installed")
        if not os.environ.get(self.secret_env):
            problems.append(f"the signing key variable {self.secret_env} is not set")
        if problems:
            sentence = "; ".join(problems)
            return Health(ok=False, detail=sentence[0].upper() + sentence[1:] + ".")
        return Health(
            ok=True,
            detail=f"Requests are queued for {url_origin(self.url)} and signed with "
            f"{self.secret_env}; delivery is checked per request.",
        )

"""A mailbox delegation's vendor calls hold no audit chain lock: when the Workspace fake
receives the Gmail delegate's creation (at execution) and its deletion (by the sweep), the
tenant's chain head is free (another connection can lock it). Committed transactions, so the
check sees what a worker would."""

from __future__ import annotations

import json
from types import SimpleNamespace

import googleapiclient.http

from recovery.connectors.google_client import SCOPES
from recovery.delegation.services import delegations_expire_sweep
from tenants.choices import Role
from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.google import FakeGoogle

from ..audit.test_chain_lock import _head_is_free
from ..connector_helpers import connector_set
from ..factories import execute, make_tenant, staff
from .delegation_helpers import (
    delegation_of,
    expire_now,
    owner_approves,
    person,
    requested,
    shared_mailbox,
    verified_and_approved,
)


class WatchedGoogle(FakeGoogle):
    """The Workspace fake noting, at each delegate write, whether the chain head is free."""

    chain_key = ""

    def __init__(self) -> None:
        super().__init__()
        self.head_free_at_writes: list[tuple[str, bool]] = []

    def answer(self, request: FakeRequest) -> FakeResponse | None:
        if "/settings/delegates" in request.path and request.method in ("POST", "DELETE"):
            self.head_free_at_writes.append((request.method, _head_is_free(self.chain_key)))
        return super().answer(request)


def test_no_chain_lock_is_held_across_the_delegate_calls(committed, monkeypatch):
    monkeypatch.setattr(googleapiclient.http, "time", SimpleNamespace(sleep=lambda s: None))
    tenant = make_tenant()
    with WatchedGoogle() as google:
        google.chain_key = f"tenant:{tenant.pk}"
        key = google.add_service_account()
        google.delegate(key["client_id"], *SCOPES)
        google.add_user("admin@example.test", "Ada Admin", is_admin=True)
        variable = f"VS_TEST_DELEGATION_LOCK_{tenant.pk}"
        monkeypatch.setenv(variable, json.dumps(key))
        connector_set(
            tenant,
            kind="google_workspace",
            settings={
                "admin_email": "admin@example.test",
                "service_account_key_env": variable,
                "token_uri": f"{google.url}/token",
                "api_endpoint": google.url,
                "gmail_endpoint": google.url,
            },
        )
        owner = person(tenant)
        mailbox, alice = shared_mailbox(tenant, owner), person(tenant)
        google.add_user(mailbox.username, "Payroll")
        google.add_user(alice.username, "Alice")
        agent = staff(Role.AGENT, tenant=tenant)
        case = verified_and_approved(requested(mailbox, alice, agent), agent)
        owner_approves(case, owner)

        execute(case, staff(Role.AGENT, tenant=tenant))
        assert google.delegates_of(mailbox.username) == [alice.username]
        expire_now(case)
        assert delegations_expire_sweep() >= 1
        assert delegation_of(case).status == "removed"
        assert google.head_free_at_writes == [("POST", True), ("DELETE", True)]

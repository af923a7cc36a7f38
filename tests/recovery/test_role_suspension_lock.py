"""R-19's vendor calls hold no audit chain lock: when the Graph fake receives the role removals
of a T2 execution and the role grants of a restore, the tenant's chain head is free (another
connection can lock it). Committed transactions, so the check sees what a worker would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.connectors.entra import validate_entra_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.validation import _Errors
from tenants.choices import Role
from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.graph import FakeGraph

from ..audit.test_chain_lock import _head_is_free
from ..factories import execute, make_tenant, staff
from .test_role_suspension import GLOBAL_ADMIN, held, ready, subject


class WatchedGraph(FakeGraph):
    """The Graph fake noting, at each role write it receives, whether the chain head is free."""

    chain_key = ""

    def __init__(self) -> None:
        super().__init__()
        self.head_free_at_role_writes: list[tuple[str, bool]] = []

    def answer(self, request: FakeRequest) -> FakeResponse | None:
        if "roleAssignments" in request.path and request.method in ("POST", "DELETE"):
            self.head_free_at_role_writes.append((request.method, _head_is_free(self.chain_key)))
        return super().answer(request)


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def graph() -> Iterator[WatchedGraph]:
    with WatchedGraph() as fake:
        yield fake


def test_no_chain_lock_is_held_across_the_role_calls(committed, sms_outbox, graph, monkeypatch):
    tenant = make_tenant()
    graph.chain_key = f"tenant:{tenant.pk}"
    variable = f"VS_TEST_ROLES_LOCK_{tenant.pk}"
    monkeypatch.setenv(variable, graph.client_secret)
    errors = _Errors()
    settings = validate_entra_settings(
        {
            "tenant_id": graph.tenant_id,
            "client_id": graph.client_id,
            "client_secret_env": variable,
            "authority_host": graph.url,
            "graph_url": graph.url,
            "ca_bundle": graph.ca_path,
        },
        errors,
    )
    ConnectorConfig.objects.create(
        tenant=tenant,
        kind="entra",
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=tenant),
    )
    account, user_id = subject(tenant, graph, GLOBAL_ADMIN)

    execute(ready(account, "mfa_reset"), staff(Role.SECURITY_OFFICER, tenant=tenant))
    assert held(graph, user_id) == []
    execute(ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=tenant))
    assert held(graph, user_id) == [GLOBAL_ADMIN]

    assert graph.head_free_at_role_writes == [("DELETE", True), ("POST", True)]

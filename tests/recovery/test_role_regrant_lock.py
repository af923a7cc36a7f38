"""R-19's time box, with committed transactions (what a worker sees): the expiry sweep calls
the provider holding neither the audit chain's lock nor the suspension row's, and a row another
transaction holds is skipped at once (SKIP LOCKED), not waited for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from recovery.cases.models import RoleSuspension
from recovery.cases.services.roles import roles_regrant_expire_sweep
from tenants.choices import Role
from tenants.models import Tenant
from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.graph import FakeGraph

from ..audit.test_chain_lock import _head_is_free
from ..factories import execute, make_tenant, staff
from .test_role_suspension import GLOBAL_ADMIN, entra_at, held, ready, subject


def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=False,
    )


def _row_is_free(pk: int) -> bool:
    """From another connection: can the suspension row be locked right now?"""
    with _other_connection() as other:
        try:
            other.execute(
                "SELECT 1 FROM recovery_rolesuspension WHERE id = %s FOR UPDATE NOWAIT", [pk]
            )
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            other.rollback()
    return True


class WatchedGraph(FakeGraph):
    """The Graph fake noting, at each role removal, whether the chain head and the suspension
    row being ended are free."""

    chain_key = ""
    row = 0

    def __init__(self) -> None:
        super().__init__()
        self.free_at_removals: list[tuple[bool, bool]] = []

    def answer(self, request: FakeRequest) -> FakeResponse | None:
        if self.row and "roleAssignments" in request.path and request.method == "DELETE":
            self.free_at_removals.append((_head_is_free(self.chain_key), _row_is_free(self.row)))
        return super().answer(request)


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def graph() -> Iterator[WatchedGraph]:
    with WatchedGraph() as fake:
        yield fake


def _regranted(tenant: Tenant, graph: FakeGraph, monkeypatch) -> tuple[RoleSuspension, str]:
    """An account whose roles a T2 recovery suspended and a restore granted back, its time box
    over."""
    entra_at(tenant, graph, monkeypatch)
    account, user_id = subject(tenant, graph, GLOBAL_ADMIN)
    execute(ready(account, "mfa_reset"), staff(Role.SECURITY_OFFICER, tenant=tenant))
    restore = execute(
        ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=tenant)
    )
    assert held(graph, user_id) == [GLOBAL_ADMIN]
    RoleSuspension.objects.filter(restore_case=restore).update(
        regrant_until=timezone.now() - timedelta(seconds=1)
    )
    return RoleSuspension.objects.get(restore_case=restore), user_id


def test_the_sweep_holds_no_chain_or_row_lock_across_the_removal(
    committed, sms_outbox, graph, monkeypatch
):
    tenant = make_tenant()
    row, user_id = _regranted(tenant, graph, monkeypatch)
    graph.chain_key, graph.row = f"tenant:{tenant.pk}", row.pk
    assert roles_regrant_expire_sweep() == 1
    assert held(graph, user_id) == []
    assert graph.free_at_removals == [(True, True)]


def test_a_row_another_transaction_holds_is_skipped_not_waited_for(
    committed, sms_outbox, graph, monkeypatch
):
    tenant = make_tenant()
    row, user_id = _regranted(tenant, graph, monkeypatch)
    with _other_connection() as other:
        other.execute("SELECT 1 FROM recovery_rolesuspension WHERE id = %s FOR UPDATE", [row.pk])
        with connection.cursor() as cursor:  # a sweep that waited would fail after 5 s
            cursor.execute("SET lock_timeout = '5s'")
        started = timezone.now()
        assert roles_regrant_expire_sweep() == 0  # skipped, not waited for
        assert timezone.now() - started < timedelta(seconds=3)
        assert held(graph, user_id) == [GLOBAL_ADMIN]
        other.rollback()
    assert roles_regrant_expire_sweep() == 1
    assert held(graph, user_id) == []

"""The expire sweep on committed data: a case another transaction holds is passed by (SKIP
LOCKED), not waited for. Committed, so no `django_db` mark: the tenant is unique to the test."""

from __future__ import annotations

import threading

from django.db import connection

from recovery.cases.choices import CaseStatus
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_expire_sweep
from tenants.rls import system_scope

from ..factories import make_tenant
from .challenges.helpers import open_case
from .test_transitions import DAY, _expired_events, _idle_for


def test_a_case_locked_elsewhere_is_skipped_not_waited_for(committed):
    """SKIP LOCKED: a sweep finds a case someone holds, passes it by, expires the rest; the
    next sweep takes it once it is free."""
    tenant = make_tenant()
    locked, free = open_case(tenant).case, open_case(tenant).case
    for case in (locked, free):
        _idle_for(case, 15 * DAY)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with system_scope():
                RecoveryCase.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        sweeper = threading.Thread(target=lambda: (case_expire_sweep(), connection.close()))
        sweeper.start()
        sweeper.join(15)
        assert not sweeper.is_alive(), "the sweep waited for a locked case"
    finally:
        release.set()
        holder.join()
        sweeper.join()
    statuses = dict(
        RecoveryCase.objects.filter(pk__in=[locked.pk, free.pk]).values_list("pk", "status")
    )
    assert statuses == {locked.pk: CaseStatus.COLLECTING_EVIDENCE, free.pk: CaseStatus.EXPIRED}
    case_expire_sweep()
    locked.refresh_from_db()
    assert locked.status == CaseStatus.EXPIRED
    assert len(_expired_events(locked)) == len(_expired_events(free)) == 1

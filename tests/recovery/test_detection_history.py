"""The case-open rules read their history in one hand-written statement
(`recovery.detection.rules.history_at_open`). It must read exactly what the four ORM reads it
replaced read, on PostgreSQL and on SQLite (the embedded default): those reads are kept here as
the reference, and both run over the same rows on both backends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from itertools import count

import pytest
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.db.models import Model, Q
from django.utils import timezone

from integrations.models import IngestedEvent
from recovery.cases.choices import ABANDONED_STATUSES
from recovery.cases.models import RecoveryCase
from recovery.detection.identifiers import CallerValue, caller_value
from recovery.detection.models import CallerIdentifier, WatchedCaller
from recovery.detection.rules import (
    CALLER_SEEN_FIELDS,
    LINKED_LIMIT,
    REUSE_LIMIT,
    Burst,
    CallerSeen,
    EarlierCase,
    History,
    Watched,
    history_at_open,
)
from recovery.policy.rules import Requirements
from recovery.policy.selectors import policy_active
from tenants.choices import Role

from ..factories import make_account, staff

pytestmark = pytest.mark.django_db

SQLITE = "detection_history_sqlite"
NUMBER, EMAIL, NAME = (
    caller_value("number", "+15550104567"),
    caller_value("email", "mallory@example.com"),
    caller_value("name", "Mallory"),
)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def orm_history(
    using: str, tenant_id: int, account_id: int, req: Requirements, callers, now: datetime
) -> History:
    """The four ORM reads `findings_at_open` made before they became one statement."""
    recent_since = now - timedelta(seconds=req.repeat_case_window_seconds)
    denial_since = now - timedelta(seconds=req.repeat_after_denial_window_seconds)
    earlier = (
        RecoveryCase.objects.using(using)
        .filter(tenant_id=tenant_id, account_id=account_id)
        .filter(
            Q(created_at__gte=recent_since)
            | Q(status__in=ABANDONED_STATUSES, ended_at__gte=denial_since)
        )
        .order_by("pk")
        .values_list("pk", "correlation_id", "created_at", "status", "ended_at")[:LINKED_LIMIT]
    )
    bursts = (
        IngestedEvent.objects.using(using)
        .filter(
            tenant_id=tenant_id,
            account_id=account_id,
            event_type__in=("push_denied_burst", "mfa_trouble_reported"),
            occurred_at__gte=now - timedelta(seconds=req.push_denial_lookback_seconds),
            occurred_at__lte=now,
        )
        .order_by("-occurred_at")
        .values_list("occurred_at", "source", "received_at", "event_type")[:1]
    )
    matches = Q(pk__in=[])
    for caller in callers:
        matches |= Q(kind=caller.kind, digest=caller.digest)
    watched = (
        WatchedCaller.objects.using(using)
        .filter(matches, tenant_id=tenant_id)
        .values_list("kind", "digest", "hint", "case_id", "flagged_at")
    )
    seen = (
        CallerIdentifier.objects.using(using)
        .filter(
            matches,
            tenant_id=tenant_id,
            created_at__gte=now - timedelta(seconds=req.caller_reuse_window_seconds),
        )
        .exclude(kind="name")
        .exclude(case__account_id=account_id)
        .order_by("case_id")
        .values_list(*CALLER_SEEN_FIELDS)[:REUSE_LIMIT]
    )
    return History(
        earlier=[EarlierCase(*row) for row in earlier],
        bursts=[Burst(*row) for row in bursts],
        watched=[Watched(*row) for row in watched] if callers else [],
        seen=[CallerSeen(*row) for row in seen] if callers else [],
    )


class Rows:
    """Writes the history's rows on one database, with the times given."""

    def __init__(self, using: str, tenant_id: int, user_id: int, now: datetime) -> None:
        self.using, self.tenant_id, self.user_id, self.now = using, tenant_id, user_id, now
        self.external_ids = count()

    def _aged(self, model: type[Model], row: Model, **times: datetime) -> Model:
        """`row` written as it is (no save(), so no field diffs), then moved in time."""
        (row,) = model.objects.using(self.using).bulk_create([row])
        model.objects.using(self.using).filter(pk=row.pk).update(**times)
        return row

    def case(self, account_id: int, ago: timedelta, status="collecting_evidence", ended=None):
        case = RecoveryCase(
            tenant_id=self.tenant_id,
            account_id=account_id,
            case_type="password_reset",
            channel="phone",
            tier="T0",
            route="standard",
            status=status,
            policy_version=0,
            policy_source="platform",
            opened_by_id=self.user_id,
            opened_by_person=uuid.uuid4(),
        )
        ended_at = None if ended is None else self.now - ended
        return self._aged(RecoveryCase, case, created_at=self.now - ago, ended_at=ended_at)

    def identifier(self, case: RecoveryCase, caller: CallerValue, ago: timedelta) -> None:
        identifier = CallerIdentifier(
            tenant_id=case.tenant_id,
            case=case,
            kind=caller.kind,
            digest=caller.digest,
            hint=caller.hint,
        )
        self._aged(CallerIdentifier, identifier, created_at=self.now - ago)

    def burst(self, account_id: int, ago: timedelta, event_type="push_denied_burst") -> None:
        event = IngestedEvent(
            tenant_id=self.tenant_id,
            account_id=account_id,
            event_type=event_type,
            occurred_at=self.now - ago,
            source=f"idp-{next(self.external_ids)}",
            received_by_id=self.user_id,
        )
        self._aged(IngestedEvent, event, received_at=self.now - ago + timedelta(seconds=30))

    def watch(self, caller: CallerValue, case: RecoveryCase, tenant_id: int | None = None):
        watched = WatchedCaller(
            tenant_id=tenant_id or self.tenant_id,
            kind=caller.kind,
            digest=caller.digest,
            hint=caller.hint,
            reason="asked to skip the callback",
            flagged_by_id=self.user_id,
            flagged_at=self.now - 3 * DAY,
            case=case,
        )
        WatchedCaller.objects.using(self.using).bulk_create([watched])


def write_history(using: str, tenant_id: int, other_tenant_id: int, ids: dict, now) -> None:
    """Rows each read must take or leave: inside and outside every window and limit, on the
    account, on other accounts and in another tenant."""
    me, other, third = ids["account"], ids["other"], ids["third"]
    rows = Rows(using, tenant_id, ids["user"], now)
    rows.case(me, 2 * DAY, status="cancelled", ended=2 * DAY)  # abandoned, inside its window
    rows.case(me, 5 * DAY, status="denied", ended=4 * DAY)  # abandoned, too long ago
    rows.case(me, 2 * DAY, status="closed", ended=2 * DAY)  # ended, not abandoned
    mine = [rows.case(me, HOUR * n / 4) for n in range(1, LINKED_LIMIT + 3)]  # over the limit
    rows.identifier(mine[0], NUMBER, HOUR)  # the account's own: never caller reuse
    for n in range(3):
        shared = rows.case(other, 3 * HOUR + n * HOUR)
        rows.identifier(shared, NUMBER, 3 * HOUR + n * HOUR)
        rows.identifier(shared, NAME, 3 * HOUR)  # a name: never caller reuse
    rows.identifier(rows.case(third, 2 * HOUR), EMAIL, 2 * HOUR)
    rows.identifier(rows.case(third, 3 * DAY), NUMBER, 3 * DAY)  # outside the reuse window
    rows.watch(NUMBER, mine[1])
    rows.watch(NAME, mine[2])
    rows.watch(caller_value("number", "+15550000001"), mine[3])  # another number
    rows.burst(me, 2 * HOUR)
    rows.burst(me, HOUR, event_type="mfa_trouble_reported")  # the latest in the lookback
    rows.burst(me, 2 * DAY)  # before the lookback
    rows.burst(me, HOUR / 2, event_type="sign_in_new_asn")
    rows.burst(other, HOUR)
    elsewhere = Rows(using, other_tenant_id, ids["user"], now)
    theirs = elsewhere.case(ids["elsewhere"], HOUR)
    elsewhere.identifier(theirs, NUMBER, HOUR)
    elsewhere.watch(EMAIL, theirs)


def assert_same_history(using: str, account, req: Requirements, now: datetime) -> None:
    for callers in ([NUMBER, EMAIL, NAME], [NAME], []):
        read = history_at_open(account, req, callers, now, using=using)
        reference = orm_history(using, account.tenant_id, account.pk, req, callers, now)
        assert read.earlier == reference.earlier
        assert read.bursts == reference.bursts
        assert sorted(read.watched) == sorted(reference.watched)
        assert sorted(read.seen) == sorted(reference.seen)
        assert len(read.earlier) == LINKED_LIMIT and len(read.bursts) == 1
    full = history_at_open(account, req, [NUMBER, EMAIL, NAME], now, using=using)
    assert {row.status for row in full.earlier} == {"cancelled", "collecting_evidence"}
    assert {(row.kind, row.case_id) for row in full.watched} >= {("number", full.earlier[2].pk)}
    assert len(full.watched) == 2 and len(full.seen) == 4  # 3 numbers on `other`, 1 email
    assert all(isinstance(row.correlation_id, uuid.UUID) for row in full.earlier + full.seen)
    assert all(row.created_at.tzinfo is not None for row in full.earlier + full.seen)


@pytest.fixture
def sqlite(db):
    """An in-memory SQLite database beside the test database, with the four tables the
    statement reads (no foreign keys checked: the parents live on PostgreSQL). Made here,
    not in settings, so the test case lets it connect."""
    settings = connections.configure_settings(
        {"default": {}, SQLITE: {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )[SQLITE]
    connection = connections[SQLITE] = SQLiteWrapper(settings, alias=SQLITE)
    try:
        with connection.schema_editor() as editor:
            for model in (RecoveryCase, CallerIdentifier, WatchedCaller, IngestedEvent):
                editor.create_model(model)
        connection.disable_constraint_checking()
        yield SQLITE
    finally:
        connection.close()
        del connections[SQLITE]


def scenario(acme, globex):
    account = make_account(acme)
    ids = {
        "account": account.pk,
        "other": make_account(acme).pk,
        "third": make_account(acme).pk,
        "elsewhere": make_account(globex).pk,
        "user": staff(Role.AGENT, tenant=acme).pk,
    }
    return account, ids, policy_active(acme).requirements("T0", "password_reset")


def test_the_one_statement_reads_what_the_four_orm_reads_read_on_postgresql(acme, globex):
    account, ids, req = scenario(acme, globex)
    now = timezone.now()
    write_history("default", acme.pk, globex.pk, ids, now)
    assert_same_history("default", account, req, now)


def test_the_one_statement_reads_what_the_four_orm_reads_read_on_sqlite(acme, globex, sqlite):
    account, ids, req = scenario(acme, globex)
    now = timezone.now()
    write_history(sqlite, acme.pk, globex.pk, ids, now)
    assert_same_history(sqlite, account, req, now)

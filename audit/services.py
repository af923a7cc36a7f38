"""Writing the trail. `record` is the only way an audit event is created."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from .chain import GENESIS_HASH, HASHED_FIELDS, chain_key, row_hash
from .context import Actor, current_request
from .exceptions import AttemptNotRecorded, AuditError, TrailReadNotRecorded
from .models import AuditChainHead, AuditEvent
from .registry import is_registered
from .signals import event_recorded

logger = logging.getLogger(__name__)


def _text(value: str, limit: int) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; a caller-supplied NUL must not fail the action.
    return value.replace("\x00", "\ufffd")[:limit]


def _as_stored(value: Any) -> Any:
    """The value as jsonb will give it back: no NUL, integral floats as ints (1e16, -0.0)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_as_stored(item) for item in value]
    if isinstance(value, dict):
        return {_as_stored(key): _as_stored(item) for key, item in value.items()}
    return value


def _json_safe(data: dict[str, Any] | None) -> dict[str, Any]:
    # Hash exactly what the database will return, so verification recomputes the same bytes.
    return _as_stored(json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)))


# Every stored field but the id, in model order: the columns record() inserts.
_EVENT_FIELDS = tuple(f for f in AuditEvent._meta.concrete_fields if not f.primary_key)


@cache
def _statements(vendor: str) -> tuple[str, str | None]:
    """SQL to lock a chain head and, on PostgreSQL, to insert an event and advance its head.

    Only identifiers from the models are interpolated; every value is a parameter.
    """
    quote = connection.ops.quote_name
    heads, events = quote(AuditChainHead._meta.db_table), quote(AuditEvent._meta.db_table)
    key, seq, hash_ = quote("key"), quote("seq"), quote("hash")
    lock = f"SELECT {seq}, {hash_} FROM {heads} WHERE {key} = %s"  # noqa: S608
    if connection.features.has_select_for_update:  # as select_for_update(): not on SQLite
        lock += " FOR UPDATE"
    if vendor != "postgresql":
        return lock, None
    columns = ", ".join(quote(field.column) for field in _EVENT_FIELDS)
    values = ", ".join(["%s"] * len(_EVENT_FIELDS))
    append = (
        f"WITH event AS (INSERT INTO {events} ({columns}) VALUES ({values}) RETURNING id) "  # noqa: S608
        f"UPDATE {heads} SET {seq} = %s, {hash_} = %s WHERE {key} = %s "
        "RETURNING (SELECT id FROM event)"
    )
    return lock, append


def _locked_head(cursor: Any, key: str, tenant_id: int | None) -> tuple[int, str]:
    """Lock the chain head row (creating it for a chain's first event); its seq and hash."""
    lock = _statements(connection.vendor)[0]
    cursor.execute(lock, [key])
    head = cursor.fetchone()
    if head is None:
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(key=key, tenant_id=tenant_id, seq=0, hash=GENESIS_HASH)],
            ignore_conflicts=True,
        )
        cursor.execute(lock, [key])
        head = cursor.fetchone()
    return head


def _append(cursor: Any, event: AuditEvent, key: str) -> None:
    """Insert the hashed event and advance its chain head to it (the head is locked)."""
    append = _statements(connection.vendor)[1]
    if append is None:  # SQLite (the embedded default): two plain ORM writes
        event.save(force_insert=True)
        AuditChainHead.objects.filter(key=key).update(seq=event.seq, hash=event.hash)
        return
    # PostgreSQL: one statement. Values are prepared as Model.save prepares them; no model
    # signals are sent (nothing may listen to an append-only table's saves).
    values = [
        field.get_db_prep_save(field.pre_save(event, True), connection) for field in _EVENT_FIELDS
    ]
    cursor.execute(append, [*values, event.seq, event.hash, key])
    appended = cursor.fetchone()
    if appended is None or appended[0] is None:
        raise AuditError(f"The chain head {key!r} vanished while an event was appended to it.")
    event.pk = appended[0]
    event._state.adding, event._state.db = False, connection.alias


def _new_event(
    *,
    action: str,
    actor: Actor,
    tenant_id: int | None,
    target: models.Model | None,
    data: dict[str, Any] | None,
) -> AuditEvent:
    """The event record() appends, not yet linked (seq, prev_hash), hashed or saved."""
    request = current_request()
    return AuditEvent(
        tenant_id=tenant_id,
        seq=0,
        action=action,
        actor_id=_text(actor.id, 64),
        actor_label=_text(actor.label, 200),
        actor_type=actor.type,
        actor_org=_text(actor.organisation, 200),
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=_text(str(target), 300) if target is not None else "",
        data=_json_safe(data),
        request_id=request.request_id,
        ip=request.ip,
        user_agent=_text(request.user_agent, 300),
        created_at=timezone.now(),
    )


class _Unappended(threading.local):
    """Events record() has built in this thread but not yet appended, in recording order."""

    def __init__(self) -> None:
        self.events: list[tuple[AuditEvent, str]] = []


_unappended = _Unappended()


def _append_unappended() -> None:
    """Append every event built so far, in order: lock its chain head, link, hash, insert."""
    with connection.cursor() as cursor:
        while _unappended.events:
            event, key = _unappended.events[0]
            head_seq, head_hash = _locked_head(cursor, key, event.tenant_id)
            event.seq, event.prev_hash = head_seq + 1, head_hash
            event.hash = row_hash(tuple(getattr(event, name) for name in HASHED_FIELDS))
            _append(cursor, event, key)
            _unappended.events.pop(0)


def record(
    *,
    action: str,
    actor: Actor,
    tenant: models.Model | None = None,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to the tenant's chain inside the caller's transaction.

    Fails closed: it refuses to run outside a transaction, and any error propagates so the
    action it records rolls back with it (R-44).

    The chain head is locked as late as possible, since its lock serialises the chain's
    writers until they commit: record() first sends `event_recorded` (its receivers plan
    what the event calls for in this transaction, before the event has a place in the
    chain), then locks the head (`SELECT … FOR UPDATE`), inserts the event and advances the
    head (on PostgreSQL that is two statements). An event a receiver records appends the
    events recorded before it first, so the chain keeps the order in which they were recorded.
    """
    if not is_registered(action):
        raise AuditError(f"Unknown audit action {action!r}: add it to audit.registry.ACTIONS.")
    if not transaction.get_connection().in_atomic_block:
        raise AuditError("audit.record must run inside the transaction of the action it records.")
    tenant_id = tenant.pk if tenant is not None else None
    event = _new_event(action=action, actor=actor, tenant_id=tenant_id, target=target, data=data)
    if _unappended.events:  # a receiver's event: the events recorded before it go first
        _append_unappended()
    _unappended.events.append((event, chain_key(tenant_id)))
    try:
        event_recorded.send(sender=AuditEvent, event=event, target=target)
        _append_unappended()
    except BaseException:
        _unappended.events.clear()  # the action fails: nothing of it may be appended later
        raise
    return event


def trail_read_record(
    *,
    reader: Any,
    access: Any,
    tenant: Any,
    data: dict[str, Any],
    action: str = "audit.read",
) -> None:
    """Record that `reader` read the tenant's trail: `audit.read` with `data` saying what
    (`read`: the surface, such as "console.trail" or "api.events"; the filters, cursor, case,
    row count), or `action` for an export or its download. Never the events' content.

    Call it inside the transaction that builds the answer, once the answer is built; an
    error of any kind becomes `TrailReadNotRecorded` and the transaction must roll back.
    `access` (the reader's `TenantAccess`) names the organisation they read for.
    """
    via_grant = access is not None and access.via_grant
    organisation = access.organisation if via_grant else tenant.name
    try:
        record(
            action=action,
            actor=Actor.for_user(reader, organisation=organisation),
            tenant=tenant,
            data=data,
        )
    except Exception as failure:
        raise TrailReadNotRecorded(TrailReadNotRecorded.message) from failure


def attempt_recorded(write: Callable[[], None], what: str) -> AttemptNotRecorded | None:
    """Record a failed attempt the caller has already counted, in a savepoint of its transaction.

    `write` records the attempt (and raises any alert). Count the attempt, and set whatever
    lock the count now calls for, before: if the trail cannot take the record, only the
    savepoint is undone, and the `AttemptNotRecorded` returned is what the caller refuses with
    once its transaction has committed the count (R-44: fail closed, never open).
    """
    try:
        with transaction.atomic():
            write()
    except Exception as failure:
        logger.error("%s counted but not recorded: %r", what, failure)
        return AttemptNotRecorded()
    return None

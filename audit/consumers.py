"""Reading the committed audit chain as an outbox: each consumer past its own cursor.

A service records an event in its transaction and does nothing more for its side effects; a
receiver only asks, after commit, for a worker to consume the tenant's chain. `chain_consume`
then reads the committed events past the consumer's cursor (a `ChainCursor` subclass), hands
them to the consumer and moves the cursor, in one transaction under the cursor's row lock: a
second worker, or a retry after a crash, finds nothing left, and an event is never consumed
twice or skipped. Events become visible in seq order (a chain's writers hold its head until
they commit), so nothing below the committed head is still to come. `chain_lagging` names
the tenants whose chain has moved past a consumer's cursor, for the sweep that catches what a
lost task left.

`chain_consume_soon` asks for at most one worker task per consumer and tenant at a time: a
flag in the shared cache says a task is queued and has not yet read the chain, and
`chain_consume` lowers it before it reads the head. An event committed while the flag is up
is read by that task (it committed before the task read the head); one committed after it
came down raises it again and queues a task of its own. A busy tenant thus costs one cache
write per event instead of one broker message (0.15 ms against 0.8 ms on the request path).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from celery import Task
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db.models import F, OuterRef, Q, Subquery

from tenants.rls import system_scope, tenant_scope

from .chain import chain_key
from .models import AuditChainHead, AuditEvent, ChainCursor

T = TypeVar("T")
CONSUME_BATCH = 500  # events read per transaction
# A flag whose task was lost comes down after this long; until then the sweeps (every 15-30 s)
# consume what the lost task would have.
PENDING_FLAG_SECONDS = 30


def _pending_flag(cursor_model: type[ChainCursor], tenant_id: int) -> str | None:
    """The flag's cache key, or None where the cache is not shared between the web processes
    and the workers (the local memory cache of `make run`): there every event queues a task."""
    if isinstance(caches["default"], LocMemCache):
        return None
    return f"chain-consume-pending:{cursor_model._meta.label_lower}:{tenant_id}"


def chain_consume_soon(cursor_model: type[ChainCursor], tenant_id: int, task: Task) -> None:
    """After a commit: `task.delay(tenant_id)` unless a task for the tenant is queued already
    and has not started reading the chain. Raises what the broker raised (the caller logs it;
    the sweep consumes what no task was queued for)."""
    flag = _pending_flag(cursor_model, tenant_id)
    if flag is not None and not caches["default"].add(flag, 1, timeout=PENDING_FLAG_SECONDS):
        return
    try:
        task.delay(tenant_id)
    except Exception:
        if flag is not None:
            caches["default"].delete(flag)
        raise


def chain_consume(
    *,
    cursor_model: type[ChainCursor],
    tenant_id: int,
    actions: Collection[str],
    consume: Callable[[list[AuditEvent]], list[T]],
    batch: int = CONSUME_BATCH,
) -> list[T]:
    """Hand the tenant's committed events of `actions` past the cursor to `consume`, in
    transactions of at most `batch` events, until the cursor reaches the chain head; what
    `consume` answered, in order. `consume` runs inside the tenant's scope and transaction."""
    flag = _pending_flag(cursor_model, tenant_id)
    if flag is not None:  # lowered before the head is read (`chain_consume_soon`)
        caches["default"].delete(flag)
    made: list[T] = []
    while True:
        answered, caught_up = _consume_batch(cursor_model, tenant_id, actions, consume, batch)
        made += answered
        if caught_up:
            return made


def _consume_batch(
    cursor_model: type[ChainCursor],
    tenant_id: int,
    actions: Collection[str],
    consume: Callable[[list[AuditEvent]], list[T]],
    batch: int,
) -> tuple[list[T], bool]:
    with tenant_scope([tenant_id]):
        cursor_model.objects.bulk_create([cursor_model(tenant_id=tenant_id)], ignore_conflicts=True)
        cursor = cursor_model.objects.select_for_update().get(tenant_id=tenant_id)
        head = (
            AuditChainHead.objects.filter(key=chain_key(tenant_id))
            .values_list("seq", flat=True)
            .first()
        )
        if head is None or head <= cursor.seq:
            return [], True
        events = list(
            AuditEvent.objects.filter(
                tenant_id=tenant_id, seq__gt=cursor.seq, seq__lte=head, action__in=list(actions)
            ).order_by("seq")[:batch]
        )
        caught_up = len(events) < batch
        cursor.seq = head if caught_up else events[-1].seq
        cursor.save(update_fields=["seq", "updated_at"])
        return (consume(events) if events else []), caught_up


def chain_lagging(cursor_model: type[ChainCursor]) -> list[int]:
    """Ids of the tenants whose chain has moved past their cursor (or who have none yet)."""
    with system_scope():
        return list(
            AuditChainHead.objects.filter(tenant_id__isnull=False)
            .annotate(
                cursor=Subquery(
                    cursor_model.objects.filter(tenant_id=OuterRef("tenant_id")).values("seq")
                )
            )
            .filter(Q(cursor__isnull=True) | Q(seq__gt=F("cursor")))
            .order_by("tenant_id")
            .values_list("tenant_id", flat=True)
        )


def chain_consumed(cursor_model: type[ChainCursor], tenant_id: int, seq: int) -> bool:
    """Whether the consumer has read the tenant's chain up to `seq` (inside the caller's
    scope)."""
    return cursor_model.objects.filter(tenant_id=tenant_id, seq__gte=seq).exists()

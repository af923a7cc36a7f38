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
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from django.db.models import F, OuterRef, Q, Subquery

from tenants.rls import system_scope, tenant_scope

from .chain import chain_key
from .models import AuditChainHead, AuditEvent, ChainCursor

T = TypeVar("T")
CONSUME_BATCH = 500  # events read per transaction


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

"""The tenant's committed audit chain, streamed to its SIEM collector: at least once, in order.

The chain is read as an outbox (`audit.consumers.chain_consume`) past the tenant's
`SiemCursor`, every action included. Each batch is sent inside the consumer's transaction and
the cursor moves only when the collector has read all of it (`transport.send_batch`): a
failure raises, the transaction rolls back and the batch is sent again later, so nothing is
skipped and a resend carries the same seq and hash. The outcome is then written to the
destination row in a transaction of its own: consecutive failures, the last error, and the
next attempt after an exponential backoff; `siem.delivery_failed` is recorded on the first
failure after a success, `siem.delivery_resumed` when a batch gets through again.

Only workers send. After an event commits, `chain_consume_soon` asks for one task per tenant
(if this process has seen, within STREAMING_TTL_SECONDS, that the tenant streams), and the
beat sweep queues one for every streaming tenant whose chain is past its cursor, so a lost
task or a collector that was down costs time, never events. A collector that is down costs
the request path nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from audit.consumers import chain_consume, chain_consume_soon, chain_lagging
from audit.context import Actor
from audit.models import AuditEvent
from audit.registry import ACTIONS
from audit.services import record
from tenants.rls import system_scope, tenant_scope

from ..models import SiemCursor, SiemDestination
from .formats import Origin, frame
from .transport import Collector, SiemSendError, send_batch

logger = logging.getLogger(__name__)
STREAMING_TTL_SECONDS = 10.0
# tenant id -> (until when, whether it has an enabled destination), per process
_STREAMING: dict[int, tuple[float, bool]] = {}
SYSTEM_ACTOR = Actor.system("siem-stream")


def origin() -> Origin:
    return Origin(
        hostname=settings.SIEM_SYSLOG_HOSTNAME,
        product_version=settings.SIEM_PRODUCT_VERSION,
        sd_id=settings.SIEM_SD_ID,
    )


def backoff(failures: int) -> timedelta:
    """The wait after `failures` consecutive failed attempts: base · 2^(n-1), capped."""
    exponent = min(max(failures - 1, 0), 30)
    seconds = settings.SIEM_BACKOFF_BASE_SECONDS * 2**exponent
    return timedelta(seconds=min(seconds, settings.SIEM_BACKOFF_CAP_SECONDS))


@dataclass(frozen=True)
class Plan:
    """Where and how the tenant's events go, read before the chain is."""

    collector: Collector
    format: str
    tenant_slug: str

    def frames(self, events: list[AuditEvent]) -> list[bytes]:
        source = origin()
        return [
            frame(event, tenant_slug=self.tenant_slug, format=self.format, origin=source)
            for event in events
        ]


def _due(destinations: Any) -> Any:
    return destinations.filter(enabled=True).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now())
    )


def _plan(tenant_id: int) -> Plan | None:
    """The tenant's enabled destination, unless its backoff has not yet run out."""
    with tenant_scope([tenant_id]):
        destination = (
            _due(SiemDestination.objects.filter(tenant_id=tenant_id))
            .select_related("tenant")
            .first()
        )
    if destination is None:
        return None
    return Plan(
        collector=Collector(destination.host, destination.port, destination.ca_pem),
        format=destination.format,
        tenant_slug=destination.tenant.slug,
    )


def siem_stream(*, tenant_id: int, batch: int | None = None) -> int:
    """Send the tenant's committed events past its cursor to its collector; how many were
    sent (a failure is recorded on the destination and stops the run)."""
    plan = _plan(tenant_id)
    if plan is None:
        return 0
    sent: list[int] = []

    def consume(events: list[AuditEvent]) -> list[int]:
        send_batch(plan.collector, plan.frames(events), timeout=settings.SIEM_TIMEOUT_SECONDS)
        sent.append(len(events))
        return []

    attempted_at = timezone.now()
    try:
        chain_consume(
            cursor_model=SiemCursor,
            tenant_id=tenant_id,
            actions=ACTIONS,
            consume=consume,
            batch=batch or settings.SIEM_BATCH_EVENTS,
        )
    except SiemSendError as error:
        _record_failure(tenant_id, str(error), attempted_at)
        return sum(sent)
    if sent:
        _record_delivery(tenant_id, attempted_at)
    return sum(sent)


def _locked_destination(tenant_id: int) -> SiemDestination | None:
    return (
        SiemDestination.objects.select_for_update()
        .select_related("tenant")
        .filter(tenant_id=tenant_id)
        .first()
    )


def _record_failure(tenant_id: int, error: str, attempted_at: datetime) -> None:
    with tenant_scope([tenant_id]):
        destination = _locked_destination(tenant_id)
        if destination is None:  # removed meanwhile
            return
        destination.failures += 1
        destination.last_attempt_at = attempted_at
        destination.last_error = error[:500]
        destination.next_attempt_at = timezone.now() + backoff(destination.failures)
        if destination.failures == 1:
            destination.failing_since = attempted_at
            record(
                action="siem.delivery_failed",
                actor=SYSTEM_ACTOR,
                tenant=destination.tenant,
                target=destination,
                data={
                    "host": destination.host,
                    "port": destination.port,
                    "error": destination.last_error,
                    "next_attempt_at": destination.next_attempt_at.isoformat(),
                },
            )
        destination.save(
            update_fields=[
                "failures",
                "failing_since",
                "last_attempt_at",
                "last_error",
                "next_attempt_at",
            ]
        )


def _record_delivery(tenant_id: int, attempted_at: datetime) -> None:
    with tenant_scope([tenant_id]):
        destination = _locked_destination(tenant_id)
        if destination is None:
            return
        if destination.failures:
            record(
                action="siem.delivery_resumed",
                actor=SYSTEM_ACTOR,
                tenant=destination.tenant,
                target=destination,
                data={
                    "host": destination.host,
                    "port": destination.port,
                    "failed_attempts": destination.failures,
                    "failing_since": destination.failing_since.isoformat()
                    if destination.failing_since
                    else None,
                },
            )
        destination.failures = 0
        destination.failing_since = destination.next_attempt_at = None
        destination.last_error = ""
        destination.last_attempt_at = attempted_at
        destination.last_success_at = timezone.now()
        destination.save(
            update_fields=[
                "failures",
                "failing_since",
                "next_attempt_at",
                "last_error",
                "last_attempt_at",
                "last_success_at",
            ]
        )


# --- asking workers ------------------------------------------------------------------------


def siem_stream_soon(tenant_id: int) -> None:
    """After a commit: one stream task for the tenant, unless one is queued already. A broker
    that is down loses nothing: the sweep finds the tenant behind."""
    from ..tasks import siem_stream_task  # tasks import this module

    try:
        chain_consume_soon(SiemCursor, tenant_id, siem_stream_task)
    except Exception:
        logger.warning("SIEM stream of tenant %s not queued; the sweep will send it", tenant_id)


def siem_stream_lagging() -> int:
    """The sweep: a stream task for every tenant with a destination that is due and a chain
    past its cursor; how many tenants were asked for."""
    with system_scope():
        due = set(_due(SiemDestination.objects.all()).values_list("tenant_id", flat=True))
    lagging = [tenant_id for tenant_id in chain_lagging(SiemCursor) if tenant_id in due]
    for tenant_id in lagging:
        siem_stream_soon(tenant_id)
    return len(lagging)


def _streaming(tenant_id: int) -> bool:
    """Whether the tenant has an enabled destination, as this process read it at most
    STREAMING_TTL_SECONDS ago (a stale "no" costs time only: the sweep catches up)."""
    now = time.monotonic()
    known = _STREAMING.get(tenant_id)
    if known is None or known[0] <= now:
        with tenant_scope([tenant_id]):
            enabled = SiemDestination.objects.filter(tenant_id=tenant_id, enabled=True).exists()
        known = _STREAMING[tenant_id] = (now + STREAMING_TTL_SECONDS, enabled)
    return known[1]


def _after_commit(tenant_id: int) -> None:
    if _streaming(tenant_id):
        siem_stream_soon(tenant_id)


def on_event_recorded(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Receiver of audit.signals.event_recorded: once a tenant's event commits, ask a worker
    to stream the tenant's chain (no query here; nothing for a rollback)."""
    if event.tenant_id is None:
        return
    tenant_id = event.tenant_id
    transaction.on_commit(lambda: _after_commit(tenant_id), robust=True)


def _destination_changed(sender: Any, instance: SiemDestination, **kwargs: Any) -> None:
    _STREAMING.pop(instance.tenant_id, None)


post_save.connect(_destination_changed, sender=SiemDestination, dispatch_uid="siem-ttl-save")
post_delete.connect(_destination_changed, sender=SiemDestination, dispatch_uid="siem-ttl-del")

"""Reads of a tenant's trail, each starting from the tenant. Each read is recorded
(`audit.services.trail_read_record`, R-50)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict

from .chain import HASHED_FIELDS, chain_key
from .checkpoints import trusted_keys
from .models import AuditChainHead, AuditEvent

# An export line: exactly the hashed fields with their stored values, the row's hash, and the
# database id (not hashed; the documented check script ignores it).
EXPORT_FIELDS: tuple[str, ...] = (*HASHED_FIELDS, "hash", "id")
# A filter value longer than this is cut in the read's event (what was asked, not a payload).
READ_VALUE_LIMIT = 200


def audit_event_list(*, tenant: Any) -> QuerySet[AuditEvent]:
    """The events of `tenant`'s chain, newest first."""
    if tenant is None or tenant.pk is None:
        raise ValueError("audit_event_list needs a saved tenant; refusing an unscoped query.")
    return AuditEvent.objects.filter(tenant_id=tenant.pk).order_by("-seq")


def alert_list(*, tenant: Any) -> QuerySet[AuditEvent]:
    """The tenant's alerts (detections raised for the security queue), newest first."""
    return audit_event_list(tenant=tenant).filter(action="alert.raised")


def chain_head(*, tenant: Any) -> AuditChainHead | None:
    return AuditChainHead.objects.filter(tenant_id=tenant.pk).first()


def last_checkpoint(*, tenant: Any) -> AuditEvent | None:
    """The record of the newest checkpoint signed of the tenant's chain (its data holds the
    signed statement); what the stores hold is what verification trusts."""
    return audit_event_list(tenant=tenant).filter(action="audit.checkpoint_signed").first()


@dataclass(frozen=True)
class CheckpointStatus:
    """How a tenant's chain stands with its signed checkpoints (the chain page, R-46, R-48)."""

    last: AuditEvent | None  # the record of the newest checkpoint signed of the chain
    key_trusted: bool  # its key is among the keys this deployment trusts (AUDIT_TRUSTED_KEYS)
    unsigned: int  # events after it: what a rewrite could still change unnoticed
    failures: list[AuditEvent]  # publishing failures since it, newest first (at most 5)


def checkpoint_status(*, tenant: Any, head: AuditChainHead | None) -> CheckpointStatus:
    last = last_checkpoint(tenant=tenant)
    statement = last.data.get("statement", {}) if last is not None else {}
    failures = AuditEvent.objects.filter(
        tenant__isnull=True, action="audit.checkpoint_failed", data__chain=chain_key(tenant.pk)
    )
    if last is not None:
        failures = failures.filter(created_at__gt=last.created_at)
    return CheckpointStatus(
        last=last,
        key_trusted=statement.get("key_id") in trusted_keys(),
        unsigned=(head.seq if head else 0) - int(statement.get("seq") or 0),
        failures=list(failures.order_by("-seq")[:5]),
    )


def last_scheduled_verification() -> AuditEvent | None:
    """The platform verifier's latest run (an `audit.verified` event in the platform chain)."""
    return (
        AuditEvent.objects.filter(tenant__isnull=True, action="audit.verified")
        .order_by("-seq")
        .first()
    )


def hashed_time(moment: datetime) -> str:
    """`created_at` as the row's hash covers it: UTC, ISO 8601, six fractional digits."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def export_line(values: Mapping[str, Any]) -> bytes:
    """One event of an NDJSON export (API and console alike), from `values(*EXPORT_FIELDS)`.

    Every hashed field carries its stored value, `created_at` the exact text that was hashed,
    so the check script in docs/audit.md recomputes each row's hash from the line alone.
    """
    line = {name: values[name] for name in EXPORT_FIELDS}
    line["created_at"] = hashed_time(values["created_at"])
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def read_filters(params: QueryDict, *, leave_out: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The query parameters a reader asked with, as a read's event keeps them (values cut)."""
    return {
        name: [value[:READ_VALUE_LIMIT] for value in values]
        for name, values in params.lists()
        if name not in leave_out
    }

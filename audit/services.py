"""Writing the trail. `record` is the only way an audit event is created."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from .chain import GENESIS_HASH, HASHED_FIELDS, chain_key, row_hash
from .context import Actor, current_request
from .exceptions import AuditError
from .models import AuditChainHead, AuditEvent
from .registry import is_registered


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


def _locked_head(key: str, tenant_id: int | None) -> AuditChainHead:
    heads = AuditChainHead.objects.select_for_update()
    head = heads.filter(key=key).first()
    if head is None:
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(key=key, tenant_id=tenant_id, seq=0, hash=GENESIS_HASH)],
            ignore_conflicts=True,
        )
        head = heads.get(key=key)
    return head


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
    """
    if not is_registered(action):
        raise AuditError(f"Unknown audit action {action!r}: add it to audit.registry.ACTIONS.")
    if not transaction.get_connection().in_atomic_block:
        raise AuditError("audit.record must run inside the transaction of the action it records.")
    tenant_id = tenant.pk if tenant is not None else None
    request = current_request()
    head = _locked_head(chain_key(tenant_id), tenant_id)
    event = AuditEvent(
        tenant_id=tenant_id,
        seq=head.seq + 1,
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
        prev_hash=head.hash,
    )
    event.hash = row_hash(tuple(getattr(event, name) for name in HASHED_FIELDS))
    event.save(force_insert=True)
    head.seq, head.hash = event.seq, event.hash
    head.save(update_fields=["seq", "hash"])
    return event

"""The hash chain: canonical form of an audit row and its sha256.

Each tenant has its own chain (the platform has one more, for events with no tenant). A row's
hash covers every stored field including `seq` and `prev_hash`, so a modified, removed,
inserted or reordered row breaks the chain at that row.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64

# Order matters: it is the canonical layout hashed for every row. Never reorder; only append
# (with a migration that re-states how older rows were hashed).
HASHED_FIELDS: tuple[str, ...] = (
    "tenant_id",
    "seq",
    "action",
    "actor_id",
    "actor_label",
    "actor_type",
    "actor_org",
    "target_type",
    "target_id",
    "target_repr",
    "data",
    "request_id",
    "ip",
    "user_agent",
    "created_at",
    "prev_hash",
)

_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def canonical_json(value: Any) -> str:
    """One value exactly as it appears inside a row's canonical form."""
    return _encode(value)


def row_hash(values: tuple[Any, ...]) -> str:
    """sha256 hex of one row given as values in HASHED_FIELDS order."""
    created_at: datetime = values[14]
    parts = list(values)
    parts[14] = created_at.isoformat(timespec="microseconds")
    return hashlib.sha256(_encode(parts).encode()).hexdigest()


def chain_key(tenant_id: int | None) -> str:
    """The key of the chain an event with this tenant belongs to."""
    return "platform" if tenant_id is None else f"tenant:{tenant_id}"

"""ETags on versioned objects and `If-Match` on their transitions (412 when stale)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.utils.http import parse_etags
from rest_framework.request import Request

from .exceptions import PreconditionFailed


def etag_of(obj: Any) -> str:
    """A strong ETag that changes with every change of `obj` (its revision and update time)."""
    state = f"{obj._meta.label}:{obj.pk}:{obj.revision}:{obj.updated_at.isoformat()}"
    return f'"{hashlib.sha256(state.encode()).hexdigest()[:32]}"'


def require_if_match(request: Request, obj: Any) -> None:
    """Refuse with 412 when the caller's `If-Match` names another version of `obj`.

    Without the header the change goes ahead; the service still checks the state it needs.
    `If-Match` uses the strong comparison (RFC 9110 §13.1.1): a weak tag (`W/"…"`) never
    matches, and neither does a header Django's parser cannot read.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return
    wanted = parse_etags(header)
    if wanted == ["*"]:
        return
    if etag_of(obj) not in wanted:
        raise PreconditionFailed()

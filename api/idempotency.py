"""`Idempotency-Key` on POSTs: one outcome per (tenant, principal, key) for 24 hours.

The key is claimed in its own committed transaction before the action runs, so a concurrent
duplicate sees the claim and gets 409 instead of running the action twice. The response is
stored when the action finishes; a retry with the same body gets it back, a retry with a
different body gets 422. Outcomes worth retrying (5xx, 409, 412, 429) release the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.models import Tenant
from tenants.rls import tenant_scope

from .exceptions import IdempotencyInProgress, IdempotencyKeyInvalid, IdempotencyKeyReused
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
RELEASED_STATUSES = frozenset({409, 412, 429})
KEPT_HEADERS = ("ETag", "Location")


@dataclass
class Claim:
    record: IdempotencyRecord | None = None
    replay: Response | None = None


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data = request.data
    if isinstance(data, Mapping):  # a JSON body may be any value; the view refuses non-objects
        data = {k: v for k, v in data.items() if not hasattr(v, "read")}
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    for name, upload in sorted(request.FILES.items()):
        digest.update(f"\n{name}:{upload.name}:{upload.size}:".encode())
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
    return digest.hexdigest()


def _key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid()
    return key


def idempotency_claim(request: Request, tenant: Tenant) -> Claim:
    """Claim the request's key, or return the stored response of an earlier identical call."""
    key = _key_of(request) if request.method == "POST" else None
    if key is None:
        return Claim()
    principal, fingerprint = f"user:{request.user.pk}", _fingerprint(request)
    with tenant_scope([tenant.pk]):
        records = IdempotencyRecord.objects.for_tenant(tenant)
        records.filter(principal=principal, key=key, expires_at__lte=timezone.now()).delete()
        try:
            with transaction.atomic():
                return Claim(
                    record=records.create(
                        tenant=tenant,
                        principal=principal,
                        key=key,
                        fingerprint=fingerprint,
                        expires_at=timezone.now() + LIFETIME,
                    )
                )
        except IntegrityError:
            earlier = records.get(principal=principal, key=key)
    if earlier.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if earlier.state == IdempotencyRecord.State.IN_PROGRESS:
        raise IdempotencyInProgress()
    replay = Response(
        earlier.response_body, status=earlier.response_status, headers=earlier.response_headers
    )
    replay["Idempotent-Replayed"] = "true"
    return Claim(replay=replay)


def idempotency_finish(claim: Claim, tenant: Tenant, response: Response | None) -> None:
    """Store the outcome for replays, or release the key when it is worth retrying."""
    if claim.record is None:
        return
    with tenant_scope([tenant.pk]):
        records = IdempotencyRecord.objects.for_tenant(tenant).filter(pk=claim.record.pk)
        code = response.status_code if response is not None else 500
        if code >= 500 or code in RELEASED_STATUSES:
            records.delete()
            return
        body: Any = getattr(response, "data", None)
        records.update(
            state=IdempotencyRecord.State.DONE,
            response_status=code,
            response_body=json.loads(json.dumps(body, default=str)),
            response_headers={h: response[h] for h in KEPT_HEADERS if response.has_header(h)},
        )

"""API keys: issued by a tenant_admin, shown once, stored hashed, scoped, expiring, revocable.

A key is `vsk_<prefix>_<secret>`: the prefix finds the row, the secret (256 bits from the OS
CSPRNG) is compared by its SHA-256 in constant time. A fast hash is enough for a random
256-bit secret; there is nothing to brute-force.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record

from .access import access_in, access_memo_clear
from .choices import AI_ASSISTANT_SCOPES, PrincipalKind, Role, Scope
from .exceptions import InvalidInput
from .models import ApiKey, Membership, Tenant, User
from .policies import can_administer_tenant, enforce
from .rls import system_scope

KEY_PREFIX = "vsk_"
MAX_LIFETIME = timedelta(days=365)
DEFAULT_LIFETIME = timedelta(days=90)
# last_used_at is advisory; writing it on every request would serialise a busy key's calls.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown to the admin once; never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _checked_scopes(kind: str, scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise InvalidInput(
            "Give at least one known scope." if not unknown else f"Unknown scopes: {unknown}.",
            code="apikey.scope_unknown",
            field_errors={"scopes": [f"Choose from {', '.join(Scope.values)}."]},
        )
    if kind == PrincipalKind.AI_ASSISTANT:
        forbidden = sorted(set(scopes) - AI_ASSISTANT_SCOPES)
        if forbidden:
            raise InvalidInput(
                f"An AI assistant key cannot carry {', '.join(forbidden)} (R-63).",
                code="apikey.scope_not_allowed_for_ai",
                field_errors={
                    "scopes": [f"AI assistants may hold only {sorted(AI_ASSISTANT_SCOPES)}."]
                },
            )
    return sorted(set(scopes))


def apikey_create(
    *,
    actor: User,
    tenant: Tenant,
    name: str,
    kind: str,
    scopes: list[str],
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a key for a new non-human principal of `kind` (integration or ai_assistant)."""
    enforce(can_administer_tenant(access_in(actor, tenant) if actor.is_human else None))
    if kind not in (PrincipalKind.INTEGRATION, PrincipalKind.AI_ASSISTANT):
        raise InvalidInput(
            "A key is for an integration or an AI assistant.",
            code="apikey.kind_invalid",
            field_errors={"kind": ["One of integration, ai_assistant."]},
        )
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput(
            "Name the key (1 to 100 characters) after the system that will use it.",
            code="apikey.name_invalid",
            field_errors={"name": ["1 to 100 characters."]},
        )
    scopes = _checked_scopes(kind, scopes)
    now = timezone.now()
    expires_at = expires_at or now + DEFAULT_LIFETIME
    if not now < expires_at <= now + MAX_LIFETIME:
        raise InvalidInput(
            "A key must expire in the future and within 365 days.",
            code="apikey.expiry_invalid",
            field_errors={"expires_at": ["Between now and 365 days from now."]},
        )
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction.atomic():
        principal = User.objects.create(
            username=f"{kind}:{tenant.slug}:{prefix}",
            first_name=name[:150],
            kind=kind,
            password=make_password(None),  # unusable: a principal never signs in
        )
        # The principal works cases as an agent would; its scopes narrow that further.
        Membership.objects.create(user=principal, tenant=tenant, role=Role.AGENT)
        key = ApiKey.objects.create(
            tenant=tenant,
            principal=principal,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            scopes=scopes,
            expires_at=expires_at,
            created_by=actor,
        )
        access_memo_clear()
        record(
            action="apikey.created",
            actor=Actor.for_user(actor, organisation=tenant.name),
            tenant=tenant,
            target=key,
            data={"kind": kind, "scopes": scopes, "expires_at": expires_at, "prefix": prefix},
        )
    return IssuedKey(key=key, token=f"{KEY_PREFIX}{prefix}_{secret}")


def apikey_revoke(*, actor: User, key: ApiKey) -> ApiKey:
    """Revoke a key at once; its principal loses its membership too."""
    enforce(can_administer_tenant(access_in(actor, key.tenant) if actor.is_human else None))
    with transaction.atomic():
        key = ApiKey.objects.for_tenant(key.tenant).select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        for digest, (_, known) in list(_verified.items()):
            if known.pk == key.pk:
                _verified.pop(digest, None)
        Membership.objects.filter(user_id=key.principal_id).update(is_active=False)
        access_memo_clear()
        record(
            action="apikey.revoked",
            actor=Actor.for_user(actor, organisation=key.tenant.name),
            tenant=key.tenant,
            target=key,
            data={"prefix": key.prefix},
        )
    return key


# Keys verified against the database recently, per process: sha256(token) -> (when, key).
# Revocation still takes effect at once: every request re-reads the principal's membership,
# which `apikey_revoke` ends, and the API refuses a key whose principal has no access.
_verified: dict[str, tuple[float, ApiKey]] = {}
VERIFIED_FOR_SECONDS = 60.0
_VERIFIED_MAX = 10_000


def _remembered(digest: str) -> ApiKey | None:
    entry = _verified.get(digest)
    if entry is None or time.monotonic() - entry[0] > VERIFIED_FOR_SECONDS:
        return None
    key = entry[1]
    if key.revoked_at is not None or key.expires_at <= timezone.now():
        return None
    return copy.deepcopy(key)  # each request gets its own objects


def apikey_authenticate(token: str) -> ApiKey | None:
    """The live key `token` names, or None (unknown, wrong secret, expired or revoked).

    Expiry is checked against database time whenever the key is read from the database, and
    against this server's clock while it is remembered (at most a minute).
    """
    if not token.startswith(KEY_PREFIX) or token.count("_") < 2:
        return None
    digest = _hash(token)
    remembered = _remembered(digest)
    if remembered is not None:
        return remembered
    prefix, _, secret = token[len(KEY_PREFIX) :].partition("_")
    with system_scope():
        key = (
            ApiKey.objects.select_related("tenant", "principal")
            .filter(prefix=prefix, revoked_at__isnull=True, expires_at__gt=Now())
            .filter(tenant__is_active=True, principal__is_active=True)
            .first()
        )
        if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
            return None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[digest] = (time.monotonic(), copy.deepcopy(key))
    return key

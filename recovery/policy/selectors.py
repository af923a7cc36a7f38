"""Reads of policy versions, each starting from the tenant."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet

from tenants.exceptions import CrossTenantNotFound, DomainError
from tenants.memo import remembered
from tenants.models import Tenant

from .choices import PolicyStatus
from .models import PolicyVersion
from .rules import CasePolicy, TenantPolicy, platform_default, policy_from_source
from .validation import source_sha256

if TYPE_CHECKING:
    from ..cases.models import RecoveryCase

# Versions that were activated: their text can no longer change (a trigger refuses it).
ACTIVATED = (PolicyStatus.ACTIVE, PolicyStatus.SUPERSEDED)
ACTIVE_POLICY = "active_policy"  # the request memo's kind for a tenant's active policy


class CompiledPolicies:
    """The validated policy versions of every tenant, least recently used dropped first.

    Keyed by (tenant id, version number) and holding activated versions only, whose text is
    immutable: an entry never needs invalidating. `POLICY_CACHE_SIZE` bounds it (about 17 KB
    per entry). Drafts are never cached.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[int, int], TenantPolicy] = OrderedDict()
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[int, int]) -> TenantPolicy | None:
        with self._lock:
            policy = self._entries.get(key)
            if policy is not None:
                self._entries.move_to_end(key)
            return policy

    def put(self, key: tuple[int, int], policy: TenantPolicy) -> None:
        with self._lock:
            self._entries[key] = policy
            self._entries.move_to_end(key)
            while len(self._entries) > settings.POLICY_CACHE_SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


compiled_policies = CompiledPolicies()


def policy_version_list(*, tenant: Tenant) -> QuerySet[PolicyVersion]:
    """The tenant's policy versions, newest first."""
    return PolicyVersion.objects.for_tenant(tenant).order_by("-number")


def policy_version_get_visible(*, tenant: Tenant, pk: int) -> PolicyVersion:
    """One version of `tenant`; another tenant's id is the same 404 as a missing one."""
    version = policy_version_list(tenant=tenant).filter(pk=pk).first()
    if version is None:
        raise CrossTenantNotFound(PolicyVersion._meta.label, pk)
    return version


def _compiled(version: PolicyVersion) -> TenantPolicy:
    """`version` validated, from `compiled_policies` when it holds the same text; fails closed
    on a source that no longer matches its hash, or breaks a floor raised since."""
    if source_sha256(version.source) != version.sha256:
        raise DomainError(
            f"Policy version {version.number} does not match its hash.", code="policy.tampered"
        )
    key = (version.tenant_id, version.number)
    policy = compiled_policies.get(key)
    if policy is None or policy.sha256 != version.sha256:
        policy = policy_from_source(version.source, number=version.number, version_id=version.pk)
        compiled_policies.put(key, policy)
    return policy


def _activated_version(tenant: Tenant, number: int) -> TenantPolicy:
    """Activated version `number` of `tenant` (0: the platform default); no query when it is
    cached, since an activated version's text never changes."""
    if number == 0:
        return platform_default()
    policy = compiled_policies.get((tenant.pk, number))
    if policy is not None:
        return policy
    version = (
        policy_version_list(tenant=tenant)
        .filter(number=number, status__in=ACTIVATED)
        .only("pk", "tenant_id", "number", "source", "sha256")
        .first()
    )
    if version is None:
        raise DomainError(
            f"Policy version {number} was never activated for this tenant.",
            code="policy.version_missing",
        )
    return _compiled(version)


def policy_active(tenant: Tenant) -> TenantPolicy:
    """The policy new cases of `tenant` open under: its active version, else the platform
    default (`number` 0). One query per request (`tenants.memo`); validated once per process
    (`compiled_policies`).

    Fails closed: an active version whose source no longer matches its hash, or that breaks a
    floor raised since it was activated, raises instead of being applied.
    """
    return remembered(ACTIVE_POLICY, tenant.pk, lambda: _read_active(tenant))


def _read_active(tenant: Tenant) -> TenantPolicy:
    version = (
        policy_version_list(tenant=tenant)
        .filter(status=PolicyStatus.ACTIVE)
        .only("pk", "tenant_id", "number", "source", "sha256")
        .first()
    )
    return platform_default() if version is None else _compiled(version)


def policy_for_case(case: RecoveryCase) -> CasePolicy:
    """What decides `case` at this step: rule by rule the stricter of the version it was
    opened under and the active one (a tightening since applies, a loosening does not)."""
    active = policy_active(case.tenant)
    if case.policy_version == active.number:
        return CasePolicy(opened=active, active=active)
    return CasePolicy(opened=_activated_version(case.tenant, case.policy_version), active=active)

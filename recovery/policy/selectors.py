"""Reads of policy versions, each starting from the tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.exceptions import CrossTenantNotFound, DomainError
from tenants.models import Tenant

from .choices import PolicyStatus
from .models import PolicyVersion
from .rules import TenantPolicy, platform_default, policy_from_source
from .validation import source_sha256


def policy_version_list(*, tenant: Tenant) -> QuerySet[PolicyVersion]:
    """The tenant's policy versions, newest first."""
    return PolicyVersion.objects.for_tenant(tenant).order_by("-number")


def policy_version_get_visible(*, tenant: Tenant, pk: int) -> PolicyVersion:
    """One version of `tenant`; another tenant's id is the same 404 as a missing one."""
    version = policy_version_list(tenant=tenant).filter(pk=pk).first()
    if version is None:
        raise CrossTenantNotFound(PolicyVersion._meta.label, pk)
    return version


def policy_active(tenant: Tenant) -> TenantPolicy:
    """The policy cases of `tenant` are decided under now: its active version, else the
    platform default (`number` 0).

    Fails closed: an active version whose source no longer matches its hash, or that breaks a
    floor raised since it was activated, raises instead of being applied.
    """
    version = (
        policy_version_list(tenant=tenant)
        .filter(status=PolicyStatus.ACTIVE)
        .only("pk", "number", "source", "sha256")
        .first()
    )
    if version is None:
        return platform_default()
    if source_sha256(version.source) != version.sha256:
        raise DomainError(
            f"Policy version {version.number} does not match its hash.", code="policy.tampered"
        )
    return policy_from_source(version.source, number=version.number, version_id=version.pk)

"""Reads of a tenant's trail, each starting from the tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import AuditChainHead, AuditEvent


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


def last_scheduled_verification() -> AuditEvent | None:
    """The platform verifier's latest run (an `audit.verified` event in the platform chain)."""
    return (
        AuditEvent.objects.filter(tenant__isnull=True, action="audit.verified")
        .order_by("-seq")
        .first()
    )

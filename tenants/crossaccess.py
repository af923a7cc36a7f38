"""Recording a refused reach into another tenant, in the owner's trail (console and API)."""

from __future__ import annotations

from typing import Any

from django.apps import apps

from audit.context import Actor
from audit.services import record

from .models import Tenant, User
from .rls import system_scope


def cross_access_record(
    *, actor: User, path: str, owner_tenant_id: int | None, detail: dict[str, Any]
) -> None:
    """Record `tenant.cross_access_denied` in the chain of the tenant that was reached for."""
    if owner_tenant_id is None:
        return
    with system_scope():
        owner = Tenant.objects.get(pk=owner_tenant_id)
        record(
            action="tenant.cross_access_denied",
            actor=Actor.for_user(actor),
            tenant=owner,
            data={"path": path[:300], **detail},
        )


def owner_tenant_of(model_label: str, pk: Any) -> int | None:
    """The tenant id that owns object `pk` of `model_label`, looked up across tenants."""
    with system_scope():
        model = apps.get_model(model_label)
        return model.objects.filter(pk=pk).values_list("tenant_id", flat=True).first()


def tenant_id_of_slug(slug: str) -> int | None:
    return Tenant.objects.filter(slug=slug).values_list("id", flat=True).first()


def tenant_refused_record(*, actor: User, path: str, slug: str) -> None:
    """The actor named a tenant it may not act in: record it in that tenant's trail."""
    cross_access_record(
        actor=actor,
        path=path,
        owner_tenant_id=tenant_id_of_slug(slug),
        detail={"reason": "no access to tenant"},
    )


def foreign_object_record(
    *, actor: User, path: str, requested_in: Tenant, model_label: str, pk: Any
) -> None:
    """The actor asked, in its tenant, for an object of another tenant: record it there."""
    owner = owner_tenant_of(model_label, pk)
    if owner is not None and owner != requested_in.pk:
        cross_access_record(
            actor=actor,
            path=path,
            owner_tenant_id=owner,
            detail={
                "reason": "object of another tenant",
                "object": model_label,
                "requested_in": requested_in.slug,
            },
        )

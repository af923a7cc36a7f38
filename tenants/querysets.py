from __future__ import annotations

from typing import Any

from django.db import models


class TenantOwnedQuerySet(models.QuerySet):
    """Every read of tenant-owned data starts here: `Model.objects.for_tenant(tenant)`."""

    def for_tenant(self, tenant: Any) -> TenantOwnedQuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise ValueError("for_tenant() needs a saved tenant; refusing an unscoped query.")
        return self.filter(tenant_id=tenant.pk)


TenantOwnedManager = models.Manager.from_queryset(TenantOwnedQuerySet)

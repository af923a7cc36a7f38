"""Console plumbing shared by every tenant page: tenant from the URL, scope, 404 on a miss."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from audit.context import Actor
from audit.services import record

from .access import tenant_for_actor
from .exceptions import CrossTenantNotFound
from .models import Tenant
from .rls import system_scope, tenant_scope


def _record_cross_access(request: HttpRequest, owner_tenant_id: int | None, detail: dict) -> None:
    if owner_tenant_id is None:
        return
    with system_scope():
        owner = Tenant.objects.get(pk=owner_tenant_id)
        record(
            action="tenant.cross_access_denied",
            actor=Actor.for_user(request.user),
            tenant=owner,
            data={"path": request.path[:300], **detail},
        )


def _owner_of(model_label: str, pk: Any) -> int | None:
    with system_scope():
        model = apps.get_model(model_label)
        return model.objects.filter(pk=pk).values_list("tenant_id", flat=True).first()


def tenant_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve `<slug:tenant>` for the signed-in actor and run the view in that tenant's scope.

    A tenant the actor may not act in, and an object of another tenant, both give the same
    404 as something that does not exist; the attempt is recorded in the owner's trail.
    """

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, tenant: str, **kwargs: Any) -> HttpResponse:
        try:
            request.tenant, request.tenant_access = tenant_for_actor(request.user, tenant)
        except Http404:
            owner = Tenant.objects.filter(slug=tenant).values_list("id", flat=True).first()
            _record_cross_access(request, owner, {"reason": "no access to tenant"})
            raise
        try:
            with tenant_scope([request.tenant.pk]):
                return view(request, **kwargs)
        except CrossTenantNotFound as missing:
            owner = _owner_of(missing.model_label, missing.pk)
            if owner is not None and owner != request.tenant.pk:
                _record_cross_access(
                    request,
                    owner,
                    {
                        "reason": "object of another tenant",
                        "object": missing.model_label,
                        "requested_in": request.tenant.slug,
                    },
                )
            raise Http404("Not found.") from None

    return wrapper

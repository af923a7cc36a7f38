"""Console plumbing shared by every tenant page: tenant from the URL, scope, 404 on a miss."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from .access import tenant_for_actor
from .crossaccess import foreign_object_record, tenant_refused_record
from .exceptions import CrossTenantNotFound
from .memo import request_memo
from .rls import tenant_scope


def tenant_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve `<slug:tenant>` for the signed-in actor and run the view in that tenant's scope.

    A tenant the actor may not act in, and an object of another tenant, both give the same
    404 as something that does not exist; the attempt is recorded in the owner's trail.
    """
    return _tenant_wrapper(view, scoped=True)


def tenant_view_own_scope(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`tenant_view` for a view whose service opens the tenant's scope itself, step by step,
    because a step commits on its own (signing a checkpoint before a bundle is built)."""
    return _tenant_wrapper(view, scoped=False)


def _tenant_wrapper(
    view: Callable[..., HttpResponse], *, scoped: bool
) -> Callable[..., HttpResponse]:
    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, tenant: str, **kwargs: Any) -> HttpResponse:
        with request_memo():
            return _in_tenant(view, request, tenant, scoped=scoped, **kwargs)

    return wrapper


def _in_tenant(
    view: Callable[..., HttpResponse],
    request: HttpRequest,
    tenant: str,
    *,
    scoped: bool,
    **kwargs: Any,
) -> HttpResponse:
    try:
        request.tenant, request.tenant_access = tenant_for_actor(request.user, tenant)
    except Http404:
        tenant_refused_record(actor=request.user, path=request.path, slug=tenant)
        raise
    try:
        with tenant_scope([request.tenant.pk]) if scoped else nullcontext():
            return view(request, **kwargs)
    except CrossTenantNotFound as missing:
        foreign_object_record(
            actor=request.user,
            path=request.path,
            requested_in=request.tenant,
            model_label=missing.model_label,
            pk=missing.pk,
        )
        raise Http404("Not found.") from None

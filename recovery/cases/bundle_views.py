"""The console download of a case's evidence bundle (`/t/<tenant>/cases/<pk>/bundle/`), for the
button on the case's audit timeline (templates/console/audit/_bundle_button.html).

A `tenant_view_own_scope`: a bundle may need a checkpoint signed first, which commits on its
own, so `recovery.bundle.case_bundle_download` opens the tenant's scope for each of its steps.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.bundle import BundleUnavailable
from audit.exceptions import TrailReadNotRecorded
from tenants.console import tenant_view_own_scope
from tenants.exceptions import PolicyDenied

from ..api.bundle import bundle_response
from ..bundle import case_bundle_download

REFUSED_TEMPLATE = "console/audit/bundle_refused.html"


@require_GET
@tenant_view_own_scope
def case_bundle_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Download the case's evidence bundle (readers of the trail); recorded, or refused."""
    try:
        bundle = case_bundle_download(
            actor=request.user, access=request.tenant_access, tenant=request.tenant, case_id=pk
        )
    except PolicyDenied as refused:
        raise PermissionDenied(f"{refused.message} ({refused.code})") from refused
    except (BundleUnavailable, TrailReadNotRecorded) as refused:
        context = {"message": refused.message, "code": refused.code}
        return render(request, REFUSED_TEMPLATE, context, status=503)
    return bundle_response(bundle)

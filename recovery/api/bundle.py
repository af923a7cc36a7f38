"""The API download of a case's evidence bundle (`cases/<id>/bundle/`, issue 15): for readers
of the trail; recorded as `audit.bundle_downloaded`, or refused. Thin: `recovery.bundle`
decides and builds."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from api.base import TenantApiView
from audit.bundle import BundleUnavailable
from audit.exceptions import TrailReadNotRecorded
from tenants.choices import Scope

from ..bundle import CaseBundle, case_bundle_download

ZIP = "application/zip"


class BundleRefused(APIException):
    """503: no bundle now (no checkpoint could be made, a key not trusted, the download not
    recorded); the code says which."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "bundle.unavailable"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code)


def bundle_response(bundle: CaseBundle) -> HttpResponse:
    """The zip as a download nobody caches (console and API alike)."""
    response = HttpResponse(bundle.content, content_type=ZIP)
    response["Content-Disposition"] = f'attachment; filename="{bundle.filename}"'
    response["Cache-Control"] = "no-store"
    return response


class CaseBundleApi(TenantApiView):
    scopes = {"GET": Scope.AUDIT_READ}

    @extend_schema(
        operation_id="cases_bundle",
        summary="Download the case's evidence bundle (zip), for vouchsafe-verify",
        description=(
            "Every event of the case with the chain rows linking it to a signed checkpoint, the "
            "evidence with its digests and attachments, the approvals and execution with their "
            "stored passkey assertions and public keys, the deciding policy text, and a manifest "
            'signed with the checkpoint key (docs/audit.md, "Evidence bundles"). For the '
            "tenant's auditors, security officers and admins; recorded as "
            "`audit.bundle_downloaded`. 503 `bundle.no_checkpoint`, `bundle.key_not_trusted` or "
            "`audit.read_not_recorded` when no bundle can be handed out now."
        ),
        responses={(200, ZIP): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, case_id: int) -> HttpResponse:
        try:
            bundle = case_bundle_download(
                actor=request.user,
                access=request.tenant_access,
                tenant=request.tenant,
                case_id=case_id,
            )
        except BundleUnavailable as refused:
            raise BundleRefused(refused.message, refused.code) from refused
        except TrailReadNotRecorded as refused:
            raise BundleRefused(
                TrailReadNotRecorded.message, TrailReadNotRecorded.code
            ) from refused
        return bundle_response(bundle)

    def _run_handler(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """Outside the tenant transaction the other views run in: signing a checkpoint commits
        on its own, before the bundle is read; the service opens the tenant's scope itself."""
        kwargs.pop("tenant")
        return self.get(request, *args, **kwargs)

"""Every API error has one shape: `{"code", "message", "errors"}` with a fitting status.

`code` is stable and machine-readable, `message` is for a person, `errors` maps a field (dotted
for nested input) to what is wrong with it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from audit.context import Actor
from audit.exceptions import AttemptNotRecorded
from audit.services import record
from tenants.crossaccess import foreign_object_record
from tenants.exceptions import CrossTenantNotFound, DomainError, InvalidInput
from tenants.rls import tenant_scope

# Domain refusals that mean "the object is not in a state for this": 409, not 400.
CONFLICT_CODES = frozenset(
    {
        "case.wrong_state",
        "evidence.case_not_collecting",
        "policy.not_draft",
        "policy.not_pending",
        "policy.outdated",
        "grant.not_pending",
        "connector.change_pending",
        "connector.change_not_pending",
        "connector.change_outdated",
    }
)

_DRF_CODES = {
    exceptions.NotAuthenticated: "auth.required",
    exceptions.AuthenticationFailed: "auth.invalid_credentials",
    exceptions.PermissionDenied: "auth.forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "request.method_not_allowed",
    exceptions.NotAcceptable: "request.not_acceptable",
    exceptions.UnsupportedMediaType: "request.unsupported_media_type",
    exceptions.ParseError: "request.malformed",
    exceptions.Throttled: "throttle.exceeded",
    exceptions.ValidationError: "input.invalid",
}


def error_body(code: str, message: str, errors: dict[str, list[str]] | None = None) -> dict:
    return {"code": code, "message": message, "errors": errors or {}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as {"field.sub": ["message", ...]}."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    items = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(item) for item in items]}


def _status_of(error: DomainError) -> int:
    if isinstance(error, AttemptNotRecorded):  # counted; the trail is down, not the caller
        return status.HTTP_503_SERVICE_UNAVAILABLE
    if error.code in CONFLICT_CODES:
        return status.HTTP_409_CONFLICT
    if isinstance(error, InvalidInput):
        return status.HTTP_400_BAD_REQUEST
    return status.HTTP_403_FORBIDDEN


def _record_ai_block(request: Any, error: DomainError) -> None:
    """R-63/R-67: a refused AI action leaves a trace even though the action rolled back."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return
    with tenant_scope([tenant.pk]):
        record(
            action="ai.action_blocked",
            actor=Actor.for_user(request.user, organisation=tenant.name),
            tenant=tenant,
            data={"method": request.method, "path": request.path[:300], "reason": error.message},
        )


def _record_cross_tenant(request: Any, missing: CrossTenantNotFound) -> None:
    tenant = getattr(request, "tenant", None)
    if tenant is not None:
        foreign_object_record(
            actor=request.user,
            path=request.path,
            requested_in=tenant,
            model_label=missing.model_label,
            pk=missing.pk,
        )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler for every API view: one error shape, the right status."""
    request = context.get("request")
    if isinstance(exc, CrossTenantNotFound) and request is not None:
        _record_cross_tenant(request, exc)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DomainError):
        if exc.code == "ai.action_blocked" and request is not None:
            _record_ai_block(request, exc)
        return Response(error_body(exc.code, exc.message, exc.field_errors), status=_status_of(exc))
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500 handling, logged with the traceback
    headers = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(
            "input.invalid", "Some fields are missing or invalid.", _flatten(exc.detail)
        )
    else:
        code = exc.default_code if "." in exc.default_code else _DRF_CODES.get(type(exc))
        detail_codes = exc.get_codes()
        if isinstance(detail_codes, str) and "." in detail_codes:
            code = detail_codes
        body = error_body(code or "request.refused", str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


def _is_api(request: Any) -> bool:
    return request.path.startswith("/api/")


def not_found(request: Any, exception: Exception) -> Any:
    """handler404: JSON under /api/ (a path that matches no route), the console page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return page_not_found(request, exception)


def server_error(request: Any) -> Any:
    """handler500: JSON under /api/, the console page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as console_server_error

    if _is_api(request):
        body = error_body("server.error", "Something went wrong on our side; it has been logged.")
        return JsonResponse(body, status=500)
    return console_server_error(request)

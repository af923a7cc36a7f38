"""The base of every tenant API view: authentication, tenant from the URL, scopes, throttles,
idempotency, and the handler run inside the tenant's row-level-security scope.

Views stay thin: parse input with a serializer, call one service or selector, shape output.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.access import TenantAccess, access_in, tenant_for_actor
from tenants.choices import AI_ASSISTANT_SCOPES, PrincipalKind, StaffScope, role_scopes
from tenants.crossaccess import tenant_refused_record
from tenants.exceptions import DomainError, PolicyDenied
from tenants.memo import request_memo
from tenants.models import ApiKey
from tenants.rls import tenant_scope

from .exceptions import ScopeMissing, StaffOnly
from .idempotency import idempotency_claim, idempotency_finish


class TenantApiView(GenericAPIView):
    """A view under `/api/v1/t/<tenant>/`.

    `scopes` maps each HTTP method (HEAD as GET) to the scope it needs: a `Scope` an API key
    can hold, or a `StaffScope` only a person holds. A key needs the scope among its own; a
    staff session needs it among the scopes its roles imply in the tenant (`role_scopes`): the
    same check on every route for both. A method missing from `scopes` is refused to everyone.
    The services check the rest (tier, grant, separation of duties).
    """

    scopes: ClassVar[dict[str, str]] = {}
    metadata_class = None  # OPTIONS describes nothing: the OpenAPI schema does that

    def required_scope(self, method: str) -> str | None:
        return self.scopes.get("GET" if method == "HEAD" else method)

    def _resolve_tenant(self, request: Request, slug: str) -> None:
        key = request.auth if isinstance(request.auth, ApiKey) else None
        try:
            if key is not None:
                if key.tenant.slug != slug:
                    raise Http404("No such tenant.")
                request.tenant = key.tenant
                request.tenant_access = access_in(request.user, key.tenant)
                if request.tenant_access is None:  # revoked since it was last verified
                    raise AuthenticationFailed(
                        "The API key is unknown, expired or revoked.", code="auth.invalid_key"
                    )
            else:
                request.tenant, request.tenant_access = tenant_for_actor(request.user, slug)
        except Http404:
            tenant_refused_record(actor=request.user, path=request.path, slug=slug)
            raise

    def _check_scope(self, request: Request) -> None:
        if request.method == "OPTIONS" or not hasattr(self, request.method.lower()):
            return  # a method the view does not serve: its handler answers 405
        scope = self.required_scope(request.method)
        if not isinstance(request.auth, ApiKey):
            access: TenantAccess | None = request.tenant_access
            held = role_scopes(access.roles) if access is not None else frozenset()
            if scope is None or scope not in held:
                raise ScopeMissing(
                    _("Your roles in this tenant do not include the %(scope)s scope.")
                    % {"scope": scope or request.method}
                )
            return
        if request.user.kind == PrincipalKind.AI_ASSISTANT and scope not in AI_ASSISTANT_SCOPES:
            raise PolicyDenied(
                "An AI assistant may only read, draft cases and attach summaries; a person "
                "must approve, execute, accept evidence or change tier and policy (R-63).",
                code="ai.action_blocked",
            )
        if scope is None or scope in StaffScope.values:
            raise StaffOnly()
        if scope not in request.auth.scopes:
            raise ScopeMissing(f"This API key lacks the {scope} scope.")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        self._resolve_tenant(request, kwargs["tenant"])
        self._check_scope(request)

    def _run_handler(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        handler = getattr(self, request.method.lower(), self.http_method_not_allowed)
        kwargs.pop("tenant")
        refusal: DomainError | None = None
        with tenant_scope([request.tenant.pk]):
            try:
                return handler(request, *args, **kwargs)
            except DomainError as error:
                # A service refusal has already rolled back the service's own writes; what it
                # recorded on purpose (policy.violation, failed step-ups) commits here.
                refusal = error
        raise refusal

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        """DRF's dispatch, with idempotency around and a tenant transaction inside."""
        with request_memo():
            return self._dispatch(request, *args, **kwargs)

    def _dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        claim = None
        response: Response | None = None
        try:
            self.initial(request, *args, **kwargs)
            claim = idempotency_claim(request, request.tenant)
            if claim.replay is not None:
                response = claim.replay
            else:
                response = self._run_handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        finally:
            if claim is not None and claim.replay is None:
                idempotency_finish(claim, request.tenant, response)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response


class TenantListApiView(ListModelMixin, TenantApiView):
    """GET: `get_queryset()`, filtered and cursor-paginated, shaped by `serializer_class`.

    `check_read` is the hook for who may read the list beyond the scope check.
    """

    def check_read(self, request: Request) -> None:
        """Refuse a reader the list is not for; by default everyone in scope may read."""

    def list_queryset(self, tenant: Any) -> QuerySet:
        """The rows of `tenant` this list shows (from a selector)."""
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no tenant
            return self.get_serializer_class().Meta.model.objects.none()
        return self.list_queryset(self.request.tenant)

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.check_read(request)
        return self.list(request, *args, **kwargs)

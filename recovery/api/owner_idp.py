"""The tenant's identity provider for account owners, over the API.

- `owner-idp/`: list the configurations; a tenant_admin drafts one (POST).
- `owner-idp/<id>/approve/`: a second tenant_admin activates it with a fresh step-up (R-27).
- `owner-idp/<id>/retire/`: a tenant_admin retires one.
- `cases/<id>/idp-sign-in/`: an agent asks the owner to sign in with the provider (S5). The
  answer is the request, never evidence: only the owner's sign-in, validated at the callback,
  records the S5.

Configuration changes are for people only (no API key, no AI assistant).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from tenants.api.serializers import StepUpInput
from tenants.choices import Scope, StaffScope
from tenants.exceptions import CrossTenantNotFound
from tenants.models import ApiKey
from tenants.policies import enforce
from tenants.stepup import step_up_verify

from ..owner.choices import IdpConfigStatus, IdpSignInStatus
from ..owner.idp_config import (
    can_read_idp_config,
    idp_config_approve,
    idp_config_draft,
    idp_config_list,
    idp_config_retire,
)
from ..owner.idp_sign_in import idp_sign_in_request
from ..owner.models import IdpSignIn, OwnerIdpConfig
from .views import IDEMPOTENCY_KEY, IF_MATCH, _CaseTransitionApi


class OwnerIdpConfigOutput(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text=", ".join(IdpConfigStatus.values))
    drafted_by = serializers.CharField(source="drafted_by.username", read_only=True)
    approved_by = serializers.CharField(
        source="approved_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = OwnerIdpConfig
        fields = [
            "id",
            "issuer",
            "client_id",
            "client_secret_env",
            "allowed_amr",
            "allowed_acr",
            "status",
            "drafted_by",
            "approved_by",
            "created_at",
            "activated_at",
            "retired_at",
        ]


class OwnerIdpConfigInput(serializers.Serializer):
    issuer = serializers.CharField(max_length=500, help_text="The provider's issuer URL (https).")
    client_id = serializers.CharField(max_length=255)
    client_secret_env = serializers.CharField(
        max_length=128,
        help_text="Name of the environment variable holding the client secret (never the "
        "secret itself).",
    )
    allowed_amr = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=20,
        help_text="amr values that show an authenticator already bound (hwk, swk, mfa …).",
    )
    allowed_acr = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=20, required=False, default=list
    )


class RetireInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class IdpSignInOutput(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text=", ".join(IdpSignInStatus.values))
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = IdpSignIn
        fields = ["id", "purpose", "status", "created_at", "expires_at", "evidence_id"]


def _check_read(request: Request) -> None:
    """A key reads with its `policy:read` scope (already checked); a person needs a reader's
    role in the tenant (admins, security officers, auditors)."""
    if not isinstance(request.auth, ApiKey):
        enforce(can_read_idp_config(request.tenant_access))


def _config(request: Request, config_id: int) -> OwnerIdpConfig:
    config = idp_config_list(request.tenant).filter(pk=config_id).first()
    if config is None:
        raise CrossTenantNotFound(OwnerIdpConfig._meta.label, config_id)
    return config


@extend_schema_view(
    get=extend_schema(
        operation_id="owner_idp_list",
        summary="The tenant's identity provider configurations for account owners",
    )
)
class OwnerIdpConfigListApi(TenantListApiView):
    scopes = {"GET": Scope.POLICY_READ, "POST": StaffScope.SETTINGS_WRITE}
    serializer_class = OwnerIdpConfigOutput

    def check_read(self, request: Request) -> None:
        _check_read(request)

    def list_queryset(self, tenant):
        return idp_config_list(tenant)

    @extend_schema(
        operation_id="owner_idp_draft",
        summary="Draft an OpenID Connect provider for account owners (a second admin approves)",
        request=OwnerIdpConfigInput,
        responses={201: OwnerIdpConfigOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        data = OwnerIdpConfigInput(data=request.data)
        data.is_valid(raise_exception=True)
        config = idp_config_draft(actor=request.user, tenant=request.tenant, **data.validated_data)
        return Response(OwnerIdpConfigOutput(config).data, status=status.HTTP_201_CREATED)


class OwnerIdpConfigDetailApi(TenantApiView):
    scopes = {"GET": Scope.POLICY_READ}

    @extend_schema(operation_id="owner_idp_retrieve", responses=OwnerIdpConfigOutput)
    def get(self, request: Request, config_id: int) -> Response:
        config = _config(request, config_id)
        _check_read(request)
        return Response(OwnerIdpConfigOutput(config).data)


class OwnerIdpConfigApproveApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="owner_idp_approve",
        summary="Activate a drafted provider (a second tenant admin, with step-up)",
        request=StepUpInput,
        responses=OwnerIdpConfigOutput,
    )
    def post(self, request: Request, config_id: int) -> Response:
        data = StepUpInput(data=request.data)
        data.is_valid(raise_exception=True)
        config = _config(request, config_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        config = idp_config_approve(actor=request.user, config=config, step_up=proof)
        return Response(OwnerIdpConfigOutput(config).data)


class OwnerIdpConfigRetireApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="owner_idp_retire",
        summary="Retire a provider configuration (owners can no longer sign in with it)",
        request=RetireInput,
        responses=OwnerIdpConfigOutput,
    )
    def post(self, request: Request, config_id: int) -> Response:
        data = RetireInput(data=request.data)
        data.is_valid(raise_exception=True)
        config = _config(request, config_id)
        config = idp_config_retire(
            actor=request.user, config=config, reason=data.validated_data["reason"]
        )
        return Response(OwnerIdpConfigOutput(config).data)


class CaseIdpSignInApi(_CaseTransitionApi):
    """Ask the owner to sign in with the tenant's identity provider (S5): the owner's sign-in,
    validated at the callback, not this call, records the evidence."""

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_idp_sign_in_request",
        summary="Send the owner a link to sign in with the tenant's identity provider (S5)",
        request=None,
        responses={201: IdpSignInOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = self.locked_case(request, case_id)
        sign_in = idp_sign_in_request(actor=request.user, case=case)
        return self.answer(IdpSignInOutput(sign_in).data, case, status.HTTP_201_CREATED)

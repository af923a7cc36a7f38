"""Identity proofing (S4) over the API: start a session at a provider for a case.

The verdict never comes through here: the provider posts it, signed, to its own endpoint
(`/proofing/<provider>/verdict/`), and only that creates the S4 evidence. An integration key
may start a session; an AI key may not (R-63).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.choices import Scope

from ..proofing.choices import ProofingStatus
from ..proofing.models import ProofingSession
from ..proofing.services import proofing_start
from .views import IDEMPOTENCY_KEY, IF_MATCH, _CaseTransitionApi


class ProofingSessionOutput(serializers.ModelSerializer):
    # A plain string (values in the help text): an enum name would clash in the schema.
    status = serializers.CharField(read_only=True, help_text=", ".join(ProofingStatus.values))
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ProofingSession
        fields = [
            "id",
            "provider",
            "status",
            "level",
            "created_at",
            "expires_at",
            "verdict_id",
            "verdict_at",
            "evidence_id",
        ]


class ProofingStartInput(serializers.Serializer):
    provider = serializers.SlugField(
        max_length=32,
        required=False,
        allow_blank=True,
        help_text="A configured provider's name; empty for the tenant's default.",
    )


class ProofingStartOutput(ProofingSessionOutput):
    redirect_url = serializers.CharField(
        read_only=True, help_text="The provider's page where the person is proofed."
    )

    class Meta(ProofingSessionOutput.Meta):
        fields = [*ProofingSessionOutput.Meta.fields, "redirect_url"]


class CaseProofingStartApi(_CaseTransitionApi):
    """Start identity proofing (S4): the provider's signed verdict, not this call, decides."""

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_proofing_start",
        summary="Start an identity-proofing session at a provider (S4); the verdict comes "
        "from the provider",
        request=ProofingStartInput,
        responses={201: ProofingStartOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = ProofingStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        started = proofing_start(
            actor=request.user, case=case, provider=data.validated_data.get("provider") or None
        )
        body = {**ProofingSessionOutput(started.session).data, "redirect_url": started.redirect_url}
        return self.answer(body, case, status.HTTP_201_CREATED)

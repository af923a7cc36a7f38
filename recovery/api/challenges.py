"""Verification challenges over the API: send a code, check the code read back, ask for an
attestation. The code never appears in a response; the contact only as a masked hint (R-14)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.choices import Scope

from ..cases.selectors import case_get_visible
from ..challenges.choices import ChallengeChannel, ChallengeKind, ChallengeStatus, ConfirmedVia
from ..challenges.models import VerificationChallenge
from ..challenges.selectors import challenge_get_visible, challenge_list
from ..challenges.services import attestation_request, challenge_send, challenge_verify
from ..models import ContactMethod
from .serializers import EvidenceOutput
from .views import IDEMPOTENCY_KEY, IF_MATCH, _CaseTransitionApi


def _values(choices: type) -> str:
    return ", ".join(choices.values)


class ChallengeOutput(serializers.ModelSerializer):
    # Plain strings (values listed in the help text): enum names would clash in the schema.
    kind = serializers.CharField(read_only=True, help_text=_values(ChallengeKind))
    channel = serializers.CharField(read_only=True, help_text=_values(ChallengeChannel))
    status = serializers.CharField(read_only=True, help_text=_values(ChallengeStatus))
    contact_method_id = serializers.IntegerField(read_only=True)
    contact_kind = serializers.CharField(source="contact_method.kind", read_only=True)
    contact_hint = serializers.CharField(
        read_only=True, help_text="Masked: never the whole number or address (R-14)."
    )
    verified_via = serializers.CharField(read_only=True, help_text=_values(ConfirmedVia))
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = VerificationChallenge
        fields = [
            "id",
            "kind",
            "channel",
            "status",
            "contact_method_id",
            "contact_kind",
            "contact_hint",
            "created_at",
            "expires_at",
            "verified_at",
            "verified_via",
            "evidence_id",
        ]


class ChallengeSendInput(serializers.Serializer):
    contact_method_id = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="One of the account's contact methods (never a number or address typed in). "
        "Required unless the request only reports a `caller_supplied_destination`.",
    )
    caller_supplied_destination = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="A number or address the caller asked us to use instead. Never used: the "
        "request is refused (`evidence.caller_supplied_channel`, R-03) and the attempt is "
        "recorded on the case as `verification.signal_rejected` (`caller_supplied_channel`).",
    )

    def validate(self, data: dict) -> dict:
        if not data.get("contact_method_id") and not data["caller_supplied_destination"].strip():
            raise serializers.ValidationError({"contact_method_id": ["This field is required."]})
        return data


class ChallengeVerifyInput(serializers.Serializer):
    code = serializers.CharField(
        max_length=32, help_text="The code the owner read back (spaces and dashes are ignored)."
    )


class ChallengeVerifiedOutput(serializers.Serializer):
    challenge = ChallengeOutput()
    evidence = EvidenceOutput(help_text="The S2 signal as the server recorded it.")


class CaseChallengeListApi(_CaseTransitionApi):
    """A case's verification challenges; POST sends a one-time code to a contact on record.

    Only a contact the system of record holds can carry a code. A destination the caller
    dictates (`caller_supplied_destination`) is refused and recorded, never used (R-03).
    """

    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}
    pagination_class = None  # a case has a handful: one plain array
    filter_backends: list = []
    queryset = VerificationChallenge.objects.none()  # tells the schema generator the model

    @extend_schema(
        operation_id="cases_challenges_list",
        summary="The case's verification challenges (masked; never a code)",
        responses=ChallengeOutput(many=True),
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        rows = challenge_list(tenant=request.tenant, case=case)
        return Response(ChallengeOutput(rows, many=True).data)

    @extend_schema(
        operation_id="cases_challenges_send",
        summary="Send a one-time code (S2) to one of the account's contact methods on record",
        request=ChallengeSendInput,
        responses={201: ChallengeOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = ChallengeSendInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        contact_id = data.validated_data.get("contact_method_id")
        contact = (
            ContactMethod.objects.for_tenant(request.tenant).filter(pk=contact_id).first()
            if contact_id
            else None
        )
        challenge = challenge_send(
            actor=request.user,
            case=case,
            contact_method=contact,
            caller_supplied_destination=data.validated_data["caller_supplied_destination"],
        )
        return self.answer(ChallengeOutput(challenge).data, case, status.HTTP_201_CREATED)


class ChallengeVerifyApi(_CaseTransitionApi):
    """The code the owner read back; a match is recorded as S2 evidence. Refusals say only
    "wrong or expired" (`challenge.code_invalid`) or, after too many, `challenge.locked`."""

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_challenges_verify",
        summary="Check the code the owner read back; a match records S2 evidence",
        request=ChallengeVerifyInput,
        responses=ChallengeVerifiedOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int, challenge_id: int) -> Response:
        data = ChallengeVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        challenge = challenge_get_visible(tenant=request.tenant, case=case, pk=challenge_id)
        evidence = challenge_verify(
            actor=request.user, case=case, challenge=challenge, code=data.validated_data["code"]
        )
        challenge = challenge_get_visible(tenant=request.tenant, case=case, pk=challenge_id)
        body = {
            "challenge": ChallengeOutput(challenge).data,
            "evidence": EvidenceOutput(evidence).data,
        }
        return self.answer(body, case)


class CaseAttestationApi(_CaseTransitionApi):
    """Ask the subject's manager to attest (S3) from their own signed-in session."""

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_attestations_request",
        summary="Send the manager a single-use link to attest from their own session (S3)",
        request=None,
        responses={201: ChallengeOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = self.locked_case(request, case_id)
        challenge = attestation_request(actor=request.user, case=case)
        return self.answer(ChallengeOutput(challenge).data, case, status.HTTP_201_CREATED)

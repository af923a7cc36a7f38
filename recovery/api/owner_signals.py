"""The owner's signals over the API: a saved recovery code read back (S1) and an in-app
confirmation with number matching and a passkey (S5).

A saved code is checked against the hashes of the account's current set (R-29, R-53); only a
match records evidence. An in-app confirmation is only *asked for* here: the response carries
the number the agent reads out, and only the owner's passkey assertion on the owner's page
records the S5. No field of any request marks a signal verified.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.choices import Scope

from ..cases.selectors import case_get_visible
from ..owner.choices import ConfirmationStatus
from ..owner.confirmation import confirmation_latest, confirmation_request
from ..owner.models import OwnerConfirmation, RecoveryCodeCheck
from ..owner.signals import CODE_INPUT_MAX, recovery_code_check
from .serializers import EvidenceOutput
from .views import IDEMPOTENCY_KEY, IF_MATCH, _CaseTransitionApi


class RecoveryCodeInput(serializers.Serializer):
    code = serializers.CharField(
        max_length=CODE_INPUT_MAX,
        help_text="The saved recovery code the caller reads out (spaces and dashes ignored).",
    )


class RecoveryCodeCheckOutput(serializers.ModelSerializer):
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = RecoveryCodeCheck
        fields = ["id", "matched", "created_at", "evidence_id"]
        read_only_fields = fields


class RecoveryCodeCheckedOutput(serializers.Serializer):
    check = RecoveryCodeCheckOutput(help_text="The verifier's record of this check.")
    evidence = EvidenceOutput(help_text="The S1 signal as the server recorded it.")


class ConfirmationOutput(serializers.ModelSerializer):
    # A plain string (values in the help text): an enum name would clash in the schema.
    status = serializers.SerializerMethodField(help_text=", ".join(ConfirmationStatus.values))
    number = serializers.SerializerMethodField(
        help_text="The number to read out to the caller while the request is open; null after."
    )
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = OwnerConfirmation
        fields = [
            "id",
            "status",
            "number",
            "attempts",
            "max_attempts",
            "created_at",
            "expires_at",
            "ended_at",
            "evidence_id",
        ]
        read_only_fields = fields

    def get_status(self, confirmation: OwnerConfirmation) -> str:
        expired = getattr(confirmation, "expired", False)
        if confirmation.status == ConfirmationStatus.OPEN and expired:
            return ConfirmationStatus.EXPIRED
        return confirmation.status

    def get_number(self, confirmation: OwnerConfirmation) -> str | None:
        return confirmation.number if self.get_status(confirmation) == "open" else None


class CaseRecoveryCodeApi(_CaseTransitionApi):
    """The saved recovery code the caller reads out; a match records S1 evidence. Refusals say
    only "not valid" (`recovery_code.invalid`) or, after too many, `recovery_code.locked`."""

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_recovery_code_check",
        summary="Check a saved recovery code read back by the caller; a match records S1",
        request=RecoveryCodeInput,
        responses=RecoveryCodeCheckedOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = RecoveryCodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        evidence = recovery_code_check(
            actor=request.user, case=case, code=data.validated_data["code"]
        )
        check = RecoveryCodeCheck.objects.for_tenant(request.tenant).get(evidence=evidence)
        body = {
            "check": RecoveryCodeCheckOutput(check).data,
            "evidence": EvidenceOutput(evidence).data,
        }
        return self.answer(body, case)


class CaseConfirmationApi(_CaseTransitionApi):
    """In-app confirmation (S5): POST asks the owner, GET shows the latest request's status.

    The owner types the number the agent reads out (two digits; a request allows two wrong
    answers) and confirms with a passkey registered before the case; only that assertion,
    verified by the server, records the evidence.
    """

    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_confirmation_status",
        summary="The case's latest in-app confirmation request and its status",
        responses=ConfirmationOutput,
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        confirmation = confirmation_latest(case)
        if confirmation is None:
            raise NotFound("No in-app confirmation was asked for on this case.")
        return Response(ConfirmationOutput(confirmation).data)

    @extend_schema(
        operation_id="cases_confirmation_request",
        summary="Ask the owner for an in-app confirmation (S5); returns the number to read out",
        request=None,
        responses={201: ConfirmationOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = self.locked_case(request, case_id)
        confirmation = confirmation_request(actor=request.user, case=case)
        confirmation = confirmation_latest(case) or confirmation
        return self.answer(ConfirmationOutput(confirmation).data, case, status.HTTP_201_CREATED)

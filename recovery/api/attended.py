"""Attended sessions over the API (S4 by a trusted referee, R-06, R-07, R-09).

Staff sessions only: a referee is a certified person, so every API key is refused here
(`auth.staff_only`; an AI assistant's key with `ai.action_blocked`), and the services refuse any
non-human principal again (`attended.human_required`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.choices import StaffScope

from ..proofing.attended import (
    RECORD_ITEM_MAX,
    RECORD_ITEMS_MAX,
    attended_coercion_answer,
    attended_complete,
    attended_fraud_flag,
    attended_get_visible,
    attended_start,
)
from ..proofing.choices import AttendedMode, AttendedStatus
from ..proofing.models import AttendedSession
from .serializers import CaseOutput, EvidenceOutput
from .views import IDEMPOTENCY_KEY, IF_MATCH, _CaseTransitionApi


def _values(choices: type) -> str:
    return ", ".join(choices.values)


class AttendedSessionOutput(serializers.ModelSerializer):
    # Plain strings (values listed in the help text): enum names would clash in the schema.
    mode = serializers.CharField(read_only=True, help_text=_values(AttendedMode))
    status = serializers.CharField(read_only=True, help_text=_values(AttendedStatus))
    referee = serializers.CharField(source="referee.username", read_only=True)
    live_challenge = serializers.CharField(
        read_only=True, help_text="Drawn by the server at the start; the person performs it."
    )
    coercion_observed = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="null until the referee has answered (R-07)."
    )
    documents_presented = serializers.ListField(child=serializers.CharField(), read_only=True)
    steps_completed = serializers.ListField(child=serializers.CharField(), read_only=True)
    evidence_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = AttendedSession
        fields = [
            "id",
            "mode",
            "status",
            "referee",
            "reason",
            "live_challenge",
            "coercion_observed",
            "coercion_note",
            "coercion_answered_at",
            "documents_presented",
            "steps_completed",
            "live_challenge_passed",
            "biometric_compared",
            "outcome_note",
            "created_at",
            "ended_at",
            "evidence_id",
        ]


class AttendedStartInput(serializers.Serializer):
    mode = serializers.CharField(max_length=16, help_text=_values(AttendedMode))
    reason = serializers.CharField(
        max_length=2000, help_text="Why the attended path is used for this case (R-09)."
    )


class AttendedCoercionInput(serializers.Serializer):
    observed = serializers.BooleanField(
        help_text="Signs of coercion, manipulation or social engineering observed?"
    )
    note = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required when observed is true: what you saw.",
    )


def _record_items(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=RECORD_ITEM_MAX),
        min_length=1,
        max_length=RECORD_ITEMS_MAX,
        help_text=help_text,
    )


class AttendedCompleteInput(serializers.Serializer):
    documents_presented = _record_items("What the person presented, e.g. 'passport (checked)'.")
    steps_completed = _record_items("Which steps of the session were done, in order.")
    live_challenge_passed = serializers.BooleanField(
        help_text="false ends the session as failed; nothing counts."
    )
    biometric_compared = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Onsite only: the person was compared with the enrolment reference (R-06).",
    )
    outcome_note = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class AttendedFraudInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="What you observed.")


class AttendedCompletedOutput(serializers.Serializer):
    session = AttendedSessionOutput()
    evidence = EvidenceOutput(
        allow_null=True, help_text="The S4 signal as recorded; null when the session failed."
    )


class AttendedFlaggedOutput(serializers.Serializer):
    session = AttendedSessionOutput()
    case = CaseOutput(help_text="The case, now frozen.")


class CaseAttendedStartApi(_CaseTransitionApi):
    """A trusted referee starts an attended session; the answer carries the live challenge."""

    scopes = {"POST": StaffScope.ATTENDED_RUN}

    @extend_schema(
        operation_id="cases_attended_start",
        summary="Start an attended session (trusted referee; server-drawn live challenge)",
        request=AttendedStartInput,
        responses={201: AttendedSessionOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = AttendedStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        session = attended_start(actor=request.user, case=case, **data.validated_data)
        return self.answer(AttendedSessionOutput(session).data, case, status.HTTP_201_CREATED)


class _AttendedSessionApi(_CaseTransitionApi):
    scopes = {"POST": StaffScope.ATTENDED_RUN}

    def session(self, request: Request, case_id: int, session_id: int):
        case = self.locked_case(request, case_id)
        return case, attended_get_visible(tenant=request.tenant, case=case, pk=session_id)

    def fresh(self, request: Request, case, session_id: int) -> dict:
        session = attended_get_visible(tenant=request.tenant, case=case, pk=session_id)
        return AttendedSessionOutput(session).data


class AttendedCoercionApi(_AttendedSessionApi):
    """The referee's mandatory answer to the coercion question (R-07)."""

    @extend_schema(
        operation_id="cases_attended_coercion",
        summary="Answer the coercion question; 'observed' ends the session and raises an alert",
        request=AttendedCoercionInput,
        responses=AttendedSessionOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int, session_id: int) -> Response:
        data = AttendedCoercionInput(data=request.data)
        data.is_valid(raise_exception=True)
        case, session = self.session(request, case_id, session_id)
        attended_coercion_answer(actor=request.user, session=session, **data.validated_data)
        return self.answer(self.fresh(request, case, session_id), case)


class AttendedCompleteApi(_AttendedSessionApi):
    """The referee ends the session with its record; a pass records S4 evidence."""

    @extend_schema(
        operation_id="cases_attended_complete",
        summary="End the session with its record (refused until the coercion answer)",
        request=AttendedCompleteInput,
        responses=AttendedCompletedOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int, session_id: int) -> Response:
        data = AttendedCompleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        case, session = self.session(request, case_id, session_id)
        evidence = attended_complete(actor=request.user, session=session, **data.validated_data)
        body = {
            "session": self.fresh(request, case, session_id),
            "evidence": EvidenceOutput(evidence).data if evidence is not None else None,
        }
        return self.answer(body, case)


class AttendedFraudApi(_AttendedSessionApi):
    """One action: the case is frozen and its artifacts revoked (R-07)."""

    @extend_schema(
        operation_id="cases_attended_fraud_flag",
        summary="Flag fraud: freeze the case, revoke its artifacts, raise an alert",
        request=AttendedFraudInput,
        responses=AttendedFlaggedOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int, session_id: int) -> Response:
        data = AttendedFraudInput(data=request.data)
        data.is_valid(raise_exception=True)
        case, session = self.session(request, case_id, session_id)
        case = attended_fraud_flag(
            actor=request.user, session=session, reason=data.validated_data["reason"]
        )
        body = {
            "session": self.fresh(request, case, session_id),
            "case": CaseOutput(case).data,
        }
        return self.answer(body, case)

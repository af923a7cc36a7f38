"""Recovery API views: accounts, cases and their transitions, attachments, approvals.

Thin by design: parse with a serializer, call one selector or service, shape the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

from django.http import FileResponse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import TenantApiView, TenantListApiView
from api.conditional import etag_of, require_if_match
from api.errors import error_body
from audit.context import Actor
from tenants.api.serializers import StepUpInput
from tenants.choices import Scope, StaffScope
from tenants.exceptions import InvalidInput
from tenants.models import ApiKey
from tenants.policies import can_administer_tenant, enforce
from tenants.stepup import step_up_verify

from ..cases.choices import Decision
from ..cases.models import CaseExecution, Evidence, EvidenceAttachment, RecoveryCase
from ..cases.selectors import (
    approval_list,
    case_get_for_change,
    case_get_visible,
    case_list,
    case_timeline,
    exception_review_list,
)
from ..cases.services import (
    approval_decide,
    case_cancel,
    case_needs,
    case_open,
    case_submit,
    case_take,
    context_record,
    evidence_refusal_record,
)
from ..cases.services.attachments import (
    ModelProvenance,
    attachment_add,
    attachment_open,
    case_summary_attach,
    note_add,
)
from ..cases.services.containment import containment_pending, containment_step_record
from ..cases.services.execution import case_close, case_execute, case_manual_step_record
from ..cases.services.repudiation import revert_pending
from ..cases.services.step_up import APPROVE, DENY, EXECUTE, step_up_options, step_up_presented
from ..delegation.selectors import delegation_of_case
from ..delegation.serializers import CaseDelegationOutput
from ..delegation.services import delegation_step_record
from ..imports import parse_account_items
from ..models import ContactMethod
from ..policy.selectors import policy_active, policy_version_get_visible, policy_version_list
from ..policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from ..policy.simulate import policy_simulate
from ..policy.validation import source_sha256, validate
from ..selectors import account_get_visible, account_list, account_reference
from ..services import accounts_import
from . import serializers as s
from .filters import AccountFilter, ApprovalFilter, CaseFilter

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The case's ETag as you last read it; 412 if it has changed since.",
)
GONE_RESPONSE = OpenApiResponse(
    {"$ref": "#/components/schemas/Error"},
    description="Gone: `evidence.endpoint_removed`; the message names the endpoints to use.",
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Any unique string; a retry with the same key and body returns the first result.",
)


def _with_etag(response: Response, case: RecoveryCase) -> Response:
    response["ETag"] = etag_of(case)
    return response


def _containment(execution: CaseExecution | None) -> dict[str, Any] | None:
    """A cloud recovery's pass (its times; the execution holds no pass) and its pending
    containment steps, for `CaseContainmentOutput`; None for an execution that gave no pass,
    ran no containment and left no step to a person (a role suspension's, a window undo's)."""
    if execution is None or not (
        execution.temporary_pass or execution.containment_done_at or execution.containment_steps
    ):
        return None
    given = execution.temporary_pass
    expires = given.get("expires_at") if given else None
    return {
        "temporary_pass": {
            "given_at": parse_datetime(given["started_at"]),
            "expires_at": parse_datetime(expires) if expires else None,
        }
        if given
        else None,
        "done_at": execution.containment_done_at,
        "pending": containment_pending(execution),
    }


def _revert(execution: CaseExecution | None) -> dict[str, Any] | None:
    """A repudiated execution's revert and its pending steps, for `CaseRevertOutput`; None
    before any revert ran."""
    if execution is None or not (execution.revert_ran_at or execution.revert_steps):
        return None
    return {
        "ran_at": execution.revert_ran_at,
        "reverted_at": execution.reverted_at,
        "pending": revert_pending(execution),
    }


def _case_detail(case: RecoveryCase, tenant: Any) -> dict[str, Any]:
    needs = case_needs(case)
    data = s.CaseDetailOutput(case).data
    data["needs"] = {
        **needs.__dict__,
        "accepted_classes": list(needs.accepted_classes),
        "approvals_met": needs.approvals_met,
        "summary": needs.summary(),
    }
    data["timeline"] = [entry.as_dict() for entry in case_timeline(tenant=tenant, case=case)]
    execution = CaseExecution.objects.for_tenant(tenant).filter(case=case).first()
    containment = _containment(execution)
    data["containment"] = s.CaseContainmentOutput(containment).data if containment else None
    revert = _revert(execution)
    data["revert"] = s.CaseRevertOutput(revert).data if revert else None
    delegation = delegation_of_case(case) if case.case_type == "mailbox_access" else None
    data["delegation"] = CaseDelegationOutput(delegation).data if delegation else None
    return data


# --- accounts -------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(operation_id="accounts_list", summary="List and search protected accounts")
)
class AccountListApi(TenantListApiView):
    scopes = {"GET": Scope.ACCOUNTS_READ}
    serializer_class = s.AccountOutput
    filterset_class = AccountFilter

    def list_queryset(self, tenant):
        return account_list(tenant=tenant)


class AccountDetailApi(TenantApiView):
    scopes = {"GET": Scope.ACCOUNTS_READ}

    @extend_schema(
        operation_id="accounts_retrieve",
        summary="One protected account with its contact methods (masked)",
        responses=s.AccountDetailOutput,
    )
    def get(self, request: Request, account_id: int) -> Response:
        account = account_get_visible(tenant=request.tenant, pk=account_id)
        contacts = ContactMethod.objects.for_tenant(request.tenant).filter(
            account=account, replaced_at__isnull=True
        )
        data = s.AccountOutput(account).data
        data["contacts"] = s.ContactOutput(contacts.order_by("id"), many=True).data
        return Response(data)


# --- cases ----------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(operation_id="cases_list", summary="List, filter and search cases")
)
class CaseListApi(TenantListApiView):
    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_DRAFT}
    serializer_class = s.CaseOutput
    filterset_class = CaseFilter

    def required_scope(self, method: str) -> str | None:
        # Opening a case is a draft for an AI assistant and ordinary work for an integration.
        if method == "POST" and Scope.CASES_WRITE in getattr(self.request.auth, "scopes", ()):
            return Scope.CASES_WRITE
        return super().required_scope(method)

    def list_queryset(self, tenant):
        return case_list(tenant=tenant, access=self.request.tenant_access)

    @extend_schema(
        operation_id="cases_create",
        summary="Open a case; the server computes tier, route and the repeat flag",
        request=s.CaseCreateInput,
        responses={201: s.CaseOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        data = s.CaseCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        # Read once, locked, by case_open (a missing or foreign id is a 404 there).
        account = account_reference(tenant=request.tenant, pk=fields.pop("account_id"))
        if "mailbox_id" in fields:  # read in the tenant by case_open: a foreign id is a 404
            mailbox_id = fields.pop("mailbox_id")
            fields["mailbox"] = account_reference(tenant=request.tenant, pk=mailbox_id)
        if "delegation_hours" in fields:
            fields["delegation_seconds"] = fields.pop("delegation_hours") * 3600
        if "regrant_hours" in fields:
            fields["regrant_seconds"] = fields.pop("regrant_hours") * 3600
        case = case_open(actor=request.user, account=account, **fields)
        response = Response(s.CaseOutput(case).data, status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"{case.pk}/")
        return _with_etag(response, case)


class CaseDetailApi(TenantApiView):
    scopes = {"GET": Scope.CASES_READ}

    @extend_schema(
        operation_id="cases_retrieve",
        summary="One case with what it still needs and its timeline",
        responses=s.CaseDetailOutput,
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        return _with_etag(Response(_case_detail(case, request.tenant)), case)


class _CaseTransitionApi(TenantApiView):
    """A POST that changes one case: locks it, honours If-Match, answers with its new ETag."""

    def locked_case(self, request: Request, case_id: int) -> RecoveryCase:
        case = case_get_for_change(tenant=request.tenant, pk=case_id)
        require_if_match(request, case)
        return case

    def answer(self, data: Any, case: RecoveryCase, code: int = status.HTTP_200_OK) -> Response:
        case = case_get_visible(tenant=case.tenant, access=self.request.tenant_access, pk=case.pk)
        return _with_etag(Response(data, status=code), case)


EVIDENCE_ENDPOINT_REMOVED = "evidence.endpoint_removed"
# What a refusal keeps of an old client's body: enough to see what was asserted, no more.
_ASSERTED_FIELDS = {"signal_class": "class", "method": "method", "verified": "verified"}
_ASSERTED_MAX = 64


def _asserted(request: Request) -> dict[str, str]:
    """The class, method and `verified` an old client sent, as short strings (any body)."""
    try:
        body = request.data
    except (ParseError, UnsupportedMediaType):
        return {}
    if not hasattr(body, "get"):
        return {}
    return {
        key: str(body.get(field))[:_ASSERTED_MAX]
        for field, key in _ASSERTED_FIELDS.items()
        if body.get(field) is not None
    }


def _endpoint_removed() -> Response:
    message = _(
        "Evidence can no longer be recorded by request: only a verifier creates it. Use "
        "challenges/ (S2 code) and its verify/, attestations/ (S3), proofing/ (S4 by a "
        "provider) or attended/ (S4 by a trusted referee); record what the caller said "
        "with context/."
    )
    return Response(
        error_body(EVIDENCE_ENDPOINT_REMOVED, str(message)), status=status.HTTP_410_GONE
    )


class CaseEvidenceApi(TenantApiView):
    """The case's evidence rows, each naming the verifier that produced it.

    POST is gone (410 `evidence.endpoint_removed`, whatever the body): no request can mark a
    signal verified. Evidence comes from the verifier endpoints (`challenges/`, `attestations/`,
    `proofing/`, `attended/`); what the caller said goes to `context/`. A refused POST on a case
    the caller can see is recorded on the case's trail (`verification.signal_rejected`,
    reason `asserted_signal`).
    """

    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}
    pagination_class = None  # a case has a handful: one plain array
    filter_backends: list = []
    queryset = Evidence.objects.none()  # tells the schema generator the model

    @extend_schema(
        operation_id="cases_evidence_list",
        summary="The case's evidence and context, oldest first, with the verifier of each",
        responses=s.EvidenceOutput(many=True),
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        rows = Evidence.objects.for_tenant(request.tenant).filter(case=case).order_by("pk")
        return Response(s.EvidenceOutput(rows, many=True).data)

    @extend_schema(
        operation_id="cases_evidence_record",
        summary="Removed: evidence comes from verifiers only (410 for any body)",
        request=None,
        responses={410: GONE_RESPONSE},
        deprecated=True,
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        evidence_refusal_record(
            actor=request.user, case=case, code="asserted_signal", data=_asserted(request)
        )
        return _endpoint_removed()


class CaseContextApi(_CaseTransitionApi):
    """Record a fact the caller gave (a name, a date, a ticket number) as context.

    Context is shown with the case and never counts toward the policy (R-02); secrets in the
    statement are masked (R-49). AI assistants cannot record it.
    """

    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_context_record",
        summary="Keep what the caller said as context (never counted as evidence)",
        request=s.ContextInput,
        responses={201: s.EvidenceOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.ContextInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        row = context_record(
            actor=request.user,
            case=case,
            topic=data.validated_data["topic"],
            statement=data.validated_data["statement"],
        )
        return self.answer(s.EvidenceOutput(row).data, case, status.HTTP_201_CREATED)


class CaseSubmitApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_submit",
        summary="Send the case for approval (refused until the evidence is met)",
        request=None,
        responses=s.CaseOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_submit(actor=request.user, case=self.locked_case(request, case_id))
        return self.answer(s.CaseOutput(case).data, case)


class _CaseEndApi(_CaseTransitionApi):
    """Ends a case with a written reason through `end` (cancel before execution, close after)."""

    scopes = {"POST": Scope.CASES_WRITE}
    end: Callable[..., RecoveryCase]

    def end_case(self, request: Request, case_id: int) -> Response:
        data = s.CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = type(self).end(
            actor=request.user,
            case=self.locked_case(request, case_id),
            reason=data.validated_data["reason"],
        )
        return self.answer(s.CaseOutput(case).data, case)


_END_SCHEMA = {
    "request": s.CancelInput,
    "responses": s.CaseOutput,
    "parameters": [IF_MATCH, IDEMPOTENCY_KEY],
}


class CaseCancelApi(_CaseEndApi):
    end = staticmethod(case_cancel)

    @extend_schema(operation_id="cases_cancel", summary="Cancel an open case", **_END_SCHEMA)
    def post(self, request: Request, case_id: int) -> Response:
        return self.end_case(request, case_id)


class CaseExecuteApi(_CaseTransitionApi):
    """Carry out a ready case through the tenant's connector; the owner gets the artifact.

    Privileged: a person executes with a fresh passkey answer (`step_up_assertion`) to the
    options of `step-up/options/?action=execute`, bound to the case as it stands; a key
    executes T0 cases only and needs `cases:execute_t0`.
    """

    scopes = {"POST": Scope.CASES_EXECUTE_T0}

    def required_scope(self, method: str) -> str | None:
        # A person executes any tier (the service asks T1/T2 for a fresh step-up); a key, T0.
        if method == "POST" and not isinstance(self.request.auth, ApiKey):
            return StaffScope.CASES_EXECUTE
        return super().required_scope(method)

    @extend_schema(
        operation_id="cases_execute",
        summary="Execute a ready case (connector change, artifact to the owner)",
        request=s.ExecuteInput,
        responses=s.CaseOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.ExecuteInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        proof = step_up_presented(
            actor=request.user,
            case=case,
            action=EXECUTE,
            assertion=data.validated_data.get("step_up_assertion", ""),
        )
        case = case_execute(actor=request.user, case=case, step_up=proof)
        return self.answer(s.CaseOutput(case).data, case)


class CaseStepUpOptionsApi(TenantApiView):
    """WebAuthn request options for a person's passkey step-up on one case: the challenge is
    issued for `?action=approve|deny|execute` on the case as it stands (120 s, single use). Answer
    them with `navigator.credentials.get()` and send the PublicKeyCredential as JSON text in
    `step_up_assertion` to approve/, deny/ or execute/ (the action of the same name)."""

    ACTION_SCOPES: ClassVar[dict[str, str]] = {
        APPROVE: StaffScope.CASES_DECIDE,
        DENY: StaffScope.CASES_DECIDE,
        EXECUTE: StaffScope.CASES_EXECUTE,
    }

    def required_scope(self, method: str) -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        return self.ACTION_SCOPES.get(self.request.query_params.get("action", ""))

    @extend_schema(
        operation_id="cases_step_up_options",
        summary="Passkey step-up options bound to the case and the action (approve, deny, execute)",
        parameters=[
            OpenApiParameter(
                "action", OpenApiTypes.STR, enum=[APPROVE, DENY, EXECUTE], required=True
            )
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        options = step_up_options(
            actor=request.user, case=case, action=request.query_params.get("action", "")
        )
        return Response(json.loads(options), headers={"Cache-Control": "no-store"})


class CaseManualStepApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_manual_step",
        summary="Record the exact path followed in another console (manual connector)",
        request=s.ManualStepInput,
        responses=s.CaseOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.ManualStepInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        case_manual_step_record(
            actor=request.user, case=case, path_used=data.validated_data["path"]
        )
        return self.answer(s.CaseOutput(case).data, case)


class StepRecordApi(_CaseTransitionApi):
    """Record that a person did a pending tracked step (`recovery.cases.steps`) in the
    directory's own console: `step` in the body is the id of one of the case's pending steps.

    People only, with a fresh passkey answer (`step_up_assertion`) to the options of
    `step-up/options/?action=execute`, bound to the case as it stands: the execution's own
    step-up, spent on this record. Refusals: no answer (`stepup.required`; a code is no
    answer), one made for another case or action (`stepup.challenge_unknown`,
    `stepup.wrong_binding`), a case changed since (`stepup.snapshot_changed`), a case in
    another state (`case.wrong_state`), an id with nothing pending (`<kind>.step_unknown`).
    Each subclass names its service and what it answers.
    """

    scopes = {"POST": StaffScope.CASES_EXECUTE}

    def recorded(self, *, actor: Any, case: RecoveryCase, step: str, step_up: Any) -> Any:
        raise NotImplementedError

    def output(self, row: Any) -> dict[str, Any]:
        raise NotImplementedError

    def post(self, request: Request, case_id: int) -> Response:
        data = s.StepRecordInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        proof = step_up_presented(
            actor=request.user,
            case=case,
            action=EXECUTE,
            assertion=data.validated_data.get("step_up_assertion", ""),
        )
        row = self.recorded(
            actor=request.user, case=case, step=data.validated_data["step"], step_up=proof
        )
        return self.answer(self.output(row), case)


@extend_schema_view(
    post=extend_schema(
        operation_id="cases_containment_record",
        summary="Record a pending containment step as done by hand (staff, passkey step-up)",
        description="A containment step (R-34) or a role or window step left to a person; "
        "once nothing is pending, the case can be closed.",
        request=s.StepRecordInput,
        responses=s.CaseContainmentOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
)
class CaseContainmentRecordApi(StepRecordApi):
    recorded = staticmethod(containment_step_record)

    def output(self, row: Any) -> dict[str, Any]:
        return s.CaseContainmentOutput(_containment(row)).data


@extend_schema_view(
    post=extend_schema(
        operation_id="cases_delegation_record",
        summary="Record a pending mailbox delegation step as done by hand (staff, passkey step-up)",
        description="`grant` or `remove` of a mailbox access case's delegation, made in the "
        "mail system's own console where the connector cannot (e.g. Exchange Online's "
        "`Add-MailboxPermission`); a grant after the delegation's expiry is refused "
        "(`delegation.expired`).",
        request=s.StepRecordInput,
        responses=CaseDelegationOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
)
class CaseDelegationRecordApi(StepRecordApi):
    recorded = staticmethod(delegation_step_record)

    def output(self, row: Any) -> dict[str, Any]:
        return CaseDelegationOutput(row).data


class CaseCloseApi(_CaseEndApi):
    end = staticmethod(case_close)

    @extend_schema(
        operation_id="cases_close",
        summary="Close an executed case (revokes its active artifacts)",
        **_END_SCHEMA,
    )
    def post(self, request: Request, case_id: int) -> Response:
        return self.end_case(request, case_id)


class _CaseDecisionApi(_CaseTransitionApi):
    """Approve or deny: people only, each with a fresh step-up in the request (a passkey
    answer bound to the case; an authenticator code where the policy accepts one)."""

    scopes = {"POST": StaffScope.CASES_DECIDE}
    decision: str

    def decide(self, request: Request, case_id: int) -> Response:
        data = s.DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        proof = step_up_presented(
            actor=request.user,
            case=case,
            action=APPROVE if self.decision == Decision.APPROVED else DENY,
            assertion=data.validated_data.get("step_up_assertion", ""),
            otp=data.validated_data.get("otp", ""),
        )
        approval = approval_decide(
            actor=request.user,
            case=case,
            decision=self.decision,
            reason=data.validated_data["reason"],
            step_up=proof,
        )
        return self.answer(s.ApprovalOutput(approval).data, case, status.HTTP_201_CREATED)


_DECISION_SCHEMA = {
    "request": s.DecisionInput,
    "responses": {201: s.ApprovalOutput},
    "parameters": [IF_MATCH, IDEMPOTENCY_KEY],
}


class CaseApproveApi(_CaseDecisionApi):
    decision = Decision.APPROVED

    @extend_schema(
        operation_id="cases_approve", summary="Approve a case (staff, step-up)", **_DECISION_SCHEMA
    )
    def post(self, request: Request, case_id: int) -> Response:
        return self.decide(request, case_id)


class CaseDenyApi(_CaseDecisionApi):
    decision = Decision.DENIED

    @extend_schema(
        operation_id="cases_deny", summary="Deny a case (staff, step-up)", **_DECISION_SCHEMA
    )
    def post(self, request: Request, case_id: int) -> Response:
        return self.decide(request, case_id)


class CaseNoteApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_notes_create",
        summary="Add a note (secrets are masked before storage)",
        request=s.NoteInput,
        responses={201: s.NoteOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        note = note_add(actor=request.user, case=case, text=data.validated_data["text"])
        return self.answer(s.NoteOutput(note).data, case, status.HTTP_201_CREATED)


class CaseSummaryApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_DRAFT}

    @extend_schema(
        operation_id="cases_summaries_create",
        summary="Attach an AI assistant's advisory summary, with its provenance (R-65, R-67)",
        request=s.SummaryInput,
        responses={201: s.NoteOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.SummaryInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        case = self.locked_case(request, case_id)
        note = case_summary_attach(
            actor=request.user,
            case=case,
            text=fields["text"],
            provenance=ModelProvenance(
                model_id=fields["model_id"],
                model_version=fields["model_version"],
                prompt_sha256=fields["prompt_sha256"],
                retrieved_document_ids=tuple(fields["retrieved_document_ids"]),
            ),
        )
        return self.answer(s.NoteOutput(note).data, case, status.HTTP_201_CREATED)


# --- attachments ----------------------------------------------------------------------------


class CaseAttachmentListApi(_CaseTransitionApi):
    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}
    parser_classes = [MultiPartParser]
    pagination_class = None  # a case has a handful of files: one plain array
    filter_backends: list = []
    queryset = EvidenceAttachment.objects.none()  # tells the schema generator the model

    @extend_schema(
        operation_id="cases_attachments_list",
        summary="The case's attachments (metadata)",
        responses=s.AttachmentOutput(many=True),
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        attachments = case.attachments.order_by("id")
        return Response(s.AttachmentOutput(attachments, many=True).data)

    @extend_schema(
        operation_id="cases_attachments_upload",
        summary="Upload a file to a case (multipart; type sniffed from the bytes)",
        request={"multipart/form-data": s.AttachmentInput},
        responses={201: s.AttachmentOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.AttachmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        case = self.locked_case(request, case_id)
        evidence_id = data.validated_data.get("evidence_id")
        evidence = case.evidence.filter(pk=evidence_id).first() if evidence_id else None
        attachment = attachment_add(
            actor=request.user,
            case=case,
            name=upload.name,
            content=upload.read(),
            evidence=evidence,
        )
        return self.answer(s.AttachmentOutput(attachment).data, case, status.HTTP_201_CREATED)


class CaseAttachmentDownloadApi(TenantApiView):
    scopes = {"GET": Scope.CASES_READ}

    @extend_schema(
        operation_id="cases_attachments_download",
        summary="Download an attachment (permission-checked, integrity-checked, audited)",
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, case_id: int, attachment_id: int) -> FileResponse:
        case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=case_id)
        opened = attachment_open(actor=request.user, case=case, attachment_id=attachment_id)
        return FileResponse(
            iter([opened.content]),
            as_attachment=True,
            filename=opened.attachment.original_name,
            content_type="application/octet-stream",
        )


# --- account sync, approvals, exceptions ----------------------------------------------------


class AccountSyncApi(TenantApiView):
    scopes = {"POST": Scope.ACCOUNTS_SYNC}

    @extend_schema(
        operation_id="accounts_sync",
        summary="Upsert accounts by external id from a system of record (all or nothing)",
        request=s.AccountSyncInput,
        responses=s.AccountSyncOutput,
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        data = s.AccountSyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        records, errors = parse_account_items(data.validated_data["accounts"])
        if errors:
            raise InvalidInput(
                f"{len(errors)} problem(s) in the accounts; nothing was applied.",
                code="accounts.invalid",
                field_errors={
                    ".".join(p for p in ("accounts", str(e.line - 1), e.field) if p): [e.message]
                    for e in errors
                },
            )
        if request.user.is_human:  # a key needed accounts:sync to get here
            enforce(can_administer_tenant(request.tenant_access))
        summary = accounts_import(
            actor=Actor.for_user(request.user, organisation=request.tenant.name),
            tenant=request.tenant,
            records=records,
            source=data.validated_data["source"],
        )
        return Response(s.AccountSyncOutput(summary).data)


@extend_schema_view(
    get=extend_schema(operation_id="approvals_list", summary="Approval decisions, newest first")
)
class ApprovalListApi(TenantListApiView):
    scopes = {"GET": Scope.CASES_READ}
    serializer_class = s.ApprovalOutput
    filterset_class = ApprovalFilter

    def list_queryset(self, tenant):
        return approval_list(tenant=tenant, access=self.request.tenant_access)


@extend_schema_view(
    get=extend_schema(
        operation_id="exceptions_list", summary="Exception requests (R-24), any status"
    )
)
class ExceptionListApi(TenantListApiView):
    scopes = {"GET": Scope.CASES_READ}
    serializer_class = s.CaseOutput

    def list_queryset(self, tenant):
        return exception_review_list(tenant=tenant, access=self.request.tenant_access)


# --- policy ---------------------------------------------------------------------------------


class PolicyCurrentApi(TenantApiView):
    scopes = {"GET": Scope.POLICY_READ}

    @extend_schema(
        operation_id="policy_current",
        summary="The policy cases are decided under now",
        responses=s.PolicyCurrentOutput,
    )
    def get(self, request: Request) -> Response:
        policy = policy_active(request.tenant)
        return Response({"number": policy.number, "sha256": policy.sha256, "source": policy.source})


@extend_schema_view(
    get=extend_schema(operation_id="policy_versions_list", summary="Every stored policy version")
)
class PolicyVersionListApi(TenantListApiView):
    scopes = {"GET": Scope.POLICY_READ, "POST": StaffScope.SETTINGS_WRITE}
    serializer_class = s.PolicyVersionOutput

    def list_queryset(self, tenant):
        return policy_version_list(tenant=tenant).select_related("created_by")

    @extend_schema(
        operation_id="policy_versions_create",
        summary="Store a valid document as a draft (tenant admins)",
        request=s.PolicyTextInput,
        responses={201: s.PolicyVersionDetailOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        data = s.PolicyTextInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = policy_draft_create(
            actor=request.user, tenant=request.tenant, text=data.validated_data["text"]
        )
        return Response(s.PolicyVersionDetailOutput(version).data, status=status.HTTP_201_CREATED)


class PolicyVersionDetailApi(TenantApiView):
    scopes = {"GET": Scope.POLICY_READ}

    @extend_schema(operation_id="policy_versions_retrieve", responses=s.PolicyVersionDetailOutput)
    def get(self, request: Request, version_id: int) -> Response:
        version = policy_version_get_visible(tenant=request.tenant, pk=version_id)
        return Response(s.PolicyVersionDetailOutput(version).data)


class PolicyValidateApi(TenantApiView):
    scopes = {"POST": Scope.POLICY_READ}

    @extend_schema(
        operation_id="policy_validate",
        summary="Check a document against the schema and the platform floors (stores nothing)",
        request=s.PolicyTextInput,
        responses=s.PolicyValidOutput,
    )
    def post(self, request: Request) -> Response:
        data = s.PolicyTextInput(data=request.data)
        data.is_valid(raise_exception=True)
        text = data.validated_data["text"]
        validate(text)
        return Response({"valid": True, "sha256": source_sha256(text)})


class PolicySimulateApi(TenantApiView):
    scopes = {"POST": Scope.POLICY_READ}

    @extend_schema(
        operation_id="policy_simulate",
        summary="Replay the last N days of cases under a draft (stores nothing)",
        request=s.PolicySimulateInput,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request: Request) -> Response:
        data = s.PolicySimulateInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = policy_simulate(
            tenant=request.tenant,
            draft_text=data.validated_data["text"],
            since=timedelta(days=data.validated_data["days"]),
        )
        return Response(report.as_dict())


class PolicyActivationRequestApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="policy_activation_request",
        summary="Ask a second tenant admin to activate a draft",
        request=None,
        responses=s.PolicyVersionOutput,
    )
    def post(self, request: Request, version_id: int) -> Response:
        version = policy_version_get_visible(tenant=request.tenant, pk=version_id)
        version = policy_activation_request(actor=request.user, version=version)
        return Response(s.PolicyVersionOutput(version).data)


class PolicyActivationApproveApi(TenantApiView):
    scopes = {"POST": StaffScope.SETTINGS_WRITE}

    @extend_schema(
        operation_id="policy_activation_approve",
        summary="Activate a requested draft (a second tenant admin, with step-up)",
        request=StepUpInput,
        responses=s.PolicyVersionOutput,
    )
    def post(self, request: Request, version_id: int) -> Response:
        data = StepUpInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = policy_version_get_visible(tenant=request.tenant, pk=version_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
        version = policy_activation_approve(actor=request.user, version=version, step_up=proof)
        return Response(s.PolicyVersionOutput(version).data)


# --- taking a case an AI assistant drafted (R-66) -------------------------------------------


class CaseTakeApi(_CaseTransitionApi):
    """A person takes an AI-drafted case: its owner notice and challenges may start."""

    scopes = {"POST": StaffScope.CASES_TAKE}

    @extend_schema(
        operation_id="cases_take",
        summary="Take a case an AI assistant drafted (a person, never a key)",
        request=None,
        responses=s.CaseOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        case = case_take(actor=request.user, case=self.locked_case(request, case_id))
        return self.answer(s.CaseOutput(case).data, case)

"""Recovery API views: accounts, cases and their transitions, attachments, approvals.

Thin by design: parse with a serializer, call one selector or service, shape the output.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import STAFF_ONLY, TenantApiView
from api.conditional import etag_of, require_if_match
from tenants.choices import Scope
from tenants.stepup import step_up_verify

from ..cases.choices import Decision
from ..cases.models import EvidenceAttachment, RecoveryCase
from ..cases.selectors import case_get_for_change, case_get_visible, case_list, case_timeline
from ..cases.services import (
    approval_decide,
    case_cancel,
    case_needs,
    case_open,
    case_submit,
    evidence_record,
)
from ..cases.services_evidence import (
    ModelProvenance,
    attachment_add,
    attachment_open,
    case_summary_attach,
    note_add,
)
from ..models import ContactMethod
from ..selectors import account_get_visible, account_list
from . import serializers as s
from .filters import AccountFilter, CaseFilter

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The case's ETag as you last read it; 412 if it has changed since.",
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
    return data


# --- accounts -------------------------------------------------------------------------------


class AccountListApi(TenantApiView):
    scopes = {"GET": Scope.ACCOUNTS_READ}
    serializer_class = s.AccountOutput
    filterset_class = AccountFilter

    def get_queryset(self):
        return account_list(tenant=self.request.tenant)

    @extend_schema(operation_id="accounts_list", summary="List and search protected accounts")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.AccountOutput(page, many=True).data)


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


class CaseListApi(TenantApiView):
    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_DRAFT}
    serializer_class = s.CaseOutput
    filterset_class = CaseFilter

    def required_scope(self, method: str) -> str | None:
        # Opening a case is a draft for an AI assistant and ordinary work for an integration.
        if method == "POST" and Scope.CASES_WRITE in getattr(self.request.auth, "scopes", ()):
            return Scope.CASES_WRITE
        return super().required_scope(method)

    def get_queryset(self):
        return case_list(tenant=self.request.tenant)

    @extend_schema(operation_id="cases_list", summary="List, filter and search cases")
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.CaseOutput(page, many=True).data)

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
        account = account_get_visible(tenant=request.tenant, pk=fields.pop("account_id"))
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
        case = case_get_visible(tenant=request.tenant, pk=case_id)
        return _with_etag(Response(_case_detail(case, request.tenant)), case)


class _CaseTransitionApi(TenantApiView):
    """A POST that changes one case: locks it, honours If-Match, answers with its new ETag."""

    def locked_case(self, request: Request, case_id: int) -> RecoveryCase:
        case = case_get_for_change(tenant=request.tenant, pk=case_id)
        require_if_match(request, case)
        return case

    def answer(self, data: Any, case: RecoveryCase, code: int = status.HTTP_200_OK) -> Response:
        case = case_get_visible(tenant=case.tenant, pk=case.pk)
        return _with_etag(Response(data, status=code), case)


class CaseEvidenceApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_evidence_record",
        summary="Record one verification signal; the server decides whether it counts",
        request=s.EvidenceInput,
        responses={201: s.EvidenceOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.EvidenceInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        case = self.locked_case(request, case_id)
        contact_id = fields.pop("contact_method_id", None)
        contact = (
            ContactMethod.objects.for_tenant(request.tenant).filter(pk=contact_id).first()
            if contact_id
            else None
        )
        evidence = evidence_record(actor=request.user, case=case, contact_method=contact, **fields)
        return self.answer(s.EvidenceOutput(evidence).data, case, status.HTTP_201_CREATED)


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


class CaseCancelApi(_CaseTransitionApi):
    scopes = {"POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_cancel",
        summary="Cancel an open case",
        request=s.CancelInput,
        responses=s.CaseOutput,
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request: Request, case_id: int) -> Response:
        data = s.CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = case_cancel(
            actor=request.user,
            case=self.locked_case(request, case_id),
            reason=data.validated_data["reason"],
        )
        return self.answer(s.CaseOutput(case).data, case)


class _CaseDecisionApi(_CaseTransitionApi):
    """Approve or deny: people only, each with a fresh authenticator code in the request."""

    scopes = {"POST": STAFF_ONLY}
    decision: str

    def decide(self, request: Request, case_id: int) -> Response:
        data = s.DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = self.locked_case(request, case_id)
        proof = step_up_verify(user=request.user, token=data.validated_data["otp"])
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
    queryset = EvidenceAttachment.objects.none()  # tells the schema generator the model

    @extend_schema(
        operation_id="cases_attachments_list",
        summary="The case's attachments (metadata)",
        responses=s.AttachmentOutput(many=True),
    )
    def get(self, request: Request, case_id: int) -> Response:
        case = case_get_visible(tenant=request.tenant, pk=case_id)
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
        case = case_get_visible(tenant=request.tenant, pk=case_id)
        opened = attachment_open(actor=request.user, case=case, attachment_id=attachment_id)
        return FileResponse(
            iter([opened.content]),
            as_attachment=True,
            filename=opened.attachment.original_name,
            content_type="application/octet-stream",
        )

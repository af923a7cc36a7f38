"""Attachments and notes on a recovery case.

Like every case service: lock the case, check the actor, write the row and its audit event in
one transaction, fail closed. Uploads are checked completely before a byte is written, and a
file whose database part fails is removed again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.services import record
from tenants.access import access_in
from tenants.choices import PrincipalKind
from tenants.exceptions import CrossTenantNotFound, InvalidInput, PolicyDenied
from tenants.models import User

from ..choices import CaseStatus
from ..exceptions import AttachmentTampered
from ..masking import mask_secrets
from ..models import CaseNote, Evidence, EvidenceAttachment, RecoveryCase
from ..policies import can_read_case_evidence
from ..storage import evidence_store
from ..uploads import check_upload
from .base import audit_actor_of, case_locked, work_access

MAX_NOTE_LENGTH = 10_000


@dataclass(frozen=True)
class OpenedAttachment:
    """An attachment whose bytes were just read and verified against its recorded sha256."""

    attachment: EvidenceAttachment
    content: bytes


def attachment_add(
    *,
    actor: User,
    case: RecoveryCase,
    name: str,
    content: bytes,
    evidence: Evidence | None = None,
) -> EvidenceAttachment:
    """Attach a file to a case that is still collecting evidence.

    Refused with InvalidInput before anything is stored: a bad name, an empty or too large
    file, a type outside the allow-list (sniffed from the bytes) or a name whose extension
    disagrees with it (codes `evidence.attachment_*`); a case past evidence collection
    (`evidence.case_not_collecting`: a file added after submission would change what the
    approvers decided on); evidence of another case. Who may not work the case gets
    PolicyDenied. The file is written under a random name; if the database part then fails,
    the file is deleted again.
    """
    content = bytes(content)
    checked = check_upload(name, content)
    store = evidence_store()
    tenant_id = case.tenant_id
    stored_name: str | None = None
    try:
        with transaction.atomic():
            case = case_locked(case)
            access = work_access(actor, case)
            if case.status != CaseStatus.COLLECTING_EVIDENCE:
                raise InvalidInput(
                    f"The case is {case.get_status_display().lower()}; files can be attached "
                    "only while evidence is being collected, so that nothing changes what the "
                    "approvers decide on.",
                    code="evidence.case_not_collecting",
                )
            if (
                evidence is not None
                and not Evidence.objects.for_tenant(case.tenant)
                .filter(pk=evidence.pk, case=case)
                .exists()
            ):
                raise InvalidInput(
                    "That evidence belongs to another case.",
                    code="evidence.attachment_evidence_not_on_case",
                )
            stored_name = store.write(tenant_id, content)
            attachment = EvidenceAttachment.objects.create(
                tenant=case.tenant,
                case=case,
                evidence=evidence,
                original_name=checked.name,
                stored_name=stored_name,
                content_type=checked.content_type,
                size=checked.size,
                sha256=checked.sha256,
                uploaded_by=actor,
            )
            case.revision += 1
            case.save(update_fields=["revision", "updated_at"])
            record(
                action="evidence.attachment_added",
                actor=audit_actor_of(actor, access, case.tenant),
                tenant=case.tenant,
                target=case,
                data={
                    "attachment": attachment.pk,
                    "evidence": evidence.pk if evidence is not None else None,
                    "sha256": checked.sha256,
                    "size": checked.size,
                    "content_type": checked.content_type,
                },
            )
    except BaseException:
        if stored_name is not None:
            store.delete(tenant_id, stored_name)
        raise
    return attachment


def _attachment_of(case: RecoveryCase, attachment_id: object) -> EvidenceAttachment:
    """The case's attachment, or the same 404 for a missing one and another tenant's."""
    try:
        pk = int(attachment_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise CrossTenantNotFound(EvidenceAttachment._meta.label, attachment_id) from None
    attachment = EvidenceAttachment.objects.for_tenant(case.tenant).filter(pk=pk, case=case).first()
    if attachment is None:
        raise CrossTenantNotFound(EvidenceAttachment._meta.label, attachment_id)
    return attachment


def attachment_open(*, actor: User, case: RecoveryCase, attachment_id: object) -> OpenedAttachment:
    """Read one attachment of a case after a permission and an integrity check; audited.

    An actor with no access to the case's tenant, or an id that is not an attachment of this
    case (another tenant's included), gets CrossTenantNotFound (a 404). An actor of the tenant
    who may not read the case's evidence gets PolicyDenied, recorded as `policy.violation`.
    A file that no longer matches its recorded sha256, or is gone, is not served:
    AttachmentTampered, recorded as `evidence.attachment_integrity_failed`. Every read that
    returns bytes is recorded as `evidence.attachment_downloaded` before they are returned.
    """
    access = access_in(actor, case.tenant)
    if access is None:
        raise CrossTenantNotFound(EvidenceAttachment._meta.label, attachment_id)
    refusal: PolicyDenied | AttachmentTampered | None = None
    with transaction.atomic():
        case = RecoveryCase.objects.for_tenant(case.tenant).get(pk=case.pk)
        audit_actor = audit_actor_of(actor, access, case.tenant)
        decision = can_read_case_evidence(
            access, route=case.route, tier=case.tier, case_type=case.case_type
        )
        if not decision:
            # Committed with this block (the raise comes after it): refusals stay on record.
            record(
                action="policy.violation",
                actor=audit_actor,
                tenant=case.tenant,
                target=case,
                data={"code": decision.code, "attachment": str(attachment_id)[:32]},
            )
            refusal = PolicyDenied(decision.detail, code=decision.code)
        else:
            attachment = _attachment_of(case, attachment_id)
            try:
                content = evidence_store().read(case.tenant_id, attachment.stored_name)
                found = hashlib.sha256(content).hexdigest()
            except FileNotFoundError:
                found = "missing"
            evidence_data = {"attachment": attachment.pk, "sha256": attachment.sha256}
            if found != attachment.sha256:
                record(
                    action="evidence.attachment_integrity_failed",
                    actor=audit_actor,
                    tenant=case.tenant,
                    target=case,
                    data={**evidence_data, "found": found},
                )
                refusal = AttachmentTampered(
                    "This file no longer matches what was uploaded and will not be served; "
                    "the security team has been alerted through the audit trail."
                )
            else:
                record(
                    action="evidence.attachment_downloaded",
                    actor=audit_actor,
                    tenant=case.tenant,
                    target=case,
                    data={**evidence_data, "size": attachment.size},
                )
    if refusal is not None:
        raise refusal
    return OpenedAttachment(attachment=attachment, content=content)


def _checked_note_text(text: str) -> tuple[str, int]:
    """The text with secrets masked, and how many; InvalidInput for an unusable note."""
    if not text.strip():
        raise InvalidInput(
            "Write something.", code="note.empty", field_errors={"text": ["Required."]}
        )
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            f"A note holds at most {MAX_NOTE_LENGTH} characters.",
            code="note.too_long",
            field_errors={"text": [f"At most {MAX_NOTE_LENGTH} characters."]},
        )
    if "\x00" in text:
        raise InvalidInput(
            "The note contains a NUL character.",
            code="note.invalid_character",
            field_errors={"text": ["Remove the NUL character."]},
        )
    return mask_secrets(text)


def _note_create(
    actor: User, case: RecoveryCase, masked: str, count: int, advisory: bool = False
) -> tuple[RecoveryCase, CaseNote, Any]:
    """Lock the case, check the actor may work it, store the note; (case, note, access)."""
    case = case_locked(case)
    access = work_access(actor, case)
    note = CaseNote.objects.create(
        tenant=case.tenant,
        case=case,
        author=actor,
        text=masked,
        secrets_masked=count,
        flagged=count > 0,
        advisory=advisory,
    )
    case.revision += 1
    case.save(update_fields=["revision", "updated_at"])
    return case, note, access


def note_add(*, actor: User, case: RecoveryCase, text: str) -> CaseNote:
    """Add a note to a case, in any status, by someone who may work it.

    Secrets in the text (labelled values such as `password: …`, and token-like strings) are
    replaced by `[masked secret]` before storage, the note is flagged and `policy.violation`
    (`secret_in_notes`) is recorded (R-49). The text is
    otherwise stored as written; templates escape it. The audit event carries the note's id,
    length and the number of masked items, never the text.
    """
    masked, count = _checked_note_text(text)
    with transaction.atomic():
        case, note, access = _note_create(actor, case, masked, count)
        who = audit_actor_of(actor, access, case.tenant)
        record(
            action="case.note_added",
            actor=who,
            tenant=case.tenant,
            target=case,
            data={
                "note": note.pk,
                "length": len(masked),
                "secrets_masked": count,
                "flagged": count > 0,
            },
        )
        if count:
            record(
                action="policy.violation",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"code": "secret_in_notes", "note": note.pk, "masked": count},
            )
    return note


@dataclass(frozen=True)
class ModelProvenance:
    """Where an AI contribution came from (R-67): enough to reproduce and to question it."""

    model_id: str
    model_version: str
    prompt_sha256: str
    retrieved_document_ids: tuple[str, ...] = ()


def case_summary_attach(
    *, actor: User, case: RecoveryCase, text: str, provenance: ModelProvenance
) -> CaseNote:
    """An AI assistant's summary on a case: stored as an advisory note, never a decision.

    Only AI-assistant principals attach summaries (people write notes). The audit event
    carries the model, the prompt hash, the retrieved documents and the output hash (R-67).
    """
    if actor.kind != PrincipalKind.AI_ASSISTANT:
        raise PolicyDenied(
            "Summaries come from an AI assistant; people add notes instead.",
            code="summary.ai_only",
        )
    masked, count = _checked_note_text(text)
    with transaction.atomic():
        case, note, access = _note_create(actor, case, masked, count, advisory=True)
        record(
            action="ai.summary_attached",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={
                "note": note.pk,
                "model_id": provenance.model_id,
                "model_version": provenance.model_version,
                "prompt_sha256": provenance.prompt_sha256,
                "retrieved_document_ids": list(provenance.retrieved_document_ids),
                "output_sha256": hashlib.sha256(masked.encode()).hexdigest(),
                "secrets_masked": count,
            },
        )
    return note

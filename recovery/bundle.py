"""A case's evidence bundle (issue 15, R-43): one signed zip an auditor takes away and checks
with the standalone verifier (`verifier/vouchsafe_verify.py`), no database needed.

Beyond the chain proof (`audit.bundle`: events, chain rows, checkpoint, keys, manifest) a case
adds its evidence records with their digests, its attachments by sha256, its approvals and
execution with the stored step-up assertions and each passkey's public key (SPKI PEM, so the
verifier needs only `cryptography`), and the text of the policy version(s) that decided it.
docs/audit.md ("Evidence bundles") says what the verifier checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.db.models import Max, Min, Q
from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.decoded_public_key_to_cryptography import (
    decoded_public_key_to_cryptography,
)

from audit.bundle import (
    BundleUnavailable,
    BundleWriter,
    SubjectRule,
    chain_proof,
    checkpoint_covering,
)
from audit.chain import chain_key
from audit.checkpoints import Checkpoint
from audit.models import AuditEvent
from audit.selectors import hashed_time
from audit.services import trail_read_record
from tenants.access import TenantAccess
from tenants.models import StaffPasskey, Tenant, User
from tenants.policies import can_read_audit, enforce
from tenants.rls import tenant_scope

from .cases.models import Approval, CaseExecution, Evidence, EvidenceAttachment, RecoveryCase
from .cases.selectors import case_get_visible
from .cases.storage import evidence_store
from .policy.choices import PolicyStatus
from .policy.models import PolicyVersion
from .policy.rules import DEFAULT_POLICY_FILE
from .policy.validation import source_sha256

DOWNLOAD_ACTION = "audit.bundle_downloaded"
CASE_DATA_KEY = "case"  # an event whose data names the case under this key is the case's too


@dataclass(frozen=True)
class CaseBundle:
    """A built bundle: the zip, its file name, and what the download event records."""

    content: bytes
    filename: str
    manifest_sha256: str
    checkpoint_seq: int
    events: int


def case_rule(case: RecoveryCase) -> SubjectRule:
    return SubjectRule(
        target_type=RecoveryCase._meta.label, target_id=str(case.pk), data_key=CASE_DATA_KEY
    )


def _case_event_span(case: RecoveryCase) -> tuple[int, int]:
    """The seqs of the case's first and last events (the SQL form of `case_rule`)."""
    events = AuditEvent.objects.filter(tenant_id=case.tenant_id).filter(
        Q(target_type=RecoveryCase._meta.label, target_id=str(case.pk))
        | Q(**{f"data__{CASE_DATA_KEY}": case.pk})
        | Q(**{f"data__{CASE_DATA_KEY}": str(case.pk)})
    )
    span = events.aggregate(first=Min("seq"), last=Max("seq"))
    if span["first"] is None:
        raise BundleUnavailable("bundle.no_events", "This case has no events in the trail.")
    return span["first"], span["last"]


def _stamp(moment: Any) -> str | None:
    return hashed_time(moment) if moment is not None else None


# --- evidence and attachments ----------------------------------------------------------------


def _evidence(case: RecoveryCase) -> list[dict[str, Any]]:
    rows = Evidence.objects.for_tenant(case.tenant).filter(case=case).order_by("pk")
    return [
        {
            "id": row.pk,
            "signal_class": row.signal_class,
            "method": row.method,
            "result": row.result,
            "reason_code": row.reason_code,
            "verifier": row.verifier,
            "verifier_ref": row.verifier_ref,
            "collected_at": _stamp(row.collected_at),
            "digest": row.digest,
        }
        for row in rows
    ]


def _attachments(case: RecoveryCase, writer: BundleWriter) -> list[dict[str, Any]]:
    """Each attachment's record, and its stored bytes as `attachments/<recorded sha256>`
    (as stored: a file altered on disk then fails the verifier's check)."""
    listed = []
    store = evidence_store()
    rows = EvidenceAttachment.objects.for_tenant(case.tenant).filter(case=case).order_by("pk")
    for row in rows:
        name = f"attachments/{row.sha256}"
        try:
            content = store.read(row.tenant_id, row.stored_name)
        except FileNotFoundError:
            name = ""  # listed without a file: the verifier reports it missing
        else:
            if name not in writer.files:
                writer.add(name, content)
        listed.append(
            {
                "id": row.pk,
                "evidence": row.evidence_id,
                "original_name": row.original_name,
                "content_type": row.content_type,
                "size": row.size,
                "sha256": row.sha256,
                "uploaded_at": _stamp(row.uploaded_at),
                "file": name,
            }
        )
    return listed


# --- approvals, execution and their passkeys -------------------------------------------------


def passkey_public_key(passkey: StaffPasskey) -> dict[str, Any]:
    """The passkey's COSE public key as SPKI PEM, with its COSE algorithm number."""
    decoded = decode_credential_public_key(bytes(passkey.public_key))
    key = decoded_public_key_to_cryptography(decoded)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "credential_id": passkey.credential_id,
        "alg": int(decoded.alg),
        "public_key_pem": pem.decode(),
    }


def _passkey_ids(step_ups: list[Any]) -> set[int]:
    ids = set()
    for step_up in step_ups:
        assertion = (step_up or {}).get("assertion") if isinstance(step_up, dict) else None
        if isinstance(assertion, dict) and isinstance(assertion.get("passkey"), int):
            ids.add(assertion["passkey"])
    return ids


def _approvals(case: RecoveryCase) -> dict[str, Any]:
    approvals = Approval.objects.for_tenant(case.tenant).filter(case=case).order_by("pk")
    listed = [
        {
            "id": row.pk,
            "decision": row.decision,
            "approver": row.approver.get_username(),
            "roles": row.roles,
            "reason": row.reason,
            "snapshot_hash": row.snapshot_hash,
            "created_at": _stamp(row.created_at),
            "expires_at": _stamp(row.expires_at),
            "invalidated_at": _stamp(row.invalidated_at),
            "step_up": row.step_up,
        }
        for row in approvals.select_related("approver")
    ]
    execution = (
        CaseExecution.objects.for_tenant(case.tenant)
        .filter(case=case)
        .select_related("executed_by")
        .first()
    )
    executed = None
    if execution is not None:
        executed = {
            "id": execution.pk,
            "connector": execution.connector,
            "executed_by": execution.executed_by.get_username(),
            "executed_at": _stamp(execution.executed_at),
            "step_up": execution.step_up,
        }
    step_ups = [row["step_up"] for row in listed] + [executed and executed["step_up"]]
    passkeys = StaffPasskey.objects.filter(pk__in=_passkey_ids(step_ups)).order_by("pk")
    return {
        "case": case.pk,
        "approvals": listed,
        "execution": executed,
        "credentials": {str(p.pk): passkey_public_key(p) for p in passkeys},
    }


# --- the policy that decided the case --------------------------------------------------------


def _policy_numbers(case: RecoveryCase, events: list[dict[str, Any]]) -> list[int]:
    """The policy versions the case was decided under: opened under, and every version its
    events name (`policy_version`, `policy_versions`)."""
    numbers = {case.policy_version}
    for event in events:
        data = event["data"] if isinstance(event["data"], dict) else {}
        named = data.get("policy_versions") or []
        if isinstance(data.get("policy_version"), int):
            named = [*named, data["policy_version"]]
        numbers.update(n for n in named if isinstance(n, int))
    return sorted(numbers)


def _policy_source(number: int, activated: dict[int, PolicyVersion]) -> tuple[str, str, str]:
    """A deciding version's text, where it comes from and its format (0: the platform's)."""
    if number == 0:
        return DEFAULT_POLICY_FILE.read_text(encoding="utf-8"), "platform", "yaml"
    version = activated.get(number)
    if version is None:
        raise BundleUnavailable(
            "bundle.policy_missing", f"Policy version {number} of this case cannot be found."
        )
    return version.source, "tenant", version.format


def _policy(case: RecoveryCase, events: list[dict[str, Any]], writer: BundleWriter) -> None:
    """`policy/<number>.txt` per deciding version, and `policy.json` listing them."""
    numbers = _policy_numbers(case, events)
    activated = {
        v.number: v
        for v in PolicyVersion.objects.for_tenant(case.tenant).filter(
            number__in=numbers, status__in=(PolicyStatus.ACTIVE, PolicyStatus.SUPERSEDED)
        )
    }
    versions = []
    for number in numbers:
        source, origin, form = _policy_source(number, activated)
        name = f"policy/{number}.txt"
        writer.add(name, source.encode("utf-8"))
        versions.append(
            {
                "number": number,
                "origin": origin,
                "format": form,
                "sha256": source_sha256(source),
                "file": name,
            }
        )
    writer.add_json("policy.json", {"case": case.pk, "versions": versions})


# --- the bundle and its download -------------------------------------------------------------


def case_bundle_build(*, case: RecoveryCase, actor: User) -> CaseBundle:
    """The case's evidence bundle (a zip, see the module docstring), linked to a signed
    checkpoint: a stored one, else one signed now, between the two reads (its record commits
    on its own: call this outside a transaction). Refused with `BundleUnavailable`."""
    with tenant_scope([case.tenant_id]):
        first, last = _case_event_span(case)
    checkpoint = checkpoint_covering(chain_key(case.tenant_id), last)
    with tenant_scope([case.tenant_id]):
        return _bundle_written(case, actor, first, checkpoint)


def _bundle_written(
    case: RecoveryCase, actor: User, first: int, checkpoint: Checkpoint
) -> CaseBundle:
    proof = chain_proof(
        tenant_id=case.tenant_id, rule=case_rule(case), first=first, checkpoint=checkpoint
    )
    writer = BundleWriter()
    writer.add_proof(proof)
    writer.add_json(
        "evidence.json",
        {"case": case.pk, "evidence": _evidence(case), "attachments": _attachments(case, writer)},
    )
    writer.add_json("approvals.json", _approvals(case))
    _policy(case, proof.events, writer)
    meta = {
        "case": case.pk,
        "tenant": {"id": case.tenant_id, "slug": case.tenant.slug},
        "chain": proof.chain,
        "checkpoint_seq": proof.checkpoint.seq,
        "first_seq": first,
        "subject": case_rule(case).as_data(),
        "built_for": actor.get_username(),
    }
    content, manifest_sha256 = writer.seal(meta, key_ids=[proof.checkpoint.key_id])
    return CaseBundle(
        content=content,
        filename=f"case-{case.pk}-{case.tenant.slug}-evidence.zip",
        manifest_sha256=manifest_sha256,
        checkpoint_seq=proof.checkpoint.seq,
        events=len(proof.events),
    )


def case_bundle_download(
    *, actor: User, access: TenantAccess | None, tenant: Tenant, case_id: int
) -> CaseBundle:
    """A reader of the trail downloads a case's bundle; the download is recorded
    (`audit.bundle_downloaded`) in the transaction that hands it out, or refused.

    Run it outside a transaction: the case is looked up and the reader checked in the tenant's
    scope, the bundle is built (signing a checkpoint if none covers the case yet), then the
    download is recorded. Refused: a person who does not read the trail (`PolicyDenied`), a
    case of another tenant or none (`CrossTenantNotFound`), no checkpoint or key
    (`BundleUnavailable`), the record failing (`TrailReadNotRecorded`).
    """
    with tenant_scope([tenant.pk]):
        if actor.is_human:
            enforce(can_read_audit(access))
        case = case_get_visible(tenant=tenant, access=access, pk=case_id)
    bundle = case_bundle_build(case=case, actor=actor)
    with tenant_scope([tenant.pk]):
        trail_read_record(
            reader=actor,
            access=access,
            tenant=tenant,
            action=DOWNLOAD_ACTION,
            data={
                "case": case.pk,
                "checkpoint_seq": bundle.checkpoint_seq,
                "events": bundle.events,
                "manifest_sha256": bundle.manifest_sha256,
            },
        )
    return bundle

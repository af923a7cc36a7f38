"""Step-up bound to the case as it stands (R-22, R-23, R-47).

An approval or an execution is authorised by a passkey assertion over a challenge the server
issued for that one action: SHA-256(snapshot hash | action | case id | server nonce), kept as a
`StepUpChallenge` row that lives 120 s and is spent once. The snapshot hash
(`case_snapshot_hash`) covers everything the decision is about, so an assertion made for
another case, another action, or this case before it changed, does not bind. The assertion is
stored whole with the approval or execution, and `step_up_records_verify` (called by
`audit_verify`) checks it again from what was recorded.

A TOTP code binds to nothing; the policy may accept it for T0/T1 approvals only
(`Requirements.step_up_kinds`, floors in recovery/policy/floors.py). Executions take passkeys
only (`EXECUTION_STEP_UP`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from tenants.access import access_in
from tenants.exceptions import InvalidInput, PolicyDenied, StepUpFailed
from tenants.models import User
from tenants.passkeys import staff_assertion_options
from tenants.stepup import (
    StepUpProof,
    require_fresh_step_up,
    step_up_assertion_problem,
    step_up_passkey_verify,
    step_up_verify,
)

from ...artifacts.services import artifact_delivery_contact
from ...connectors.models import ConnectorConfig
from ...policy.rules import Requirements
from ..choices import Decision as ApprovalDecision
from ..models import Approval, CaseExecution, Evidence, EvidenceAttachment, RecoveryCase
from ..models import StepUpChallenge as Challenge
from .base import audit_actor_of, case_locked, record_digest, requirements_for, work_access

APPROVE, DENY, EXECUTE = "approve", "deny", "execute"
ACTIONS = (APPROVE, DENY, EXECUTE)
CHALLENGE_LIFETIME = timedelta(seconds=120)


def case_snapshot_hash(case: RecoveryCase, req: Requirements | None = None) -> str:
    """What a decision on `case` is bound to (R-22, R-47): subject, tenant, tier, case type,
    the connector and action execution will run, where the artifact would go now, the evidence
    and attachments with their digests, and the policy version(s) deciding the case."""
    req = req or requirements_for(case)
    evidence = list(
        Evidence.objects.for_tenant(case.tenant)
        .filter(case=case)
        .order_by("pk")
        .values_list("pk", "digest")
    )
    attachments = list(
        EvidenceAttachment.objects.for_tenant(case.tenant)
        .filter(case=case)
        .order_by("pk")
        .values_list("pk", "sha256")
    )
    connector = (
        ConnectorConfig.objects.for_tenant(case.tenant)
        .filter(is_active=True)
        .values_list("kind", "settings")
        .first()
    )
    try:
        contact = artifact_delivery_contact(case, req)
        channel: list[Any] | str = [contact.pk, contact.kind]
    except InvalidInput as none:  # no channel now: that is the state decided on
        channel = none.code
    return record_digest(
        {
            "case": case.pk,
            "tenant": case.tenant_id,
            "account": case.account_id,
            "tier": case.tier,
            "case_type": case.case_type,
            "connector": [connector[0], record_digest(connector[1])] if connector else "manual",
            "connector_action": case.case_type,
            "delivery_channel": channel,
            "evidence": evidence,
            "attachments": attachments,
            "policy_versions": list(req.policy_versions),
        }
    )


def step_up_challenge(*, snapshot: str, action: str, case_id: int, nonce: str) -> bytes:
    """The bytes a passkey signs for `action` on case `case_id` as hashed in `snapshot`."""
    return hashlib.sha256(f"{snapshot}|{action}|{case_id}|{nonce}".encode()).digest()


def _action_checked(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidInput(
            f"The step-up action is one of: {', '.join(ACTIONS)}.",
            code="stepup.action_invalid",
            field_errors={"action": [f"One of: {', '.join(ACTIONS)}."]},
        )
    return action


def step_up_options(*, actor: User, case: RecoveryCase, action: str) -> str:
    """Issue a challenge for `actor` to `action` `case` as it stands now, and return the
    WebAuthn request options (JSON for `navigator.credentials.get()`) over it.

    Deciding (approve or deny: each its own action, so an answer given to approve cannot be
    spent on a denial, nor the reverse) needs access to the tenant, executing the right to work
    the case; the action's service checks everything again. Refused
    (`passkey.unknown_credential`) when the actor has no active passkey.
    """
    _action_checked(action)
    if not actor.is_human:
        raise PolicyDenied("Only a person steps up with a passkey.", code="stepup.human_required")
    with transaction.atomic():
        case = case_locked(case)
        if action == EXECUTE:
            access = work_access(actor, case)
        else:
            access = access_in(actor, case.tenant)
            if access is None:
                raise PolicyDenied("You have no access to this tenant.", code="tenant.no_access")
        snapshot = case_snapshot_hash(case)
        nonce = secrets.token_hex(32)
        challenge = step_up_challenge(
            snapshot=snapshot, action=action, case_id=case.pk, nonce=nonce
        )
        options = staff_assertion_options(user=actor, challenge=challenge)
        row = Challenge.objects.create(
            tenant=case.tenant,
            case=case,
            user=actor,
            action=action,
            snapshot_hash=snapshot,
            nonce=nonce,
            challenge=challenge.hex(),
            expires_at=timezone.now() + CHALLENGE_LIFETIME,
        )
        record(
            action="step_up.challenge_issued",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"challenge": row.pk, "action": action, "expires_at": row.expires_at},
        )
    return options


def _refused(message: str, code: str) -> StepUpFailed:
    return StepUpFailed(message, code=code)


def _b64url(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _client_challenge(credential_json: str) -> bytes:
    """The challenge a `get()` answer says it signed (its client data), to find the row; the
    signature check later proves it. Raises ValueError when malformed."""
    try:
        response = json.loads(credential_json)["response"]
        client_data = json.loads(_b64url(response["clientDataJSON"]))
        return _b64url(client_data["challenge"])
    except (binascii.Error, KeyError, TypeError, ValueError) as error:
        raise ValueError("malformed") from error


def case_step_up_verify(
    *, actor: User, case: RecoveryCase, action: str, credential_json: str
) -> StepUpProof:
    """Verify `actor`'s passkey answer to the challenge issued for `action` on `case` and spend
    that challenge; the proof then goes to `approval_decide` or `case_execute`.

    Call it before the action's transaction (like `step_up_verify`): the spent challenge
    commits either way. Refused: an answer to no challenge of this user, case and action
    (`stepup.challenge_unknown`: made for another case, or forged), one already used
    (`stepup.challenge_spent`: a replay), expired or cancelled, or a passkey that does not
    verify (`passkey.*`).
    """
    _action_checked(action)
    try:
        presented = _client_challenge(credential_json)
    except ValueError:
        raise _refused("The passkey answer is malformed.", "stepup.assertion_malformed") from None
    with transaction.atomic():
        row = (
            Challenge.objects.for_tenant(case.tenant)
            .select_for_update()
            .filter(user=actor, case=case, action=action, challenge=presented.hex())
            .first()
        )
        if row is None:
            raise _refused(
                "This passkey answer was not made for this action on this case; confirm again.",
                "stepup.challenge_unknown",
            )
        if row.spent_at is not None:
            raise _refused(
                "This passkey answer was already used; confirm again.", "stepup.challenge_spent"
            )
        if row.cancelled_at is not None:
            raise _refused(
                "This confirmation was cancelled (your access changed).",
                "stepup.challenge_cancelled",
            )
        if row.expires_at <= timezone.now():
            raise _refused(
                "The confirmation took too long; confirm again.", "stepup.challenge_expired"
            )
        row.spent_at = timezone.now()
        row.save(update_fields=["spent_at"])
    inputs = {
        "case": row.case_id,
        "action": row.action,
        "snapshot": row.snapshot_hash,
        "nonce": row.nonce,
    }
    return step_up_passkey_verify(
        user=actor, challenge=presented, credential_json=credential_json, inputs=inputs
    )


def step_up_presented(
    *, actor: User, case: RecoveryCase, action: str, assertion: str = "", otp: str = ""
) -> StepUpProof | None:
    """The proof a request presents for `action` on `case`, verified now: a passkey answer
    (`step_up_assertion`, preferred) or a TOTP code; None when it presents neither (the
    action's service then refuses with `stepup.required`). For views and API views."""
    if assertion.strip():
        return case_step_up_verify(
            actor=actor, case=case, action=action, credential_json=assertion.strip()
        )
    if otp.strip():
        return step_up_verify(user=actor, token=otp)
    return None


def require_bound_step_up(
    proof: StepUpProof | None,
    actor: User,
    *,
    case: RecoveryCase,
    action: str,
    snapshot: str,
    kinds: tuple[str, ...],
) -> StepUpProof:
    """Spend `proof` for `action` on the locked `case` whose snapshot hash is `snapshot`.

    The kinds come from the policy and the floor (`stepup.kind_refused`); a passkey proof must
    be bound to this case, this action and this snapshot (`stepup.wrong_binding`,
    `stepup.snapshot_changed`: the case changed after the challenge was issued).
    """
    proof = require_fresh_step_up(proof, actor, kinds=kinds)
    if not proof.assertion:
        return proof
    inputs = proof.inputs
    if inputs.get("case") != case.pk or inputs.get("action") != action:
        raise _refused(
            "This passkey answer was made for another case or action.", "stepup.wrong_binding"
        )
    if inputs.get("snapshot") != snapshot:
        raise _refused(
            "The case changed after you started to confirm; review it and confirm again.",
            "stepup.snapshot_changed",
        )
    return proof


def _challenge_of(stored: dict[str, Any]) -> bytes | None:
    inputs = stored.get("inputs") or {}
    try:
        return step_up_challenge(
            snapshot=str(inputs["snapshot"]),
            action=str(inputs["action"]),
            case_id=int(inputs["case"]),
            nonce=str(inputs["nonce"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def stored_step_up_problem(
    step_up: dict[str, Any] | None, *, case_id: int, action: str, snapshot: str | None
) -> str | None:
    """Why a stored passkey step-up does not hold, or None (TOTP: nothing to check).

    The challenge is recomputed from the recorded inputs, which must name this case and action
    (and, for an approval, its recorded snapshot); the client data must carry that challenge
    and the passkey's public key must verify the signature.
    """
    if not step_up or "assertion" not in step_up:
        return None
    stored = step_up["assertion"] if isinstance(step_up["assertion"], dict) else {}
    inputs = stored.get("inputs") or {}
    if inputs.get("case") != case_id or inputs.get("action") != action:
        return "recorded for another case or action"
    if snapshot is not None and inputs.get("snapshot") != snapshot:
        return "the recorded snapshot does not match the challenge inputs"
    challenge = _challenge_of(stored)
    if challenge is None:
        return "challenge inputs missing"
    try:
        if _b64url(stored.get("challenge")) != challenge:
            return "the challenge does not match the recorded snapshot"
    except (binascii.Error, ValueError):
        return "challenge malformed"
    problem = step_up_assertion_problem(stored, challenge)
    return f"signature check failed ({problem})" if problem else None


def _with_assertion(rows: QuerySet) -> QuerySet:
    """The rows holding a passkey assertion; none read at all when the tenant has no such row
    (the common case, and a chain verified against an older schema never touches the field)."""
    if not rows.exists():
        return rows.none()
    return rows.filter(step_up__has_key="assertion").order_by("pk")


def _seq_of(tenant_id: int, **event: Any) -> int:
    """The seq of the event that recorded a step-up (0 when none did: itself a problem)."""
    found = AuditEvent.objects.filter(tenant_id=tenant_id, **event).values_list("seq", flat=True)
    return found.order_by("seq").first() or 0


def step_up_records_verify(tenant_id: int) -> Iterator[tuple[int, str]]:
    """Every stored passkey step-up of the tenant checked again (`audit_verify`): for each
    approval or execution whose assertion no longer verifies, the seq of the event that
    recorded it and why."""
    approvals = _with_assertion(Approval.objects.filter(tenant_id=tenant_id)).values_list(
        "pk", "case_id", "snapshot_hash", "step_up", "decision"
    )
    for pk, case_id, snapshot, step_up, decision in approvals.iterator():
        action = APPROVE if decision == ApprovalDecision.APPROVED else DENY  # what it was for
        problem = stored_step_up_problem(step_up, case_id=case_id, action=action, snapshot=snapshot)
        if problem:
            seq = _seq_of(tenant_id, action__startswith="approval.", data__approval=pk)
            yield seq, f"approval {pk} of case {case_id}: stored step-up {problem}"
    executions = _with_assertion(CaseExecution.objects.filter(tenant_id=tenant_id)).values_list(
        "pk", "case_id", "step_up"
    )
    for pk, case_id, step_up in executions.iterator():
        problem = stored_step_up_problem(step_up, case_id=case_id, action=EXECUTE, snapshot=None)
        if problem:
            seq = _seq_of(
                tenant_id,
                action="case.executed",
                target_type=RecoveryCase._meta.label,
                target_id=str(case_id),
            )
            yield seq, f"execution {pk} of case {case_id}: stored step-up {problem}"

"""Evidence: what a verifier checked becomes a row that counts, or a refusal with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit.context import Actor
from audit.services import record
from tenants.access import access_in
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked

from ...models import ContactMethod
from ...policy.rules import Requirements
from ..channels import channel_problem
from ..choices import (
    COUNTING_VERIFIERS,
    EvidenceResult,
    SignalClass,
)
from ..masking import mask_secrets
from ..methods import ENROLLED_METHODS, method_get
from ..models import Evidence, RecoveryCase
from ..transitions import Move, transition_require
from .base import (
    alert_raise,
    audit_actor_of,
    case_locked,
    record_digest,
    requirements_for,
    work_access,
)

CHANNEL_CLASSES = frozenset({SignalClass.S2, SignalClass.S3})


@dataclass(frozen=True)
class VerifiedSignal:
    """What a verifier checked, and the id of its record: the only input of an accepted row.

    Built by the verifiers alone (challenges, attestations, proofing verdicts, attended
    sessions); no request field, form or API key reaches it. `refusal` is the verifier's own
    finding that what it checked falls short of the method (an IdP sign-in with a password
    alone): the row is recorded rejected with that reason, never accepted.
    """

    method: str
    verifier: str
    verifier_ref: int
    contact_method: ContactMethod | None = None
    details: dict[str, Any] = field(default_factory=dict)
    refusal: str = ""


def _signal_refusal(case: RecoveryCase, signal: VerifiedSignal, req: Requirements) -> str:
    """Why a verified signal still does not count for this case ("" when it does)."""
    if signal.refusal:
        return signal.refusal
    method = method_get(signal.method)
    if method is None or not method.available or method.verifier != signal.verifier:
        return "method_not_in_catalogue"
    if (method.signal_class in CHANNEL_CLASSES or method.name in ENROLLED_METHODS) and (
        problem := channel_problem(case, signal.contact_method, req.quarantine_seconds)
    ):
        return problem
    if method.signal_class not in req.accepted_classes:
        return "class_not_accepted"
    if method.name not in req.accepted_methods:
        return "method_not_accepted"
    return ""


def _evidence_write(
    *,
    case: RecoveryCase,
    signal_class: str,
    method: str,
    result: str,
    reason: str,
    collected_by: User,
    who: Actor,
    contact_method: ContactMethod | None = None,
    details: dict[str, Any] | None = None,
    verifier: str = "",
    verifier_ref: int | None = None,
    policy_versions: tuple[int, ...] = (),
) -> Evidence:
    """Store one evidence row on the locked case and record its event (same transaction);
    `policy_versions` names the versions that decided whether it counts (none for context)."""
    details = dict(details or {})
    evidence = Evidence(
        tenant=case.tenant,
        case=case,
        signal_class=signal_class,
        method=method[:64],
        result=result,
        reason_code=reason,
        contact_method=contact_method
        if contact_method and not reason.startswith("channel_not")
        else None,
        contact_hint=contact_method.masked if contact_method else "",
        details=details,
        collected_by=collected_by,
        verifier=verifier,
        verifier_ref=verifier_ref,
    )
    evidence.digest = record_digest(
        {
            "case": case.pk,
            "class": signal_class,
            "method": evidence.method,
            "result": result,
            "reason": reason,
            "contact": evidence.contact_method_id,
            "details": details,
            "by": collected_by.pk,
            "verifier": verifier,
            "verifier_ref": verifier_ref,
        }
    )
    evidence.save()
    case.revision += 1
    case.save(update_fields=["revision", "updated_at"])
    record(
        action="verification.signal_accepted"
        if result == EvidenceResult.ACCEPTED
        else "verification.signal_rejected",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={
            "evidence": evidence.pk,
            "digest": evidence.digest,
            "class": signal_class,
            "method": evidence.method,
            "reason": reason,
            "verifier": verifier,
            "verifier_ref": verifier_ref,
            "contact": evidence.contact_hint,
            "sim_changed_at": contact_method.sim_changed_at if contact_method else None,
            "contact_source": contact_method.source if contact_method else "",
            **({"policy_versions": list(policy_versions)} if policy_versions else {}),
        },
    )
    if reason == "sim_change_recent":
        alert_raise(case, "sim_swap_recovery_attempt", evidence=evidence.pk)
    return evidence


def evidence_from_verifier(
    *, case: RecoveryCase, signal: VerifiedSignal, collected_by: User, who: Actor
) -> Evidence:
    """The evidence a verifier's check stands for: accepted, or rejected with a reason code.

    Called only by verifiers, inside their transaction with the case row locked and
    `collecting_evidence` checked. Even a verified signal is rejected when its method is not in
    the catalogue or the tenant's policy, or its channel is one R-03/R-04 excludes now.
    """
    req = requirements_for(case)
    method = method_get(signal.method)
    reason = _signal_refusal(case, signal, req)
    return _evidence_write(
        case=case,
        signal_class=method.signal_class if method else SignalClass.CONTEXT,
        method=signal.method,
        result=EvidenceResult.REJECTED if reason else EvidenceResult.ACCEPTED,
        reason=reason,
        collected_by=collected_by,
        who=who,
        contact_method=signal.contact_method,
        details=signal.details,
        verifier=signal.verifier,
        verifier_ref=signal.verifier_ref,
        policy_versions=req.policy_versions,
    )


CONTEXT_TOPIC_MAX = 64
CONTEXT_STATEMENT_MAX = 2000


def context_record(*, actor: User, case: RecoveryCase, topic: str, statement: str) -> Evidence:
    """Keep a fact the caller gave (a name, a date, a ticket number) as context, never evidence.

    Context never counts toward the policy (R-02), whatever the topic says. Secrets in the
    statement are masked before storage (R-49), and a masked one is recorded as
    `policy.violation` (`secret_in_notes`).
    """
    enforce(ai_blocked(actor, "record evidence"))
    topic, statement = topic.strip(), statement.strip()
    problems = {}
    if not topic or len(topic) > CONTEXT_TOPIC_MAX or "\x00" in topic:
        problems["topic"] = [f"Name the fact in 1 to {CONTEXT_TOPIC_MAX} characters."]
    if not statement or len(statement) > CONTEXT_STATEMENT_MAX or "\x00" in statement:
        problems["statement"] = [f"Write what was said in 1 to {CONTEXT_STATEMENT_MAX} characters."]
    if problems:
        raise InvalidInput(
            "The context could not be recorded.",
            code="evidence.context_invalid",
            field_errors=problems,
        )
    masked, count = mask_secrets(statement)
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        evidence = _evidence_write(
            case=case,
            signal_class=SignalClass.CONTEXT,
            method="context",
            result=EvidenceResult.CONTEXT,
            reason="knowledge_based",
            collected_by=actor,
            who=who,
            details={"topic": topic, "statement": masked, "secrets_masked": count},
        )
        if count:
            record(
                action="policy.violation",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"code": "secret_in_notes", "evidence": evidence.pk, "masked": count},
            )
    return evidence


def evidence_refusal_record(
    *, actor: User, case: RecoveryCase, code: str, data: dict[str, Any] | None = None
) -> None:
    """Put a refused evidence request on the case's trail with its reason code, then return.

    For requests that never reach a verifier: an old client asserting a result, a destination
    the caller dictated. Recorded for anyone who may see the case, worker or not (an asserted
    result from a tenant admin is on the trail too); others learn nothing.
    """
    with transaction.atomic():
        case = case_locked(case)
        access = access_in(actor, case.tenant)
        if access is None:
            raise PolicyDenied("You have no access to this tenant.", code="tenant.no_access")
        record(
            action="verification.signal_rejected",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"reason": code, **(data or {})},
        )


def counted_evidence(case: RecoveryCase):
    """Accepted rows that a verifier produced: the only evidence that counts."""
    return Evidence.objects.for_tenant(case.tenant).filter(
        case=case, result=EvidenceResult.ACCEPTED, verifier__in=COUNTING_VERIFIERS
    )


def accepted_classes(case: RecoveryCase) -> set[str]:
    """Distinct signal classes accepted on the case (two of one class count once, R-01)."""
    return set(counted_evidence(case).values_list("signal_class", flat=True))

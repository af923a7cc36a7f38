"""Every transition of a recovery case: checks policy, writes its audit event, fails closed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import CaseType, PrincipalKind, Role, Tier
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import ALLOW, Decision, can_work_case_type, can_work_tier, enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof, require_fresh_step_up

from ..artifacts.services import artifacts_revoke_for_case
from ..choices import ProofingLevel
from ..models import ContactMethod, ProtectedAccount
from ..policy.explain import route_for
from ..policy.rules import Requirements, TenantPolicy
from ..policy.selectors import policy_active
from .approver_rules import approval_stands, exclusion_for
from .channels import channel_problem
from .choices import (
    ABANDONED_STATUSES,
    COUNTING_VERIFIERS,
    OPEN_STATUSES,
    CaseStatus,
    Channel,
    EvidenceResult,
    Route,
    SignalClass,
)
from .choices import (
    Decision as ApprovalDecision,
)
from .masking import mask_secrets
from .methods import ENROLLED_METHODS, method_get
from .models import Approval, Evidence, EvidenceAttachment, RecoveryCase
from .policies import can_work_case

_TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}
CHANNEL_CLASSES = frozenset({SignalClass.S2, SignalClass.S3})
MIN_JUSTIFICATION = 30
# the only evidence that recovers a T2 account proofed at IAL3.
ONSITE_BIOMETRIC_METHOD = "attended_onsite"
# Anti-rubber-stamping, our choices: a cap per approver, and an alert when one approver
# clears many cases of one opener in a short time.
APPROVALS_PER_HOUR = 30
VELOCITY_WINDOW = timedelta(minutes=10)
VELOCITY_THRESHOLD = 10


def _actor(user: User, access: TenantAccess | None, tenant: Any) -> Actor:
    return Actor.for_user(user, organisation=(access.organisation if access else "") or tenant.name)


def _locked(case: RecoveryCase) -> RecoveryCase:
    return RecoveryCase.objects.for_tenant(case.tenant).select_for_update().get(pk=case.pk)


def _db_now(case: RecoveryCase) -> datetime:
    """Database time, so expiry is set by the same clock that checks it."""
    return (
        RecoveryCase.objects.for_tenant(case.tenant)
        .filter(pk=case.pk)
        .annotate(db_now=Now())
        .values_list("db_now", flat=True)
        .get()
    )


def _case_end(
    case: RecoveryCase, *, status: str, reason: str, ended_at: datetime | None = None
) -> None:
    """End a locked case: its final status, when (now unless given) and why."""
    case.status, case.end_reason = status, reason
    case.ended_at = ended_at or timezone.now()
    case.revision += 1
    case.save(update_fields=["status", "ended_at", "end_reason", "revision", "updated_at"])


def _require_status(case: RecoveryCase, *allowed: str) -> None:
    if case.status not in allowed:
        raise InvalidInput(
            f"The case is {case.get_status_display().lower()}; this needs it to be "
            f"{' or '.join(CaseStatus(s).label.lower() for s in allowed)}.",
            code="case.wrong_state",
        )


def _requirements(case: RecoveryCase, policy: TenantPolicy | None = None) -> Requirements:
    return (policy or policy_active(case.tenant)).requirements(case.tier, case.case_type)


def _is_repeat(account: ProtectedAccount, req: Requirements) -> bool:
    """A second case inside the window, or any case soon after a denied/abandoned one (R-52)."""
    now = timezone.now()
    recent = Q(created_at__gte=now - timedelta(seconds=req.repeat_case_window_seconds))
    after_denial = Q(
        status__in=ABANDONED_STATUSES,
        ended_at__gte=now - timedelta(seconds=req.repeat_after_denial_window_seconds),
    )
    earlier = RecoveryCase.objects.for_tenant(account.tenant).filter(account=account)
    return earlier.filter(recent | after_denial).exists()


def case_open(
    *,
    actor: User,
    account: ProtectedAccount,
    case_type: str,
    channel: str,
    claimant_statement: str = "",
    justification: str = "",
) -> RecoveryCase:
    """Open a case; tier, route and repeat-attempt flag come from the server, never the caller.

    An exception request is its own case type and needs a written justification (R-24); the
    policy gives it two security-officer approvals and a waiting period, never lower floors.
    """
    if case_type == CaseType.EXCEPTION and len(justification.strip()) < MIN_JUSTIFICATION:
        raise InvalidInput(
            f"An exception request needs a written justification of at least "
            f"{MIN_JUSTIFICATION} characters.",
            code="case.justification_required",
            field_errors={"justification": ["Explain why the standard path cannot be used."]},
        )
    if channel not in Channel.values:
        raise InvalidInput(
            f"Unknown channel {channel!r}.",
            code="case.channel_invalid",
            field_errors={"channel": [f"One of {', '.join(Channel.values)}."]},
        )
    tenant = account.tenant
    with transaction.atomic():
        # Serialise case openings per account so two agents cannot both miss each other.
        account = ProtectedAccount.objects.for_tenant(tenant).select_for_update().get(pk=account.pk)
        account.tenant = tenant  # the caller's object: no second read of the tenant
        access = access_in(actor, tenant)
        policy = policy_active(tenant)
        tier, tier_reasons = policy.compute_tier(account)
        req = policy.requirements(tier, case_type)
        route, route_reasons = route_for(account, tier, case_type)
        repeat = _is_repeat(account, req)
        if repeat:
            route = Route.SECURITY
        enforce(can_work_case(access, route=Route.STANDARD, tier=tier, case_type=case_type))
        assert access is not None  # guaranteed by the policy above
        drafted = actor.kind == PrincipalKind.AI_ASSISTANT
        case = RecoveryCase.objects.create(
            tenant=tenant,
            account=account,
            case_type=case_type,
            channel=channel,
            claimant_statement=claimant_statement[:5000],
            justification=justification.strip()[:5000],
            tier=tier,
            tier_reasons=tier_reasons,
            route=route,
            repeat_attempt=repeat,
            policy_version=policy.number,
            policy_source=policy.source,
            opened_by=actor,
            opened_by_person=actor.person_id,
            opened_via_provider_id=access.provider_id,
            # an AI assistant's case is a draft nobody has taken yet; no notice or
            # challenge leaves for it until a person takes it (case_take).
            taken_by=None if drafted else actor,
            taken_at=None if drafted else timezone.now(),
        )
        record(
            action="case.opened",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=case,
            data={
                "account": account.external_id,
                "case_type": case_type,
                "channel": channel,
                "tier": tier,
                "tier_reasons": tier_reasons,
                "route": route,
                "route_reasons": route_reasons,
                "repeat_attempt": repeat,
                "policy_version": policy.number,
                "policy_source": policy.source,
                "drafted_by_ai": drafted,
            },
        )
    return case


def case_taken_decision(case: RecoveryCase) -> Decision:
    """R-66: nothing leaves for a case an AI assistant drafted until a person has taken it.

    For every side effect toward the owner or an attester (codes, attestation links, proofing
    sessions): `enforce(case_taken_decision(case))`, or record the refusal with its code.
    """
    if case.taken_by_id is None:
        return Decision(
            False,
            "case.not_taken",
            "An AI assistant drafted this case; a person must take it before anything is sent "
            "for it (R-66).",
        )
    return ALLOW


def case_take(*, actor: User, case: RecoveryCase) -> RecoveryCase:
    """A person takes a case an AI assistant drafted; its side effects may start (R-66).

    Only a human who may work the case, only once, only while it is open. Records
    `case.taken`; the owner's "case opened" notice goes out now (it was held back at opening).
    """
    if actor.kind != PrincipalKind.HUMAN:
        raise PolicyDenied(
            "A person must take a drafted case; no API key or assistant can (R-66).",
            code="case.taker_not_human",
        )
    with transaction.atomic():
        case = _locked(case)
        access = _work_access(actor, case)
        _require_status(case, *sorted(OPEN_STATUSES))
        if case.taken_by_id is not None:
            raise InvalidInput(
                "This case already has a person working it; only an AI-drafted case is taken.",
                code="case.already_taken",
            )
        case.taken_by, case.taken_at = actor, timezone.now()
        case.revision += 1
        case.save(update_fields=["taken_by", "taken_at", "revision", "updated_at"])
        record(
            action="case.taken",
            actor=_actor(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"drafted_by": case.opened_by_id, "taken_at": case.taken_at},
        )
    return case


def _work_access(actor: User, case: RecoveryCase) -> TenantAccess:
    access = access_in(actor, case.tenant)
    enforce(can_work_case(access, route=case.route, tier=case.tier, case_type=case.case_type))
    assert access is not None  # guaranteed by the policy above
    return access


def _digest(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
) -> Evidence:
    """Store one evidence row on the locked case and record its event (same transaction)."""
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
    evidence.digest = _digest(
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
        },
    )
    if reason == "sim_change_recent":
        _alert(case, "sim_swap_recovery_attempt", evidence=evidence.pk)
    return evidence


def evidence_from_verifier(
    *, case: RecoveryCase, signal: VerifiedSignal, collected_by: User, who: Actor
) -> Evidence:
    """The evidence a verifier's check stands for: accepted, or rejected with a reason code.

    Called only by verifiers, inside their transaction with the case row locked and
    `collecting_evidence` checked. Even a verified signal is rejected when its method is not in
    the catalogue or the tenant's policy, or its channel is one R-03/R-04 excludes now.
    """
    req = _requirements(case)
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
        case = _locked(case)
        access = _work_access(actor, case)
        _require_status(case, CaseStatus.COLLECTING_EVIDENCE)
        who = _actor(actor, access, case.tenant)
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
        case = _locked(case)
        access = access_in(actor, case.tenant)
        if access is None:
            raise PolicyDenied("You have no access to this tenant.", code="tenant.no_access")
        record(
            action="verification.signal_rejected",
            actor=_actor(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"reason": code, **(data or {})},
        )


def _alert(case: RecoveryCase, kind: str, **data: Any) -> None:
    """Raise a detection for the security queue, recorded with the case (R-55, R-26)."""
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=case.tenant,
        target=case,
        data={"type": kind, **data},
    )


def counted_evidence(case: RecoveryCase):
    """Accepted rows that a verifier produced: the only evidence that counts."""
    return Evidence.objects.for_tenant(case.tenant).filter(
        case=case, result=EvidenceResult.ACCEPTED, verifier__in=COUNTING_VERIFIERS
    )


def accepted_classes(case: RecoveryCase) -> set[str]:
    """Distinct signal classes accepted on the case (two of one class count once, R-01)."""
    return set(counted_evidence(case).values_list("signal_class", flat=True))


def case_submit(*, actor: User, case: RecoveryCase) -> RecoveryCase:
    """Send the case for approval; refused until the policy's evidence is met (R-01, R-16)."""
    enforce(ai_blocked(actor, "submit a case for approval"))
    with transaction.atomic():
        case = _locked(case)
        access = _work_access(actor, case)
        _require_status(case, CaseStatus.COLLECTING_EVIDENCE)
        req = _requirements(case)
        have = accepted_classes(case)
        if (
            case.tier == Tier.T2
            and case.account.proofing_level == ProofingLevel.IAL3
            and not counted_evidence(case).filter(method=ONSITE_BIOMETRIC_METHOD).exists()
        ):
            raise PolicyDenied(
                "This privileged account was proofed at IAL3: only an attended identity "
                "proofing session with a biometric comparison (S4) can recover it (R-06).",
                code="evidence.attended_s4_required",
            )
        if not req.evidence_met(have):
            missing = req.min_signal_classes - len(have & set(req.accepted_classes))
            raise PolicyDenied(
                f"The policy needs {req.min_signal_classes} different accepted signal classes "
                f"({', '.join(req.accepted_classes)}); {max(missing, 1)} more needed.",
                code="evidence.insufficient",
            )
        case.status = CaseStatus.PENDING_APPROVAL
        case.submitted_at = timezone.now()
        case.revision += 1
        case.save(update_fields=["status", "submitted_at", "revision", "updated_at"])
        record(
            action="case.submitted",
            actor=_actor(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"classes": sorted(have)},
        )
        if req.approvals_required == 0:
            _approved(case, req)
    return case


def case_snapshot_hash(case: RecoveryCase) -> str:
    """What an approval is bound to: subject, tier, type and the evidence as recorded (R-22)."""
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
    return _digest(
        {
            "case": case.pk,
            "tenant": case.tenant_id,
            "account": case.account_id,
            "tier": case.tier,
            "case_type": case.case_type,
            "evidence": evidence,
            "attachments": attachments,
        }
    )


def _person_ids_of_subject_and_delegates(account: ProtectedAccount) -> set[Any]:
    """The subject's person and the people on either side of a delegation with the subject:
    those it lists (they delegate to it) and those whose accounts list it (its delegates).
    None of them approves, executes or referees the subject's case (R-21)."""
    people = ProtectedAccount.objects.for_tenant(account.tenant).filter(person_id__isnull=False)
    persons = set(
        people.filter(external_id__in=account.delegations).values_list("person_id", flat=True)
    )
    if connection.features.supports_json_field_contains:  # PostgreSQL: in the database
        listing = people.filter(delegations__contains=[account.external_id])
        persons |= set(listing.values_list("person_id", flat=True))
    else:  # the embedded SQLite default has no JSON containment: read the lists
        listing = people.exclude(delegations=[]).values_list("person_id", "delegations")
        persons |= {person for person, listed in listing if account.external_id in listed}
    return {p for p in [account.person_id, *persons] if p}


def _is_taker(case: RecoveryCase, actor: User) -> bool:
    """The person who took an AI-drafted case, by account or by person (R-66, R-21)."""
    if case.taken_by_id is None or case.taken_by_id == case.opened_by_id:
        return False  # a person's own case: the opener checks cover the taker
    if actor.pk == case.taken_by_id:
        return True
    taker_person = User.objects.filter(pk=case.taken_by_id).values_list("person_id", flat=True)
    return actor.person_id is not None and actor.person_id == taker_person.first()


def _approval_refusal(
    case: RecoveryCase, actor: User, access: TenantAccess | None, req: Requirements
) -> Decision | None:
    """Separation of duties and eligibility (R-20, R-21, R-59); None when allowed."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if actor.pk == case.opened_by_id:
        return Decision(False, "sod.approver_is_opener", "You opened this case.")
    if actor.person_id == case.opened_by_person:
        return Decision(
            False,
            "sod.same_person",
            "Another account of the person who opened this case cannot approve it.",
        )
    if _is_taker(case, actor):
        return Decision(
            False,
            "sod.approver_is_taker",
            "You took this AI-drafted case, so you worked it; another person must approve it.",
        )
    # The subject and their delegates either way; whoever collected evidence or worked the
    # case, at any tier. The approval queue excludes the same cases with the same SQL.
    if (excluded := exclusion_for(case, actor.person_id)) is not None:
        return Decision(False, excluded.code, excluded.detail)
    for scope in (can_work_tier(access, case.tier), can_work_case_type(access, case.case_type)):
        if not scope:
            return scope
    if (
        Approval.objects.for_tenant(case.tenant)
        .filter(case=case, approver_person=actor.person_id, invalidated_at__isnull=True)
        .exists()
    ):
        return Decision(False, "approval.already_decided", "You have already decided this case.")
    last_hour = Approval.objects.for_tenant(case.tenant).filter(
        approver=actor, created_at__gte=timezone.now() - timedelta(hours=1)
    )
    if last_hour.count() >= APPROVALS_PER_HOUR:
        return Decision(
            False,
            "approval.hourly_cap",
            f"You have made {APPROVALS_PER_HOUR} decisions in the last hour; "
            "another approver must take this one (R-26).",
        )
    if not access.roles & set(req.approver_roles):
        return Decision(
            False,
            "approval.role_required",
            f"Approving needs one of these roles: {', '.join(req.approver_roles)}.",
        )
    if case.route == Route.SECURITY and Role.SECURITY_OFFICER not in access.roles:
        return Decision(
            False,
            "case.security_queue_only",
            "Cases in the security queue are approved by security officers.",
        )
    return None


@dataclass(frozen=True)
class CaseNeeds:
    """What a case has and still lacks under its policy: the agent's live checklist."""

    accepted_classes: tuple[str, ...]
    classes_missing: int
    evidence_met: bool
    approvals: int
    approvals_required: int
    security_officer_approvals: int
    security_officer_approvals_required: int
    tenant_approver_missing: bool

    @property
    def approvals_met(self) -> bool:
        return (
            self.approvals >= self.approvals_required
            and self.security_officer_approvals >= self.security_officer_approvals_required
            and not self.tenant_approver_missing
        )

    def summary(self) -> list[str]:
        """The same, in plain words."""
        lines = []
        if not self.evidence_met:
            lines.append(f"Evidence: {self.classes_missing} more distinct signal class(es).")
        if self.approvals < self.approvals_required:
            lines.append(f"Approvals: {self.approvals_required - self.approvals} more.")
        if self.security_officer_approvals < self.security_officer_approvals_required:
            lines.append("At least one more approval must come from a security officer.")
        if self.tenant_approver_missing:
            lines.append("One approver must be the tenant's own staff (MSP-opened case).")
        return lines or ["Nothing: the policy is satisfied."]


def case_needs(
    case: RecoveryCase,
    req: Requirements | None = None,
    *,
    known_access: dict[int, TenantAccess | None] | None = None,
) -> CaseNeeds:
    """Evaluate the case against its requirements now (accepted evidence, live approvals).

    An approval counts only while its approver holds the role now (R-62); `known_access`
    gives the access already read for some approvers (by user id) in this transaction.
    """
    req = req or _requirements(case)
    known = known_access or {}
    have = accepted_classes(case)
    counted = have & set(req.accepted_classes)
    live = [
        approval
        for approval in Approval.objects.for_tenant(case.tenant)
        .filter(
            case=case,
            invalidated_at__isnull=True,
            decision=ApprovalDecision.APPROVED,
            snapshot_hash=case_snapshot_hash(case),
        )
        .select_related("approver")
        # only while the approver keeps the approving role (fails closed; voided soon).
        if approval_stands(
            approval,
            case,
            known[approval.approver_id]
            if approval.approver_id in known
            else access_in(approval.approver, case.tenant),
        )
    ]
    officers = sum(Role.SECURITY_OFFICER in a.roles for a in live)
    needs_tenant_side = bool(req.tenant_approver_required_when_msp and case.opened_via_provider_id)
    return CaseNeeds(
        accepted_classes=tuple(sorted(have)),
        classes_missing=max(req.min_signal_classes - len(counted), 0),
        evidence_met=req.evidence_met(have),
        approvals=len(live),
        approvals_required=req.approvals_required,
        security_officer_approvals=officers,
        security_officer_approvals_required=max(
            req.min_security_officer_approvals, int(req.security_officer_required)
        ),
        tenant_approver_missing=needs_tenant_side and all(a.via_grant for a in live),
    )


def _s5_waives(case: RecoveryCase, req: Requirements) -> bool:
    """The R-36 waiver: a verifier-made S5, never for T2, never for an exception."""
    return (
        req.s5_waives_cooling_off
        and case.tier != Tier.T2
        and case.case_type != CaseType.EXCEPTION
        and SignalClass.S5 in accepted_classes(case)
    )


def _approved(case: RecoveryCase, req: Requirements) -> None:
    waive = _s5_waives(case, req)
    seconds = 0 if waive else req.cooling_off_seconds
    case.cooling_off_until = timezone.now() + timedelta(seconds=seconds)
    case.status = CaseStatus.COOLING_OFF if seconds else CaseStatus.READY
    case.revision += 1
    case.save(update_fields=["status", "cooling_off_until", "revision", "updated_at"])
    record(
        action="case.status_changed",
        actor=Actor.system("workflow"),
        tenant=case.tenant,
        target=case,
        data={
            "to": case.status,
            "cooling_off_until": case.cooling_off_until,
            "cooling_off_waived_by_s5": waive,
        },
    )


def _invalidate_if_tier_rose(case: RecoveryCase, policy: TenantPolicy) -> None:
    """Recompute the tier; an upward change voids approvals given so far (R-17)."""
    tier, reasons = policy.compute_tier(case.account)
    if _TIER_RANK[tier] <= _TIER_RANK[case.tier]:
        return
    old = case.tier
    voided = (
        Approval.objects.for_tenant(case.tenant)
        .filter(case=case, invalidated_at__isnull=True)
        .update(invalidated_at=timezone.now(), invalidated_reason=f"tier raised {old} -> {tier}")
    )
    case.tier, case.tier_reasons = tier, reasons
    route, _reasons = route_for(case.account, tier, case.case_type)
    case.route = Route.SECURITY if case.repeat_attempt else route
    # Evidence enough for the old tier may not be enough for the new one: collect more first.
    req = policy.requirements(tier, case.case_type)
    if not req.evidence_met(accepted_classes(case)):
        case.status = CaseStatus.COLLECTING_EVIDENCE
    case.revision += 1
    case.save(update_fields=["tier", "tier_reasons", "route", "status", "revision", "updated_at"])
    record(
        action="case.tier_raised",
        actor=Actor.system("workflow"),
        tenant=case.tenant,
        target=case,
        data={
            "from": old,
            "to": tier,
            "reasons": reasons,
            "approvals_voided": voided,
            "status": case.status,
        },
    )


LOST_ROLE = "approver_lost_role"
RETURNED_STATUSES = (CaseStatus.COOLING_OFF, CaseStatus.READY)


def _void_lost_role_approvals(case: RecoveryCase) -> int:
    """Void the live approvals of the locked `case` whose approver no longer holds the role
    they approved with (R-62), one `approval.invalidated` event each; an approved case whose
    approvals no longer suffice goes back to pending approval. Returns how many were voided."""
    voided = 0
    live = (
        Approval.objects.for_tenant(case.tenant)
        .filter(case=case, invalidated_at__isnull=True)
        .select_related("approver")
        .order_by("pk")
    )
    for approval in live:
        if approval_stands(approval, case, access_in(approval.approver, case.tenant)):
            continue
        approval.invalidated_at, approval.invalidated_reason = timezone.now(), LOST_ROLE
        approval.save(update_fields=["invalidated_at", "invalidated_reason"])
        voided += 1
        record(
            action="approval.invalidated",
            actor=Actor.system("workflow"),
            tenant=case.tenant,
            target=case,
            data={
                "approval": approval.pk,
                "approver": approval.approver.get_username(),
                "reason": LOST_ROLE,
            },
        )
    if voided and case.status in RETURNED_STATUSES and not case_needs(case).approvals_met:
        case.status, case.cooling_off_until = CaseStatus.PENDING_APPROVAL, None
        case.revision += 1
        case.save(update_fields=["status", "cooling_off_until", "revision", "updated_at"])
        record(
            action="case.status_changed",
            actor=Actor.system("workflow"),
            tenant=case.tenant,
            target=case,
            data={"to": case.status, "reason": LOST_ROLE},
        )
    return voided


def approvals_void_lost_role(*, case: RecoveryCase) -> RecoveryCase:
    """Lock `case` and void the approvals whose approver lost the role (R-62); for the
    receivers of membership and grant changes, and for execution to re-check."""
    with transaction.atomic():
        case = _locked(case)
        _void_lost_role_approvals(case)
    return case


def approval_decide(
    *,
    actor: User,
    case: RecoveryCase,
    decision: str,
    reason: str,
    step_up: StepUpProof | None,
) -> Approval:
    """Approve or deny one case, with a written reason and a fresh step-up (R-20 to R-23).

    Refused attempts are recorded as `policy.violation` and raised. The tier is recomputed
    first; approvals given at a lower tier no longer count.
    """
    enforce(ai_blocked(actor, "approve or deny a case"))
    if decision not in ApprovalDecision.values:
        raise InvalidInput("Choose approved or denied.", code="approval.decision_invalid")
    if not reason.strip():
        raise InvalidInput(
            "Write why you approve or deny.",
            code="approval.reason_required",
            field_errors={"reason": ["Required."]},
        )
    with transaction.atomic():
        case = _locked(case)
        access = access_in(actor, case.tenant)
        _require_status(case, CaseStatus.PENDING_APPROVAL)
        policy = policy_active(case.tenant)
        _invalidate_if_tier_rose(case, policy)
        _void_lost_role_approvals(case)
        req = _requirements(case, policy)
        refusal = _approval_refusal(case, actor, access, req)
        if case.status != CaseStatus.PENDING_APPROVAL:  # sent back by a tier raise
            refusal = Decision(
                False,
                "evidence.insufficient",
                f"The account is now {case.tier}: the case needs more evidence "
                "before anyone can approve it.",
            )
        elif refusal is not None:
            # Committed with this block (the raise comes after it): refusals stay on record.
            record(
                action="policy.violation",
                actor=_actor(actor, access, case.tenant),
                tenant=case.tenant,
                target=case,
                data={"code": refusal.code, "decision": decision},
            )
        else:
            approval = _decide(case, actor, access, req, decision, reason, step_up)
    if refusal is not None:
        raise PolicyDenied(refusal.detail, code=refusal.code)
    return approval


def _decide(
    case: RecoveryCase,
    actor: User,
    access: TenantAccess | None,
    req: Requirements,
    decision: str,
    reason: str,
    step_up: StepUpProof | None,
) -> Approval:
    proof = require_fresh_step_up(step_up, actor)
    assert access is not None
    snapshot = case_snapshot_hash(case)
    approval = Approval.objects.create(
        tenant=case.tenant,
        case=case,
        approver=actor,
        approver_person=actor.person_id,
        case_opened_by=case.opened_by,
        case_opened_by_person=case.opened_by_person,
        roles=sorted(access.roles),
        via_grant=access.via_grant,
        decision=decision,
        reason=reason.strip()[:2000],
        snapshot_hash=snapshot,
        step_up=proof.audit_data(),
    )
    record(
        action=f"approval.{decision}",
        actor=_actor(actor, access, case.tenant),
        tenant=case.tenant,
        target=case,
        data={
            "approval": approval.pk,
            "snapshot": snapshot,
            "reason": approval.reason,
            "roles": approval.roles,
            "step_up": proof.audit_data(),
            "policy_version": case.policy_version,
        },
    )
    if decision == ApprovalDecision.DENIED:
        _case_end(case, status=CaseStatus.DENIED, reason=approval.reason)
    elif case_needs(case, req, known_access={actor.pk: access}).approvals_met:
        _approved(case, req)
    clustered = (
        Approval.objects.for_tenant(case.tenant)
        .filter(
            approver=actor,
            case_opened_by=case.opened_by,
            created_at__gte=timezone.now() - VELOCITY_WINDOW,
        )
        .count()
    )
    if clustered >= VELOCITY_THRESHOLD:
        _alert(
            case,
            "approval_velocity",
            approver=actor.get_username(),
            opener=case.opened_by_id,
            approvals=clustered,
        )
    return approval


def case_release_cooled(*, case: RecoveryCase) -> RecoveryCase:
    """Move a case whose cooling-off has passed to `ready` (database time decides)."""
    with transaction.atomic():
        case = _locked(case)
        due = RecoveryCase.objects.filter(pk=case.pk, cooling_off_until__lte=Now()).exists()
        if case.status != CaseStatus.COOLING_OFF or not due:
            return case
        case.status = CaseStatus.READY
        case.revision += 1
        case.save(update_fields=["status", "revision", "updated_at"])
        record(
            action="case.status_changed",
            actor=Actor.system("workflow"),
            tenant=case.tenant,
            target=case,
            data={"to": CaseStatus.READY},
        )
    return case


def case_cancel(*, actor: User | None, case: RecoveryCase, reason: str) -> RecoveryCase:
    """Cancel an open case (its worker, or the owner during cooling-off with `actor=None`)."""
    with transaction.atomic():
        case = _locked(case)
        if actor is not None:
            access = _work_access(actor, case)
            audit_actor = _actor(actor, access, case.tenant)
        else:
            audit_actor = Actor.system("account-owner")
        _require_status(
            case,
            CaseStatus.COLLECTING_EVIDENCE,
            CaseStatus.PENDING_APPROVAL,
            CaseStatus.COOLING_OFF,
            CaseStatus.READY,
        )
        _case_end(case, status=CaseStatus.CANCELLED, reason=reason.strip()[:2000])
        artifacts_revoke_for_case(case=case, reason="case_cancelled", actor=audit_actor)
        record(
            action="case.cancelled",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={"reason": case.end_reason},
        )
    return case

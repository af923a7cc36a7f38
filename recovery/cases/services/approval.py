"""Submission, approval and its separation of duties (R-20 to R-23, R-62)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import CaseType, Role, Tier
from tenants.exceptions import InvalidInput, PolicyDenied, StepUpFailed
from tenants.models import User
from tenants.policies import Decision, enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof

from ...choices import ProofingLevel
from ...detection.rules import fast_decision_finding
from ...models import ProtectedAccount
from ...policy.explain import route_for
from ...policy.floors import APPROVAL_LIFETIME_MARGIN, APPROVAL_LIFETIME_MAX
from ...policy.rules import CasePolicy, Requirements
from ...policy.selectors import policy_for_case
from ..access_rules import DECIDE, Who, first_refusal
from ..approver_rules import approval_stands
from ..choices import (
    CaseStatus,
    Route,
    SignalClass,
)
from ..choices import (
    Decision as ApprovalDecision,
)
from ..models import Approval, RecoveryCase
from ..transitions import TRANSITIONS, Move, case_move, transition_require
from .base import (
    TIER_RANK,
    alert_raise,
    audit_actor_of,
    case_end,
    case_locked,
    requirements_for,
    work_access,
    workflow_move,
)
from .evidence import accepted_classes, counted_evidence
from .step_up import APPROVE, DENY, case_snapshot_hash, require_bound_step_up

# the only evidence that recovers a T2 account proofed at IAL3.
ONSITE_BIOMETRIC_METHOD = "attended_onsite"
# Anti-rubber-stamping, our choices: a cap per approver, and an alert when one approver
# clears many cases of one opener in a short time.
APPROVALS_PER_HOUR = 30
VELOCITY_WINDOW = timedelta(minutes=10)
VELOCITY_THRESHOLD = 10


def case_submit(*, actor: User, case: RecoveryCase) -> RecoveryCase:
    """Send the case for approval; refused until the policy's evidence is met (R-01, R-16)."""
    enforce(ai_blocked(actor, "submit a case for approval"))
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.SUBMIT)
        req = requirements_for(case)
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
        case_move(case, Move.SUBMIT, CaseStatus.PENDING_APPROVAL)
        case.submitted_at = timezone.now()
        case.revision += 1
        case.save(update_fields=["status", "submitted_at", "revision", "updated_at"])
        record(
            action="case.submitted",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"classes": sorted(have), "policy_versions": list(req.policy_versions)},
        )
        if req.approvals_required == 0:
            _approved(case, req)
    return case


def subject_and_delegate_persons(account: ProtectedAccount) -> set[Any]:
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


def approval_refusal(
    case: RecoveryCase, actor: User, access: TenantAccess | None, req: Requirements
) -> Decision | None:
    """Separation of duties and eligibility (R-20, R-21, R-59, R-66); None when allowed.

    The first rule of `access_rules.DECIDE` the case fails (the approval queue filters by the
    same rules in SQL), then the approver's hourly cap (R-26), which is about the approver's
    last hour rather than the case.
    """
    # `req` is this case's requirements: the rules read them for the case's own tier and type.
    who = Who(access, actor=actor, requirements=lambda tier, case_type: req)
    refusal = first_refusal(DECIDE, who, case)
    if not refusal:
        return refusal
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
    snapshot: str | None = None,
) -> CaseNeeds:
    """Evaluate the case against its requirements now (accepted evidence, live approvals).

    An approval counts only while its approver holds the role now (R-62), the case is as it
    was approved (its snapshot hash) and the approval has not expired (R-22); `known_access`
    gives the access already read for some approvers (by user id) in this transaction, and
    `snapshot` the case's snapshot hash when the caller has just computed it.
    """
    req = req or requirements_for(case)
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
            snapshot_hash=snapshot or case_snapshot_hash(case, req),
            expires_at__gt=timezone.now(),  # an expired approval counts for nothing
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
    workflow_move(
        case,
        Move.APPROVALS_MET,
        CaseStatus.COOLING_OFF if seconds else CaseStatus.READY,
        cooling_off_until=case.cooling_off_until,
        cooling_off_waived_by_s5=waive,
        policy_versions=list(req.policy_versions),
    )


def case_tier_recompute(case: RecoveryCase, policy: CasePolicy) -> None:
    """Recompute the tier (the higher of the case's two policy versions); an upward change
    voids approvals given so far (R-17)."""
    tier, reasons = policy.compute_tier(case.account)
    if TIER_RANK[tier] <= TIER_RANK[case.tier]:
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
        case_move(case, Move.BACK_TO_EVIDENCE, CaseStatus.COLLECTING_EVIDENCE)
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
            "policy_versions": policy.versions,
        },
    )


LOST_ROLE = "approver_lost_role"
SNAPSHOT_CHANGED = "snapshot_changed"
EXPIRED = "expired"
POLICY_TIGHTENED = "policy_tightened"
RETURNED_STATUSES = TRANSITIONS[Move.SEND_BACK].sources


def _void_reason(
    approval: Approval, case: RecoveryCase, snapshot: str, now: datetime
) -> str | None:
    """Why a live approval no longer stands, or None: its approver lost the role (R-62), the
    case is no longer what was approved (R-22, R-47), or its lifetime ended (R-22)."""
    if not approval_stands(approval, case, access_in(approval.approver, case.tenant)):
        return LOST_ROLE
    if approval.snapshot_hash != snapshot:
        return SNAPSHOT_CHANGED
    if approval.expires_at <= now:
        return EXPIRED
    return None


def approvals_void_stale_locked(case: RecoveryCase) -> list[str]:
    """Void the live approvals of the locked `case` that no longer stand (`_void_reason`),
    one `approval.invalidated` event each with its reason; an approved case whose approvals
    no longer suffice goes back to pending approval. Returns the reasons, one per voided."""
    voided: list[str] = []
    live = list(
        Approval.objects.for_tenant(case.tenant)
        .filter(case=case, invalidated_at__isnull=True)
        .select_related("approver")
        .order_by("pk")
    )
    if not live:
        return voided
    req = requirements_for(case)
    snapshot, now = case_snapshot_hash(case, req), timezone.now()
    for approval in live:
        reason = _void_reason(approval, case, snapshot, now)
        if reason is None:
            continue
        approval.invalidated_at, approval.invalidated_reason = now, reason
        approval.save(update_fields=["invalidated_at", "invalidated_reason"])
        voided.append(reason)
        record(
            action="approval.invalidated",
            actor=Actor.system("workflow"),
            tenant=case.tenant,
            target=case,
            data={
                "approval": approval.pk,
                "approver": approval.approver.get_username(),
                "reason": reason,
                "expires_at": approval.expires_at,
            },
        )
    if voided and case.status in RETURNED_STATUSES and not case_needs(case, req).approvals_met:
        _sent_back(case, req, CaseStatus.PENDING_APPROVAL, None, voided[0])
    return voided


def _sent_back(
    case: RecoveryCase, req: Requirements, status: str, until: datetime | None, reason: str
) -> None:
    """An approved case goes back (to pending approval, or to cooling off until `until`)."""
    case.cooling_off_until = until
    workflow_move(
        case,
        Move.SEND_BACK,
        status,
        cooling_off_until=until,
        reason=reason,
        policy_versions=list(req.policy_versions),
    )


def _approved_at(case: RecoveryCase) -> datetime:
    """When the case was approved: its last live approval, or its submission (no approvals
    needed); `_approved` ran in that transaction."""
    last = (
        Approval.objects.for_tenant(case.tenant)
        .filter(case=case, invalidated_at__isnull=True, decision=ApprovalDecision.APPROVED)
        .aggregate(last=Max("created_at"))["last"]
    )
    return last or case.submitted_at


def case_policy_recheck_locked(case: RecoveryCase, policy: CasePolicy) -> bool:
    """An approved (cooling-off or ready) locked `case` under a policy tightened since it
    opened: back to pending approval when its approvals no longer suffice, back to cooling off
    when the wait grew. True when it moved. Nothing to do while one version decides it."""
    opened, active = policy.versions
    if opened == active or case.status not in RETURNED_STATUSES:
        return False
    req = requirements_for(case, policy)
    if not case_needs(case, req).approvals_met:
        _sent_back(case, req, CaseStatus.PENDING_APPROVAL, None, POLICY_TIGHTENED)
        return True
    wait = 0 if _s5_waives(case, req) else req.cooling_off_seconds
    until = _approved_at(case) + timedelta(seconds=wait)
    if until <= max(case.cooling_off_until or until, timezone.now()):
        return False  # the longer wait has passed already, or is the one set
    _sent_back(case, req, CaseStatus.COOLING_OFF, until, POLICY_TIGHTENED)
    return True


def approvals_void_stale(*, case: RecoveryCase) -> RecoveryCase:
    """Lock `case` and void the approvals that no longer stand (approver lost the role, case
    changed, expired); for the receivers of membership and grant changes (R-62)."""
    with transaction.atomic():
        case = case_locked(case)
        approvals_void_stale_locked(case)
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
    stepup_refusal: StepUpFailed | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = access_in(actor, case.tenant)
        transition_require(
            case, Move.APPROVE if decision == ApprovalDecision.APPROVED else Move.DENY
        )
        policy = policy_for_case(case)
        case_tier_recompute(case, policy)
        approvals_void_stale_locked(case)
        req = requirements_for(case, policy)
        refusal = approval_refusal(case, actor, access, req)
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
                actor=audit_actor_of(actor, access, case.tenant),
                tenant=case.tenant,
                target=case,
                data={
                    "code": refusal.code,
                    "decision": decision,
                    "policy_versions": list(req.policy_versions),
                },
            )
        else:
            try:
                approval = _decide(case, actor, access, req, decision, reason, step_up)
            except StepUpFailed as failed:
                # Nothing of the decision is written yet; what happened above (a tier raise,
                # voided approvals) commits, so the next step-up binds to the case as it is.
                stepup_refusal = failed
    if refusal is not None:
        raise PolicyDenied(refusal.detail, code=refusal.code)
    if stepup_refusal is not None:
        raise stepup_refusal
    return approval


def approval_lifetime(req: Requirements) -> int:
    """Seconds an approval counts (R-22): the policy's lifetime, never shorter than the
    cooling-off plus the margin (a stricter-of-two-versions lifetime may be the shorter one of
    a version with the shorter wait) and never past the platform maximum."""
    least = req.cooling_off_seconds + APPROVAL_LIFETIME_MARGIN
    return min(max(req.approval_lifetime_seconds, least), APPROVAL_LIFETIME_MAX)


def _decide(
    case: RecoveryCase,
    actor: User,
    access: TenantAccess | None,
    req: Requirements,
    decision: str,
    reason: str,
    step_up: StepUpProof | None,
) -> Approval:
    assert access is not None
    snapshot = case_snapshot_hash(case, req)
    # the kinds the policy accepts at this tier (T2: passkeys only, the floor); a passkey
    # proof must be bound to this case, this decision and this snapshot.
    action = APPROVE if decision == ApprovalDecision.APPROVED else DENY
    proof = require_bound_step_up(
        step_up, actor, case=case, action=action, snapshot=snapshot, kinds=req.step_up_kinds
    )
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
        step_up=proof.stored_data(),
        expires_at=timezone.now() + timedelta(seconds=approval_lifetime(req)),
    )
    record(
        action=f"approval.{decision}",
        actor=audit_actor_of(actor, access, case.tenant),
        tenant=case.tenant,
        target=case,
        data={
            "approval": approval.pk,
            "snapshot": snapshot,
            "reason": approval.reason,
            "roles": approval.roles,
            "step_up": proof.audit_data(),
            "expires_at": approval.expires_at,
            "policy_version": case.policy_version,
            "policy_versions": list(req.policy_versions),
        },
    )
    if fast := fast_decision_finding(
        case=case, approver_id=actor.pk, decided_at=approval.created_at, req=req
    ):
        alert_raise(case, fast.rule, **fast.alert_data(case.correlation_id))
    if decision == ApprovalDecision.DENIED:
        case_end(case, Move.DENY, status=CaseStatus.DENIED, reason=approval.reason)
    elif case_needs(case, req, known_access={actor.pk: access}, snapshot=snapshot).approvals_met:
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
        alert_raise(
            case,
            "approval_velocity",
            approver=actor.get_username(),
            opener=case.opened_by_id,
            approvals=clustered,
        )
    return approval

"""Reads for the review console: the approval queue, the security queue and one case under review.

Each starts from the tenant, narrows to what the actor may work (delegation-grant scope), and
costs a fixed number of queries however many rows it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    BooleanField,
    CharField,
    Count,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models import Case as SqlCase
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import alert_list
from tenants.access import TenantAccess
from tenants.choices import CaseType, Tier
from tenants.models import Tenant, User

from ..challenges.models import VerificationChallenge
from ..models import ContactMethod
from ..notifications.models import NoticeStatus, OwnerNotice
from ..owner.models import IdpSignIn, OwnerConfirmation, RecoveryCodeCheck
from ..policy.rules import Requirements
from ..policy.selectors import policy_active, policy_for_case
from ..proofing.models import AttendedSession, ProofingSession
from .choices import OPEN_STATUSES, CaseStatus, Decision, EvidenceResult, Route, Verifier
from .models import Approval, Evidence, EvidenceAttachment, RecoveryCase
from .selectors import CASE_LABEL, case_timeline
from .services import APPROVALS_PER_HOUR, CaseNeeds, case_needs
from .timeline import TimelineEntry

# How long a case may wait for a decision before the queue marks it overdue (our choice).
APPROVAL_SLA = {
    Tier.T0: timedelta(hours=4),
    Tier.T1: timedelta(hours=4),
    Tier.T2: timedelta(hours=1),
}
REPUDIATED_STATUSES = (CaseStatus.FROZEN, CaseStatus.REVERTED)
HISTORY_LIMIT = 10
ALERT_LIMIT = 20


def _overdue(now: datetime) -> SqlCase:
    """SQL: the case has waited for a decision longer than its tier's SLA."""
    return SqlCase(
        *(
            When(tier=tier, submitted_at__lt=now - limit, then=Value(True))
            for tier, limit in APPROVAL_SLA.items()
        ),
        default=Value(False),
        output_field=BooleanField(),
    )


def overdue_pending(*, tenant: Tenant, now: datetime) -> QuerySet[RecoveryCase]:
    """The tenant's cases pending approval past their tier's SLA, longest waiting first."""
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .filter(status=CaseStatus.PENDING_APPROVAL)
        .annotate(overdue=_overdue(now))
        .filter(overdue=True)
        .order_by("submitted_at", "pk")
    )


def approval_queue(*, tenant: Tenant, actor: User, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Cases pending approval that `actor` could decide, longest waiting first.

    The cases `decidable_by` the actor under the active policy (`access_rules.DECIDE`, the
    rules the approval service refuses with), pending approval. Rows carry `overdue` and
    `approvals_given`. Each row's conditions are checked as the index `case_pending_queue`
    hands the tenant's pending cases over in queue order, so a page costs the same however long
    the backlog is.
    """
    live_approved = (
        Approval.objects.filter(
            case=OuterRef("pk"), invalidated_at__isnull=True, decision=Decision.APPROVED
        )
        .order_by()
        .values("case")
        .annotate(given=Count("pk"))
        .values("given")
    )
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .decidable_by(actor, access, policy=policy_active(tenant))
        .filter(status=CaseStatus.PENDING_APPROVAL)
        .select_related("account", "opened_by")
        .annotate(
            overdue=_overdue(timezone.now()),
            approvals_given=Coalesce(Subquery(live_approved), 0),
        )
        .order_by("submitted_at", "pk")
    )


def approvals_in_last_hour(*, tenant: Tenant, actor: User) -> int:
    """How many decisions `actor` made in the tenant in the last hour (capped, R-26)."""
    since = timezone.now() - timedelta(hours=1)
    return Approval.objects.for_tenant(tenant).filter(approver=actor, created_at__gte=since).count()


def approval_cap_reached(*, tenant: Tenant, actor: User) -> bool:
    """True when the service would refuse `actor` another decision this hour."""
    return approvals_in_last_hour(tenant=tenant, actor=actor) >= APPROVALS_PER_HOUR


def _reviewable(tenant: Tenant, access: TenantAccess) -> QuerySet[RecoveryCase]:
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .reviewable_by(access)
        .select_related("account", "opened_by")
    )


def security_case_list(*, tenant: Tenant, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Open T2 and security-route cases (R-18), exceptions aside, longest open first."""
    return (
        _reviewable(tenant, access)
        .filter(Q(tier=Tier.T2) | Q(route=Route.SECURITY), status__in=OPEN_STATUSES)
        .exclude(case_type=CaseType.EXCEPTION)
        .order_by("created_at", "pk")
    )


def open_exception_list(*, tenant: Tenant, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Open exception requests (R-24), longest open first."""
    return (
        _reviewable(tenant, access)
        .filter(case_type=CaseType.EXCEPTION, status__in=OPEN_STATUSES)
        .select_related("opened_via_provider")
        .order_by("created_at", "pk")
    )


def repudiation_list(*, tenant: Tenant, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Cases the owner reported as "this wasn't me" (frozen or reverted, R-41), newest first."""
    return (
        _reviewable(tenant, access)
        .filter(status__in=REPUDIATED_STATUSES)
        .order_by("-ended_at", "-pk")
    )


# Where each verifier keeps its record (`Evidence.verifier_ref` is that record's id). Codes and
# attestations are both challenges; one query reads both.
_VERIFIER_RECORDS = {
    Verifier.CHALLENGE: "challenge",
    Verifier.ATTESTATION: "challenge",
    Verifier.PROOFING_PROVIDER: "proofing",
    Verifier.ATTENDED_SESSION: "attended",
}
# The owner portal keeps one kind of record per method.
_OWNER_PORTAL_RECORDS = {
    "recovery_code": "code_check",
    "passkey": "confirmation",
    "idp_sign_in": "idp_sign_in",
}


def _record_kind(item: Evidence) -> str | None:
    if item.verifier == Verifier.OWNER_PORTAL:
        return _OWNER_PORTAL_RECORDS.get(item.method)
    return _VERIFIER_RECORDS.get(item.verifier)


def _verifier_records(tenant: Tenant, kind: str, refs: set[int]) -> dict[int, object]:
    if kind == "challenge":
        rows = VerificationChallenge.objects.for_tenant(tenant).select_related("confirmed_by")
    elif kind == "proofing":
        rows = ProofingSession.objects.for_tenant(tenant)
    elif kind == "code_check":
        rows = RecoveryCodeCheck.objects.for_tenant(tenant).select_related("checked_by")
    elif kind == "confirmation":
        rows = OwnerConfirmation.objects.for_tenant(tenant).select_related("passkey")
    elif kind == "idp_sign_in":
        rows = IdpSignIn.objects.for_tenant(tenant)
    else:
        rows = AttendedSession.objects.for_tenant(tenant).select_related("referee")
    return {row.pk: row for row in rows.filter(pk__in=refs)}


def evidence_with_verifiers(*, tenant: Tenant, case: RecoveryCase) -> list[Evidence]:
    """The case's evidence, oldest first, each row with `verified_by`: the record of the
    verifier that produced it (a challenge, a proofing session, an attended session), or None
    for context and legacy rows. One query for the rows and at most one per kind of record,
    however many rows there are."""
    evidence = list(
        Evidence.objects.for_tenant(tenant)
        .filter(case=case)
        .select_related("collected_by")
        .order_by("collected_at", "pk")
    )
    wanted: dict[str, set[int]] = {}
    for item in evidence:
        kind = _record_kind(item)
        if kind and item.verifier_ref is not None:
            wanted.setdefault(kind, set()).add(item.verifier_ref)
    records = {kind: _verifier_records(tenant, kind, refs) for kind, refs in wanted.items()}
    for item in evidence:
        kind = _record_kind(item)
        item.verified_by = records.get(kind, {}).get(item.verifier_ref) if kind else None
        # The row's record must have been made for this very case (ids are per tenant).
        if item.verified_by is not None and item.verified_by.case_id != item.case_id:
            item.verified_by = None
    return evidence


@dataclass(frozen=True)
class CaseReview:
    """Everything a reviewer weighs for one case, read at once."""

    case: RecoveryCase
    requirements: Requirements
    needs: CaseNeeds
    evidence: list[Evidence]
    attachments: list[EvidenceAttachment]
    approvals: list[Approval]
    history: list[RecoveryCase]
    alerts: list[AuditEvent]
    failed_notices: list[OwnerNotice]
    recent_contacts: list[ContactMethod]
    timeline: list[TimelineEntry]

    @property
    def overdue(self) -> bool:
        """Waiting for a decision longer than its tier's SLA."""
        case = self.case
        return bool(
            case.status == CaseStatus.PENDING_APPROVAL
            and case.submitted_at
            and timezone.now() - case.submitted_at > APPROVAL_SLA[case.tier]
        )

    @property
    def restricted(self) -> bool:
        """The account is inside a re-establishment window after a recovery (R-35)."""
        until = self.case.account.restricted_until
        return bool(until and until > timezone.now())

    @property
    def rejected_evidence(self) -> list[Evidence]:
        return [item for item in self.evidence if item.result != EvidenceResult.ACCEPTED]

    @property
    def cooling_off_minutes(self) -> int:
        return self.requirements.cooling_off_seconds // 60

    @property
    def quiet(self) -> bool:
        """No risk signal at all (the review page says so rather than showing nothing)."""
        return not (
            self.case.repeat_attempt
            or self.case.account.frozen_at
            or self.restricted
            or self.tier_raises
            or self.refused_attempts
            or self.alerts
            or self.failed_notices
            or self.recent_contacts
            or self.rejected_evidence
        )

    @property
    def tier_raises(self) -> list[TimelineEntry]:
        return [entry for entry in self.timeline if entry.action == "case.tier_raised"]

    @property
    def refused_attempts(self) -> list[TimelineEntry]:
        return [entry for entry in self.timeline if entry.action == "policy.violation"]


def _alerts_on_account(tenant: Tenant, case: RecoveryCase) -> QuerySet[AuditEvent]:
    """Alerts raised on any case of the case's account (this one included), newest first."""
    account_cases = (
        RecoveryCase.objects.for_tenant(tenant)
        .filter(account_id=case.account_id)
        .annotate(text_id=Cast("pk", CharField()))
        .values("text_id")
    )
    return alert_list(tenant=tenant).filter(target_type=CASE_LABEL, target_id__in=account_cases)


def case_review(*, tenant: Tenant, access: TenantAccess, case: RecoveryCase) -> CaseReview:
    """The evidence, risk signals, account history and policy needs of `case` (fixed queries)."""
    requirements = policy_for_case(case).requirements(case.tier, case.case_type)
    quarantine_start = timezone.now() - timedelta(seconds=requirements.quarantine_seconds)
    changed = (
        Q(registered_at__gte=quarantine_start)
        | Q(replaced_at__gte=quarantine_start)
        | Q(sim_changed_at__gte=quarantine_start)
    )
    return CaseReview(
        case=case,
        requirements=requirements,
        needs=case_needs(case, requirements),
        evidence=evidence_with_verifiers(tenant=tenant, case=case),
        attachments=list(
            EvidenceAttachment.objects.for_tenant(tenant)
            .filter(case=case)
            .select_related("uploaded_by")
            .order_by("uploaded_at", "pk")
        ),
        approvals=list(
            Approval.objects.for_tenant(tenant)
            .filter(case=case)
            .select_related("approver")
            .order_by("created_at", "pk")
        ),
        history=list(
            _reviewable(tenant, access)
            .filter(account_id=case.account_id)
            .exclude(pk=case.pk)
            .order_by("-created_at", "-pk")[:HISTORY_LIMIT]
        ),
        alerts=list(_alerts_on_account(tenant, case)[:ALERT_LIMIT]),
        failed_notices=list(
            OwnerNotice.objects.for_tenant(tenant)
            .filter(case=case, status=NoticeStatus.FAILED)
            .order_by("created_at", "pk")
        ),
        recent_contacts=list(
            ContactMethod.objects.for_tenant(tenant)
            .filter(changed, account_id=case.account_id)
            .order_by("-registered_at", "pk")
        ),
        timeline=case_timeline(tenant=tenant, case=case),
    )

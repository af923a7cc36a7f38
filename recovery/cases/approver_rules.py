"""Who may not approve a case, and whose approval no longer counts (R-21, R-62).

Each exclusion is one SQL condition over `RecoveryCase` for one person: the approval queue
excludes the cases it matches, and the approval service refuses a case it matches (the same
condition, evaluated for that one case), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet

from tenants.access import TenantAccess
from tenants.models import Tenant
from tenants.policies import can_work_case_type, can_work_tier

from ..challenges.models import VerificationChallenge
from ..models import ProtectedAccount
from ..owner.models import IdpSignIn, OwnerConfirmation, RecoveryCodeCheck
from ..policy.floors import APPROVER_ROLES
from ..proofing.models import AttendedSession, ProofingSession
from .choices import EvidenceResult
from .models import Approval, Evidence, RecoveryCase


@dataclass(frozen=True)
class Exclusion:
    """A rule that keeps a person from approving a case: its code, its sentence, its SQL."""

    code: str
    detail: str
    condition: Callable[[Tenant, UUID], Q]

    def cases(self, tenant: Tenant, person: UUID) -> Q:
        """The cases of `tenant` this rule keeps `person` from approving, as SQL."""
        return self.condition(tenant, person)


def _subject_or_delegate(tenant: Tenant, person: UUID) -> Q:
    """The person is the subject, or on either side of a delegation with the subject.

    `ProtectedAccount.delegations` lists the accounts that delegate *to* an account. The
    person's own accounts (`person_id`) match a case's subject when the subject's list names one
    of them (they delegate to the subject) or one of their lists names the subject (the subject
    delegates to them: they are the subject's delegate).
    """
    own = list(
        ProtectedAccount.objects.for_tenant(tenant)
        .filter(person_id=person)
        .values_list("external_id", "delegations")
    )
    condition = Q(account__person_id=person)
    own_ids = [external_id for external_id, _ in own]
    if own_ids:
        condition |= Q(account__delegations__has_any_keys=own_ids)
    delegated_to_them = sorted(
        {str(item) for _, delegations in own for item in (delegations or []) if item}
    )
    if delegated_to_them:
        condition |= Q(account__external_id__in=delegated_to_them)
    return condition


def _collector(tenant: Tenant, person: UUID) -> Q:
    """The person gathered any of the case's evidence, or worked it.

    The collector of an accepted or rejected verifier row, whoever asked a verifier for a
    check on the case (a code, an attestation, a proofing or owner session, a recovery-code
    check), the referee of its attended sessions, and the person who took it.
    """
    case = OuterRef("pk")
    checks: list[QuerySet[Any]] = [
        Evidence.objects.for_tenant(tenant).filter(
            case=case,
            result__in=(EvidenceResult.ACCEPTED, EvidenceResult.REJECTED),
            collected_by__person_id=person,
        ),
        VerificationChallenge.objects.for_tenant(tenant).filter(
            case=case, requested_by__person_id=person
        ),
        ProofingSession.objects.for_tenant(tenant).filter(case=case, started_by__person_id=person),
        AttendedSession.objects.for_tenant(tenant).filter(case=case, referee_person=person),
        OwnerConfirmation.objects.for_tenant(tenant).filter(
            case=case, requested_by__person_id=person
        ),
        IdpSignIn.objects.for_tenant(tenant).filter(case=case, requested_by__person_id=person),
        RecoveryCodeCheck.objects.for_tenant(tenant).filter(
            case=case, checked_by__person_id=person
        ),
    ]
    condition = Q(taken_by__person_id=person)
    for rows in checks:
        condition |= Q(Exists(rows))
    return condition


SUBJECT_OR_DELEGATE = Exclusion(
    "sod.approver_is_subject",
    "The subject of a case, a delegate of the subject, or someone who delegates to the "
    "subject cannot approve it.",
    _subject_or_delegate,
)
EVIDENCE_COLLECTOR = Exclusion(
    "sod.evidence_collector",
    "You collected evidence for this case or worked it; another person must approve it.",
    _collector,
)
EXCLUSIONS = (SUBJECT_OR_DELEGATE, EVIDENCE_COLLECTOR)


def cases_excluding(
    cases: QuerySet[RecoveryCase], tenant: Tenant, person: UUID
) -> QuerySet[RecoveryCase]:
    """SQL form: `cases` without those `person` may not approve under these rules."""
    for rule in EXCLUSIONS:
        cases = cases.exclude(rule.cases(tenant, person))
    return cases


def exclusion_for(case: RecoveryCase, person: UUID) -> Exclusion | None:
    """For one case: the first rule that keeps `person` from approving it (one query, the
    same conditions the queue excludes by)."""
    matched = (
        RecoveryCase.objects.for_tenant(case.tenant)
        .filter(pk=case.pk)
        .annotate(
            **{
                f"rule_{n}": ExpressionWrapper(rule.cases(case.tenant, person), BooleanField())
                for n, rule in enumerate(EXCLUSIONS)
            }
        )
        .values_list(*(f"rule_{n}" for n in range(len(EXCLUSIONS))))
        .first()
    )
    for rule, hit in zip(EXCLUSIONS, matched or (), strict=False):
        if hit:
            return rule
    return None


# --- an approval counts only while its approver keeps the role it was given with --------


def approval_stands(approval: Approval, case: RecoveryCase, access: TenantAccess | None) -> bool:
    """Whether `approval` still counts: its approver (`access`, read now) still holds, in the
    tenant, every approving role they held when they decided, through a membership or a grant
    that covers the case's tier and type. Fails closed (no access, no approving role: no)."""
    if access is None:
        return False
    held = set(approval.roles) & APPROVER_ROLES
    if not held or not held <= access.roles:
        return False
    return bool(can_work_tier(access, case.tier)) and bool(
        can_work_case_type(access, case.case_type)
    )

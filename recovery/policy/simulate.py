"""Replaying past cases under a draft policy: which decisions would change, and why.

A simulation is a pure read. It stores nothing and writes no audit event: nothing changes, so
there is nothing to account for (storing the draft is `policy_draft_create`, which audits itself).
The draft is validated exactly as a draft is (`validation.validate`): an invalid one raises the
same PolicyInvalid, listing every problem with its line, path and rule.

Each case is compared with what actually happened under the policy it was decided under: its
recorded tier, route and status, its accepted evidence and its live approvals. A replay stops
where the draft would have stopped the case: a case whose evidence would be refused is not judged
on approvals, and one whose approvals would be incomplete is not judged on cooling-off.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput
from tenants.models import Tenant

from ..cases.access_rules import Shape, roles_may_decide
from ..cases.choices import CaseStatus, EvidenceResult, Route
from ..cases.choices import Decision as ApprovalDecision
from ..cases.models import Approval, Evidence, RecoveryCase
from .explain import duration, route_for
from .models import PolicyVersion
from .rules import Requirements, TenantPolicy, platform_default
from .validation import source_sha256, validate

KINDS = ("tier", "route", "evidence", "approval", "cooling_off")
# A case in one of these states (or with `submitted_at` set) passed its evidence check; one in
# APPROVED (or with `cooling_off_until` set, which only approval sets) completed its approvals.
PASSED_EVIDENCE = frozenset(
    {
        CaseStatus.PENDING_APPROVAL,
        CaseStatus.COOLING_OFF,
        CaseStatus.READY,
        CaseStatus.EXECUTED,
        CaseStatus.CLOSED,
        CaseStatus.REVERTED,
    }
)
APPROVED = PASSED_EVIDENCE - {CaseStatus.PENDING_APPROVAL}
NOTES = (
    "Tiers are recomputed from each account's attributes as they are now, not as they were when "
    "the case was opened.",
    "Evidence is the accepted signals as recorded; signals the old policy refused are not judged "
    "again. The repeat-attempt flag is kept as recorded.",
    "Approvals are the live approvals as recorded, counted only where the draft would have let "
    "that approver decide (approver roles; security officers only in the security queue); other "
    "separation-of-duties checks are not re-run.",
    "Cooling-off is compared with the period the case's own policy version set.",
)


@dataclass(frozen=True)
class Change:
    """One decision that would go differently, in plain words (`"route: standard → security"`)."""

    kind: str
    detail: str


@dataclass(frozen=True)
class CaseReplay:
    """A case with at least one decision that would change under the draft."""

    case_id: int
    account: str
    case_type: str
    status: str
    created_at: datetime
    decided_under: int
    changes: tuple[Change, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "account": self.account,
            "case_type": self.case_type,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "decided_under_policy_version": self.decided_under,
            "changes": [{"kind": c.kind, "detail": c.detail} for c in self.changes],
        }


@dataclass(frozen=True)
class SimulationReport:
    """What a draft would have changed over the cases opened since `window_start`."""

    tenant: str
    draft_sha256: str
    since_seconds: int
    window_start: datetime
    cases_replayed: int
    changed: tuple[CaseReplay, ...]
    notes: tuple[str, ...] = field(default=NOTES)

    @property
    def decisions_changed(self) -> int:
        return sum(len(case.changes) for case in self.changed)

    @property
    def by_kind(self) -> dict[str, int]:
        """Changed decisions per kind, every kind listed (zero included)."""
        counts = Counter(change.kind for case in self.changed for change in case.changes)
        return {kind: counts[kind] for kind in KINDS}

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "tenant": self.tenant,
            "draft_sha256": self.draft_sha256,
            "since_seconds": self.since_seconds,
            "window_start": self.window_start.isoformat(),
            "totals": {
                "cases_replayed": self.cases_replayed,
                "cases_changed": len(self.changed),
                "decisions_changed": self.decisions_changed,
                "by_kind": self.by_kind,
            },
            "cases": [case.as_dict() for case in self.changed],
            "notes": list(self.notes),
        }


def simulation_cases(tenant: Tenant, start: datetime) -> QuerySet[RecoveryCase]:
    """The tenant's cases opened since `start`, with what a replay reads, in three queries."""
    accepted = (
        Evidence.objects.for_tenant(tenant)
        .filter(result=EvidenceResult.ACCEPTED)
        .only("id", "case_id", "signal_class")
    )
    live = (
        Approval.objects.for_tenant(tenant)
        .filter(invalidated_at__isnull=True, decision=ApprovalDecision.APPROVED)
        .only("id", "case_id", "roles", "via_grant")
    )
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .filter(created_at__gte=start)
        .select_related("account")
        .prefetch_related(
            Prefetch("evidence", queryset=accepted, to_attr="accepted_evidence"),
            Prefetch("approvals", queryset=live, to_attr="live_approvals"),
        )
        .order_by("created_at", "pk")
    )


def policies_decided_under(tenant: Tenant, numbers: set[int]) -> dict[int, TenantPolicy]:
    """The policy versions the cases were opened under (0: the platform default), one query.

    Built from each version's stored document without re-checking today's floors: the question
    is what was in force then, even if a floor has been raised since.
    """
    policies = {0: platform_default()}
    versions = (
        PolicyVersion.objects.for_tenant(tenant)
        .filter(number__in=numbers - {0})
        .only("pk", "number", "document", "sha256")
    )
    for version in versions:
        policies[version.number] = TenantPolicy(
            document=version.document,
            number=version.number,
            sha256=version.sha256,
            version_id=version.pk,
        )
    missing = sorted(numbers - set(policies))
    if missing:
        raise DomainError(
            f"Cases refer to policy versions {missing} that do not exist.", code="policy.missing"
        )
    return policies


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('s') else 's'}"


def _evidence_terms(req: Requirements, had: set[str]) -> str:
    """`needs 2 classes, had 1 (S2)`, naming classes the draft would not count."""
    counted = sorted(had & set(req.accepted_classes))
    text = f"needs {_plural(req.min_signal_classes, 'class')}"
    if req.s4_alone_suffices:
        text += " (or S4 alone)"
    text += f", had {len(counted)}" + (f" ({', '.join(counted)})" if counted else "")
    ignored = sorted(had - set(req.accepted_classes))
    return text + (f"; not accepted: {', '.join(ignored)}" if ignored else "")


def _approval_terms(req: Requirements, case: RecoveryCase) -> str:
    """`2 approvals incl. 1 security_officer`, with the tenant-side rule when it applies."""
    text = _plural(req.approvals_required, "approval")
    if req.min_security_officer_approvals:
        text += f" incl. {req.min_security_officer_approvals} security_officer"
    if req.tenant_approver_required_when_msp and case.opened_via_provider_id:
        text += " (one by the tenant's own staff)"
    return text


def _approvals_suffice(
    req: Requirements, case: RecoveryCase, route: str, approvals: list[Approval]
) -> tuple[bool, int]:
    """Whether the recorded approvals meet the draft, and how many of them it would count.

    As `case_needs` in the case services, but an approval counts only if the draft would have
    let its approver decide: the approver-role rules of `access_rules.DECIDE` (approver roles;
    security officers in the security queue) for the approval's recorded roles.
    """
    shape = Shape(tier=case.tier, case_type=case.case_type, route=route)
    eligible = [
        a
        for a in approvals
        if roles_may_decide(frozenset(a.roles), shape, lambda tier, case_type: req)
    ]
    officers = [a for a in eligible if Role.SECURITY_OFFICER in a.roles]
    needs_tenant_side = req.tenant_approver_required_when_msp and case.opened_via_provider_id
    enough = (
        len(eligible) >= req.approvals_required
        and len(officers) >= req.min_security_officer_approvals
        and (not needs_tenant_side or any(not a.via_grant for a in eligible))
    )
    return enough, len(eligible)


def _cooling_off(req: Requirements, had: set[str]) -> int:
    return 0 if req.s5_waives_cooling_off and "S5" in had else req.cooling_off_seconds


def _wait(seconds: int) -> str:
    return duration(seconds) if seconds else "none"


def _tier_change(
    case: RecoveryCase, tier: str, reasons: list[str], decided_under: TenantPolicy
) -> Change:
    why = [r for r in reasons if r.endswith(f" -> {tier}")] or reasons[-1:]
    short = "; ".join(r.removeprefix("tier_rules.").rsplit(" -> ", 1)[0] for r in why)
    detail = f"tier: {case.tier} → {tier} ({short})"
    if decided_under.compute_tier(case.account)[0] == tier:
        detail += f"; the account changed since: policy v{decided_under.number} gives {tier} too"
    return Change("tier", detail)


def _replay(case: RecoveryCase, draft: TenantPolicy, decided_under: TenantPolicy) -> list[Change]:
    """The decisions on `case` that would go differently under `draft`."""
    changes: list[Change] = []
    tier, reasons = draft.compute_tier(case.account)
    if tier != case.tier:
        changes.append(_tier_change(case, tier, reasons, decided_under))
    route = route_for(case.account, tier, case.case_type)[0]
    route = Route.SECURITY if case.repeat_attempt else route
    if route != case.route:
        changes.append(Change("route", f"route: {case.route} → {route}"))

    req = draft.requirements(tier, case.case_type)
    was = decided_under.requirements(case.tier, case.case_type)
    had = {evidence.signal_class for evidence in case.accepted_evidence}
    passed = case.submitted_at is not None or case.status in PASSED_EVIDENCE
    if not passed:
        if req.evidence_met(had) and not was.evidence_met(had):
            terms = _evidence_terms(req, had)
            changes.append(Change("evidence", f"evidence: would now be enough — {terms}"))
        return changes
    if not req.evidence_met(had):
        terms = _evidence_terms(req, had)
        changes.append(Change("evidence", f"evidence: would be refused — {terms}"))
        return changes

    approvals = case.live_approvals
    enough, counted = _approvals_suffice(req, case, route, approvals)
    approved = case.cooling_off_until is not None or case.status in APPROVED
    if approved and not enough:
        recorded = f"had {len(approvals)}"
        if req.min_security_officer_approvals:
            officers = sum(Role.SECURITY_OFFICER in a.roles for a in approvals)
            recorded += f" incl. {officers} security_officer"
        if counted != len(approvals):
            recorded += f" ({counted} by approvers the draft allows)"
        terms = _approval_terms(req, case)
        changes.append(Change("approval", f"approval: would need {terms}, {recorded}"))
    elif case.status == CaseStatus.PENDING_APPROVAL and enough:
        terms = _approval_terms(req, case)
        changes.append(
            Change("approval", f"approval: would be complete — needs {terms}, has {counted}")
        )
    if approved and enough:
        before, after = _cooling_off(was, had), _cooling_off(req, had)
        if before != after:
            changes.append(Change("cooling_off", f"cooling-off: {_wait(before)} → {_wait(after)}"))
    return changes


def simulation_window(since: timedelta) -> datetime:
    """When a replay window reaching `since` back from now starts (InvalidInput unless positive)."""
    if since <= timedelta(0):
        raise InvalidInput("The replay window must be positive.", code="simulate.since_invalid")
    return timezone.now() - since


def simulation_draft(draft_text: str) -> TenantPolicy:
    """The draft to replay under, validated exactly as a stored draft is (else PolicyInvalid)."""
    return TenantPolicy(
        document=validate(draft_text).data, number=0, sha256=source_sha256(draft_text)
    )


def replay_cases(
    *, tenant: Tenant, draft: TenantPolicy, cases: list[RecoveryCase]
) -> list[CaseReplay]:
    """The cases (read with `simulation_cases`) with a decision that would change under `draft`.

    Reads at most one query (the policy versions the cases were decided under), so a long
    replay can go chunk by chunk, each in a short transaction of its own.
    """
    decided_under = policies_decided_under(tenant, {case.policy_version for case in cases})
    changed = []
    for case in cases:
        changes = _replay(case, draft, decided_under[case.policy_version])
        if changes:
            changed.append(
                CaseReplay(
                    case_id=case.pk,
                    account=case.account.external_id,
                    case_type=case.case_type,
                    status=case.status,
                    created_at=case.created_at,
                    decided_under=case.policy_version,
                    changes=tuple(changes),
                )
            )
    return changed


def policy_simulate(*, tenant: Tenant, draft_text: str, since: timedelta) -> SimulationReport:
    """Replay the tenant's cases opened within `since` under the draft `draft_text`.

    Raises PolicyInvalid (every error with line, path and rule) for a draft that would not be
    stored, and InvalidInput for a non-positive `since`. Reads a constant number of queries
    whatever the number of cases; writes nothing.
    """
    start = simulation_window(since)
    draft = simulation_draft(draft_text)
    cases = list(simulation_cases(tenant, start))
    return SimulationReport(
        tenant=tenant.slug,
        draft_sha256=draft.sha256,
        since_seconds=int(since.total_seconds()),
        window_start=start,
        cases_replayed=len(cases),
        changed=tuple(replay_cases(tenant=tenant, draft=draft, cases=cases)),
    )

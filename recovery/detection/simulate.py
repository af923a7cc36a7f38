"""Replaying the case-open detection rules over past cases (issue 16 part 3).

For each of the tenant's cases opened in the window, the rules `findings_at_open` evaluates are
decided again by the same code (`rules.findings_in`), as they stood when the case opened: only
the cases, events, caller identifiers and watch-list entries recorded before its opened time
count, under the thresholds of the policy version it was opened under, or under the overrides
given (each checked against its platform floor, `recovery.policy.floors`).

Per rule the report says on how many cases it would fire, on how many of those it did raise its
alert at the time (the recorded `alert.raised` events), on how many it raised one that it would
not raise now, and how many per day; with a bounded list of example cases and their facts.

A simulation is a pure read, like the policy's (`recovery.policy.simulate`): it stores nothing,
raises no alert and writes no audit event. The cases are read chunk by chunk, each chunk in a
constant number of queries however many cases it holds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from audit.selectors import alert_list
from integrations.models import IngestedEvent
from tenants.exceptions import InvalidInput
from tenants.models import Tenant

from ..cases.choices import ABANDONED_STATUSES
from ..cases.models import RecoveryCase
from ..cases.selectors import CASE_LABEL
from ..policy.floors import CEILINGS, MINIMUMS
from ..policy.rules import Requirements
from ..policy.simulate import policies_decided_under
from .choices import CallerKind
from .identifiers import CallerValue
from .models import CallerIdentifier, WatchedCaller
from .rules import (
    CALLER_SEEN_FIELDS,
    MFA_TROUBLE,
    RULES,
    RULESET_VERSION,
    Burst,
    CallerSeen,
    EarlierCase,
    Finding,
    History,
    Watched,
    findings_in,
)

# The rules evaluated when a case opens, in `findings_at_open`'s order. The others are decided
# elsewhere (`fast_decision` at each approval, `new_network_after_recovery` at ingest).
SIMULATED_RULES = (
    "repeat_case",
    "after_denial",
    "push_denial_before_call",
    "watchlisted_caller",
    "caller_reuse",
)
THRESHOLDS = tuple(
    dict.fromkeys(name for rule in SIMULATED_RULES for name in RULES[rule].thresholds)
)
CHUNK_SIZE = 200  # cases replayed per chunk (per transaction in the console job)
EXAMPLE_LIMIT = 50  # example (case, rule) pairs in a report
NOTES = (
    "Only what was recorded before each case opened counts: later cases, events received later "
    "and later watch-list entries are left out. A case's status is as it is now, with the time "
    "it ended.",
    "Thresholds are those of the policy version each case was opened under, for the tier it "
    "has, unless an override is given.",
    "fast_decision (at each approval) and new_network_after_recovery (when an event arrives) "
    "are not replayed.",
)


def thresholds_checked(overrides: Mapping[str, Any]) -> dict[str, int]:
    """The overrides as whole numbers, each a threshold of a replayed rule and no weaker than
    its platform floor (or ceiling); InvalidInput naming the first one refused, else."""
    checked = {}
    for name, value in overrides.items():
        if name not in THRESHOLDS:
            raise InvalidInput(
                f"{name!r} is not a threshold of the replayed rules ({', '.join(THRESHOLDS)}).",
                code="detection.threshold_unknown",
                field_errors={"overrides": [f"Unknown threshold {name!r}."]},
            )
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidInput(
                f"{name} must be a positive whole number, not {value!r}.",
                code="detection.threshold_invalid",
                field_errors={"overrides": [f"{name}: a positive whole number."]},
            )
        if (refusal := _floor_refusal(name, value)) is not None:
            raise InvalidInput(
                refusal,
                code="detection.threshold_below_floor",
                field_errors={"overrides": [refusal]},
            )
        checked[name] = value
    return checked


def _floor_refusal(name: str, value: int) -> str | None:
    """Why `value` is weaker than the platform floor of threshold `name` (None: it is not).
    Most floors are minimums; `caller_reuse_subjects`'s is a ceiling (fewer is stricter)."""
    bounds = [(*bound, "at least") for bound in MINIMUMS] + [(*b, "at most") for b in CEILINGS]
    for rule, path, bound, why, limit in bounds:
        weaker = value < bound if limit == "at least" else value > bound
        if path == (name,) and weaker:
            return f"{name} is {value}, must be {limit} {bound}. {why} [{rule}]"
    return None


@dataclass(frozen=True)
class CaseOutcome:
    """One replayed case: the rules that would fire on it now and those that did then."""

    case_id: int
    account: str
    opened_at: datetime
    findings: tuple[Finding, ...]
    raised: frozenset[str]

    def fires(self, rule: str) -> Finding | None:
        return next((finding for finding in self.findings if finding.rule == rule), None)


@dataclass
class RuleTally:
    would_fire: int = 0
    raised_then: int = 0
    both: int = 0
    fire_days: Counter[date] = field(default_factory=Counter)
    raised_days: Counter[date] = field(default_factory=Counter)


@dataclass
class Tally:
    """Outcomes summed chunk by chunk, so a long replay keeps only its counts and examples."""

    rules: dict[str, RuleTally] = field(
        default_factory=lambda: {rule: RuleTally() for rule in SIMULATED_RULES}
    )
    cases: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    examples_total: int = 0

    def add(self, outcomes: Iterable[CaseOutcome]) -> None:
        for outcome in outcomes:
            self.cases += 1
            day = outcome.opened_at.astimezone(UTC).date()
            for rule, tally in self.rules.items():
                finding, raised = outcome.fires(rule), rule in outcome.raised
                tally.would_fire += finding is not None
                tally.raised_then += raised
                tally.both += finding is not None and raised
                tally.fire_days[day] += finding is not None
                tally.raised_days[day] += raised
                if finding is not None or raised:
                    self._example(outcome, rule, finding, raised)

    def _example(
        self, outcome: CaseOutcome, rule: str, finding: Finding | None, raised: bool
    ) -> None:
        self.examples_total += 1
        if len(self.examples) < EXAMPLE_LIMIT:
            self.examples.append(
                {
                    "case_id": outcome.case_id,
                    "account": outcome.account,
                    "opened_at": outcome.opened_at.isoformat(),
                    "rule": rule,
                    "would_fire": finding is not None,
                    "raised_then": raised,
                    "facts": finding.facts if finding else {},
                    "linked_cases": [pk for pk, _ in finding.linked] if finding else [],
                }
            )


@dataclass(frozen=True)
class DetectionReport:
    """What the case-open rules would have done over the cases opened since `window_start`."""

    tenant: str
    since_days: int
    window_start: datetime
    window_end: datetime
    overrides: dict[str, int]
    tally: Tally

    def days(self) -> list[date]:
        first = self.window_start.astimezone(UTC).date()
        last = self.window_end.astimezone(UTC).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; per-day counts are aligned with `days` (UTC dates)."""
        days = self.days()
        return {
            "tenant": self.tenant,
            "ruleset": RULESET_VERSION,
            "since_days": self.since_days,
            "window_start": self.window_start.isoformat(),
            "overrides": dict(self.overrides),
            "cases_replayed": self.tally.cases,
            "days": [day.isoformat() for day in days],
            "rules": [
                {
                    "rule": name,
                    "requirement": RULES[name].requirement,
                    "description": str(RULES[name].description),
                    "thresholds": list(RULES[name].thresholds),
                    "would_fire": tally.would_fire,
                    "raised_then": tally.raised_then,
                    "would_fire_and_raised_then": tally.both,
                    "would_fire_not_raised_then": tally.would_fire - tally.both,
                    "raised_then_would_not_fire": tally.raised_then - tally.both,
                    "per_day": [tally.fire_days[day] for day in days],
                    "raised_per_day": [tally.raised_days[day] for day in days],
                }
                for name, tally in self.tally.rules.items()
            ],
            "examples": self.tally.examples,
            "examples_total": self.tally.examples_total,
            "notes": list(NOTES),
        }


def simulation_window(days: int) -> datetime:
    """When a replay of the last `days` days starts (InvalidInput unless positive)."""
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise InvalidInput(
            "The replay window must be a positive number of days.", code="simulate.since_invalid"
        )
    return timezone.now() - timedelta(days=days)


def simulation_case_ids(tenant: Tenant, start: datetime) -> list[int]:
    """The tenant's cases opened since `start`, oldest first (one query)."""
    return list(
        RecoveryCase.objects.for_tenant(tenant)
        .filter(created_at__gte=start)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class _Case:
    pk: int
    account_id: int
    account: str
    created_at: datetime
    tier: str
    case_type: str
    policy_version: int


def _grouped(rows: Iterable[tuple], make: Callable[..., Any]) -> dict[Any, list]:
    """Rows `(key, *fields)` as `{key: [make(*fields), ...]}`."""
    grouped: dict[Any, list] = defaultdict(list)
    for key, *fields in rows:
        grouped[key].append(make(*fields))
    return grouped


def replay_chunk(
    *, tenant: Tenant, case_ids: list[int], overrides: Mapping[str, int]
) -> list[CaseOutcome]:
    """The outcomes of the cases `case_ids` (checked `overrides` applied): at most eight
    queries for the chunk, however many cases it holds."""
    cases = [
        _Case(*row)
        for row in RecoveryCase.objects.for_tenant(tenant)
        .filter(pk__in=case_ids)
        .order_by("created_at", "pk")
        .values_list(
            "pk",
            "account_id",
            "account__external_id",
            "created_at",
            "tier",
            "case_type",
            "policy_version",
        )
    ]
    if not cases:
        return []
    policies = policies_decided_under(tenant, {case.policy_version for case in cases})
    requirements: dict[tuple[int, str, str], Requirements] = {}
    for case in cases:
        key = (case.policy_version, case.tier, case.case_type)
        if key not in requirements:
            req = policies[case.policy_version].requirements(case.tier, case.case_type)
            requirements[key] = replace(req, **overrides)
    callers = _grouped(
        CallerIdentifier.objects.for_tenant(tenant)
        .filter(case_id__in=[case.pk for case in cases])
        .values_list("case_id", "kind", "digest", "hint"),
        CallerValue,
    )
    reqs = requirements.values()
    history = _chunk_history(tenant, cases, reqs, [c for cs in callers.values() for c in cs])
    raised = _grouped(
        alert_list(tenant=tenant)
        .filter(target_type=CASE_LABEL, target_id__in=[str(case.pk) for case in cases])
        .filter(data__type__in=SIMULATED_RULES)
        .values_list("target_id", "data__type"),
        str,
    )
    outcomes = []
    for case in cases:
        case_callers = callers.get(case.pk, [])
        keys = {(caller.kind, caller.digest) for caller in case_callers}
        case_history = History(
            earlier=history.earlier.get(case.account_id, []),
            bursts=history.bursts.get(case.account_id, []),
            watched=[row for key in keys for row in history.watched.get(key, [])],
            seen=[row for key in keys for row in history.seen.get(key, [])],
        )
        findings = findings_in(
            case_history,
            account_id=case.account_id,
            req=requirements[(case.policy_version, case.tier, case.case_type)],
            callers=case_callers,
            now=case.created_at,
            before=case.created_at,
        )
        outcomes.append(
            CaseOutcome(
                case_id=case.pk,
                account=case.account,
                opened_at=case.created_at,
                findings=tuple(findings),
                raised=frozenset(raised.get(str(case.pk), [])),
            )
        )
    return outcomes


def _by_identifier(rows: Iterable[tuple], make: Callable[..., Any]) -> dict[Any, list]:
    """Rows starting `(kind, digest, ...)` as `{(kind, digest): [make(*row), ...]}`."""
    return _grouped((((row[0], row[1]), *row) for row in rows), make)


@dataclass(frozen=True)
class _ChunkHistory:
    earlier: dict[int, list[EarlierCase]]  # by account
    bursts: dict[int, list[Burst]]  # by account
    watched: dict[tuple[str, str], list[Watched]]  # by (kind, digest)
    seen: dict[tuple[str, str], list[CallerSeen]]  # by (kind, digest)


def _chunk_history(
    tenant: Tenant,
    cases: list[_Case],
    reqs: Iterable[Requirements],
    callers: list[CallerValue],
) -> _ChunkHistory:
    """Everything the rules could read for any case of the chunk, in at most four queries: the
    widest window of any case; `findings_in` keeps, per case, what it would have read."""
    reqs = list(reqs)
    first = min(case.created_at for case in cases)
    last = max(case.created_at for case in cases)

    def reach(name: str) -> datetime:
        return first - timedelta(seconds=max(getattr(req, name) for req in reqs))

    accounts = {case.account_id for case in cases}
    earlier = _grouped(
        RecoveryCase.objects.for_tenant(tenant)
        .filter(account_id__in=accounts)
        .filter(
            Q(created_at__gte=reach("repeat_case_window_seconds"), created_at__lt=last)
            | Q(
                status__in=ABANDONED_STATUSES,
                ended_at__gte=reach("repeat_after_denial_window_seconds"),
                ended_at__lt=last,
            )
        )
        .values_list("account_id", "pk", "correlation_id", "created_at", "status", "ended_at"),
        EarlierCase,
    )
    bursts = _grouped(
        IngestedEvent.objects.for_tenant(tenant)
        .filter(
            account_id__in=accounts,
            event_type__in=MFA_TROUBLE,
            occurred_at__gte=reach("push_denial_lookback_seconds"),
            occurred_at__lte=last,
        )
        .values_list("account_id", "occurred_at", "source", "received_at", "event_type"),
        Burst,
    )
    watched: dict[tuple[str, str], list[Watched]] = {}
    seen: dict[tuple[str, str], list[CallerSeen]] = {}
    if callers:
        same = Q(
            kind__in={caller.kind for caller in callers},
            digest__in={caller.digest for caller in callers},
        )
        watched = _by_identifier(
            WatchedCaller.objects.for_tenant(tenant)
            .filter(same, flagged_at__lt=last)
            .values_list("kind", "digest", "hint", "case_id", "flagged_at"),
            Watched,
        )
        seen = _by_identifier(
            CallerIdentifier.objects.for_tenant(tenant)
            .filter(same, created_at__gte=reach("caller_reuse_window_seconds"), created_at__lt=last)
            .exclude(kind=CallerKind.NAME)
            .values_list(*CALLER_SEEN_FIELDS),
            CallerSeen,
        )
    return _ChunkHistory(earlier=earlier, bursts=bursts, watched=watched, seen=seen)


def detection_simulate(
    *, tenant: Tenant, days: int, overrides: Mapping[str, Any] | None = None
) -> DetectionReport:
    """Replay the case-open rules over the tenant's cases of the last `days` days.

    InvalidInput for a non-positive `days` or a refused override (`thresholds_checked`). Reads a
    constant number of queries per chunk of CHUNK_SIZE cases; writes nothing.
    """
    checked = thresholds_checked(overrides or {})
    start = simulation_window(days)
    ids = simulation_case_ids(tenant, start)
    tally = Tally()
    for offset in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[offset : offset + CHUNK_SIZE]
        tally.add(replay_chunk(tenant=tenant, case_ids=chunk, overrides=checked))
    return DetectionReport(
        tenant=tenant.slug,
        since_days=days,
        window_start=start,
        window_end=timezone.now(),
        overrides=checked,
        tally=tally,
    )

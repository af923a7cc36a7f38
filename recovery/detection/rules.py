"""Detection rules as code (issue 16 part 2): what each rule reads, its thresholds (policy
values with floors, recovery/policy/floors.py), the alert it raises and the response.

`findings_at_open` evaluates every rule that looks at a case as it opens, in a fixed number of
queries however long the tenant's history. `case_open` applies the responses (reroute, raise
the tier) before the case is written, then raises one `alert.raised` per finding naming the rule,
the rule set's version and the facts it fired on, with the case's `correlation_id`. docs/
detection.md describes each rule; change it with the rules and bump RULESET_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from django.db.models import Q

from integrations.choices import IngestEventType
from integrations.models import IngestedEvent
from tenants.choices import Tier

from ..cases.choices import ABANDONED_STATUSES
from ..cases.models import RecoveryCase
from ..models import ProtectedAccount
from ..policy.rules import Requirements
from .choices import CallerKind
from .identifiers import CallerValue
from .models import CallerIdentifier, ReviewOpened, WatchedCaller

RULESET_VERSION = 1
TIER_ORDER = (Tier.T0, Tier.T1, Tier.T2)
LINKED_LIMIT = 20  # linked cases named in one alert


class Response(StrEnum):
    REROUTE = "reroute"  # the case opens in the security queue
    RAISE_TIER = "raise_tier"  # one tier up (T2 at most)
    RAISE_TO_T2 = "raise_to_t2"  # T2 handling


@dataclass(frozen=True)
class Rule:
    name: str
    requirement: str
    description: str
    reads: str
    thresholds: tuple[str, ...]
    responses: tuple[Response, ...]


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "repeat_case",
            "R-52",
            "Another case on the same account within the window, whoever opened it, through "
            "any channel, agent or delivery centre.",
            "the account's earlier cases",
            ("repeat_case_window_seconds",),
            (Response.REROUTE,),
        ),
        Rule(
            "after_denial",
            "R-52",
            "A case on an account whose earlier case was denied, cancelled or expired within "
            "the window.",
            "the account's earlier cases",
            ("repeat_after_denial_window_seconds",),
            (Response.REROUTE,),
        ),
        Rule(
            "push_denial_before_call",
            "R-55 (e)",
            "The account's identity provider reported a burst of denied MFA pushes shortly "
            "before the case: push-bombing first, then a call about 'broken MFA'.",
            "ingested push_denied_burst events of the account",
            ("push_denial_lookback_seconds",),
            (Response.RAISE_TO_T2, Response.REROUTE),
        ),
        Rule(
            "caller_reuse",
            "R-55 (d)",
            "One inbound number, email address or chat handle on cases for several subjects "
            "within the window: one caller working through several accounts. (A given name "
            "alone is too common to count; the watch-list takes names.)",
            "caller identifiers of the tenant's recent cases (keyed hashes)",
            ("caller_reuse_window_seconds", "caller_reuse_subjects"),
            (Response.REROUTE,),
        ),
        Rule(
            "new_network_after_recovery",
            "R-55 (c)",
            "The identity provider reported a sign-in from a network (ASN) the account had not "
            "used before, inside the re-establishment window of a recovery: the first use after "
            "a recovery, from somewhere new.",
            "ingested sign_in_new_asn events; the account's re-establishment window",
            ("reestablishment_window_seconds",),
            (),
        ),
        Rule(
            "fast_decision",
            "R-26",
            "An approver approved or denied a case within seconds of first opening its review "
            "page: the evidence cannot have been looked at.",
            "when the approver first opened the case's review page",
            ("min_review_seconds",),
            (),
        ),
        Rule(
            "watchlisted_caller",
            "R-56",
            "A caller identifier an agent flagged as suspicious on an earlier case.",
            "the tenant's watch-list (keyed hashes)",
            (),
            (Response.RAISE_TIER,),
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One rule that fired, on which facts, linking which earlier cases."""

    rule: str
    facts: dict[str, Any]
    linked: tuple[tuple[int, UUID], ...] = field(default=())  # (case id, correlation id)

    @property
    def responses(self) -> tuple[Response, ...]:
        return RULES[self.rule].responses

    def alert_data(self, correlation_id: UUID) -> dict[str, Any]:
        rule = RULES[self.rule]
        return {
            "rule": rule.name,
            "requirement": rule.requirement,
            "ruleset": RULESET_VERSION,
            "facts": self.facts,
            "linked_cases": [pk for pk, _ in self.linked[:LINKED_LIMIT]],
            "correlation_id": str(correlation_id),
        }


def findings_at_open(
    *,
    account: ProtectedAccount,
    req: Requirements,
    callers: list[CallerValue],
    now: datetime,
) -> list[Finding]:
    """Every rule that fires on a case about to open on `account`: at most four queries."""
    findings = _repeat_findings(account, req, now)
    findings += _push_denial_findings(account, req, now)
    if callers:
        findings += _caller_findings(account, req, callers, now)
    return findings


def _repeat_findings(account: ProtectedAccount, req: Requirements, now: datetime) -> list[Finding]:
    recent_since = now - timedelta(seconds=req.repeat_case_window_seconds)
    denial_since = now - timedelta(seconds=req.repeat_after_denial_window_seconds)
    earlier = (
        RecoveryCase.objects.for_tenant(account.tenant)
        .filter(account=account)
        .filter(
            Q(created_at__gte=recent_since)
            | Q(status__in=ABANDONED_STATUSES, ended_at__gte=denial_since)
        )
        .order_by("pk")
        .values_list("pk", "correlation_id", "created_at", "status", "ended_at")[:LINKED_LIMIT]
    )
    rows = list(earlier)
    findings = []
    recent = [row for row in rows if row[2] >= recent_since]
    if recent:
        findings.append(
            Finding(
                "repeat_case",
                {"earlier_cases": len(recent), "window_seconds": req.repeat_case_window_seconds},
                tuple((pk, corr) for pk, corr, *_ in recent),
            )
        )
    denied = [
        row for row in rows if row[3] in ABANDONED_STATUSES and row[4] and row[4] >= denial_since
    ]
    if denied:
        findings.append(
            Finding(
                "after_denial",
                {
                    "ended_cases": [
                        {"case": pk, "status": status} for pk, _, _, status, _ in denied
                    ],
                    "window_seconds": req.repeat_after_denial_window_seconds,
                },
                tuple((pk, corr) for pk, corr, *_ in denied),
            )
        )
    return findings


def _push_denial_findings(
    account: ProtectedAccount, req: Requirements, now: datetime
) -> list[Finding]:
    since = now - timedelta(seconds=req.push_denial_lookback_seconds)
    burst = (
        IngestedEvent.objects.for_tenant(account.tenant)
        .filter(
            account=account,
            event_type=IngestEventType.PUSH_DENIED_BURST,
            occurred_at__gte=since,
            occurred_at__lte=now,
        )
        .order_by("-occurred_at")
        .values_list("occurred_at", "source")
        .first()
    )
    if burst is None:
        return []
    occurred_at, source = burst
    facts = {
        "burst_at": occurred_at.isoformat(),
        "source": source,
        "lookback_seconds": req.push_denial_lookback_seconds,
    }
    return [Finding("push_denial_before_call", facts)]


def _caller_findings(
    account: ProtectedAccount, req: Requirements, callers: list[CallerValue], now: datetime
) -> list[Finding]:
    tenant = account.tenant
    matches = Q(pk__in=[])
    for caller in callers:
        matches |= Q(kind=caller.kind, digest=caller.digest)
    findings = []
    watched = list(
        WatchedCaller.objects.for_tenant(tenant)
        .filter(matches)
        .values_list("kind", "hint", "case_id")
    )
    if watched:
        facts = {
            "watched": [
                {"kind": kind, "hint": hint, "flagged_on_case": case}
                for kind, hint, case in watched
            ]
        }
        findings.append(Finding("watchlisted_caller", facts))
    since = now - timedelta(seconds=req.caller_reuse_window_seconds)
    others = list(
        CallerIdentifier.objects.for_tenant(tenant)
        .filter(matches, created_at__gte=since)
        .exclude(kind=CallerKind.NAME)
        .exclude(case__account=account)
        .order_by("case_id")
        .values_list("kind", "hint", "case_id", "case__account_id", "case__correlation_id")[:200]
    )
    subjects = {row[3] for row in others} | {account.pk}
    if len(subjects) >= req.caller_reuse_subjects:
        shared = sorted({(kind, hint) for kind, hint, *_ in others})
        facts = {
            "identifiers": [{"kind": kind, "hint": hint} for kind, hint in shared],
            "subjects": len(subjects),
            "window_seconds": req.caller_reuse_window_seconds,
        }
        linked = tuple(dict.fromkeys((case, corr) for _, _, case, _, corr in others))
        findings.append(Finding("caller_reuse", facts, linked))
    return findings


def fast_decision_finding(
    *, case: RecoveryCase, approver_id: int, decided_at: datetime, req: Requirements
) -> Finding | None:
    """`fast_decision` when the approver decided `case` under `min_review_seconds` after first
    opening its review page (one query). A decision with no opening recorded (over the API)
    is not measured."""
    opened = (
        ReviewOpened.objects.for_tenant(case.tenant)
        .filter(case=case, reviewer_id=approver_id)
        .values_list("first_opened_at", flat=True)
        .first()
    )
    if opened is None:
        return None
    seconds = (decided_at - opened).total_seconds()
    if seconds >= req.min_review_seconds:
        return None
    facts = {"seconds": round(seconds, 1), "min_review_seconds": req.min_review_seconds}
    return Finding("fast_decision", facts)


def tier_after(tier: str, findings: list[Finding]) -> str:
    """The tier the responses leave: one up per RAISE_TIER finding at most once, T2 for
    RAISE_TO_T2; never lower than computed."""
    responses = {response for finding in findings for response in finding.responses}
    index = TIER_ORDER.index(tier)
    if Response.RAISE_TIER in responses:
        index = min(index + 1, len(TIER_ORDER) - 1)
    if Response.RAISE_TO_T2 in responses:
        index = len(TIER_ORDER) - 1
    return TIER_ORDER[index]


def correlation_of(findings: list[Finding]) -> UUID | None:
    """The correlation id of the earliest case a finding links, if any."""
    linked = sorted(pair for finding in findings for pair in finding.linked)
    return linked[0][1] if linked else None

"""Detection rules as code (issue 16 part 2): what each rule reads, its thresholds (policy
values with floors, recovery/policy/floors.py), the alert it raises and the response.

`findings_at_open` evaluates every rule that looks at a case as it opens, in one query however
long the tenant's history. `case_open` applies the responses (reroute, raise the tier) before
the case is written, then raises one `alert.raised` per finding naming the rule, the rule set's
version and the facts it fired on, with the case's `correlation_id`. docs/detection.md
describes each rule; change it with the rules and bump RULESET_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils.translation import gettext_lazy as _

from integrations.choices import IngestEventType
from tenants.choices import Tier

from ..cases.choices import ABANDONED_STATUSES
from ..cases.models import RecoveryCase
from ..models import ProtectedAccount
from ..policy.rules import Requirements
from .choices import CallerKind
from .identifiers import CallerValue
from .models import ReviewOpened

RULESET_VERSION = 2
# What the push-denial rule reads (R-55 (e)): a burst of denied pushes, or an "MFA not working"
# report (self-service or a ticket), before the call.
MFA_TROUBLE = (str(IngestEventType.PUSH_DENIED_BURST), str(IngestEventType.MFA_TROUBLE_REPORTED))
TIER_ORDER = (Tier.T0, Tier.T1, Tier.T2)
LINKED_LIMIT = 20  # linked cases named in one alert
REUSE_LIMIT = 200  # other cases' identifiers read for caller_reuse
CALLER_SEEN_FIELDS = (
    "kind",
    "digest",
    "hint",
    "case_id",
    "case__account_id",
    "case__correlation_id",
    "created_at",
)


class Response(StrEnum):
    REROUTE = "reroute"  # the case opens in the security queue
    RAISE_TIER = "raise_tier"  # one tier up (T2 at most)
    RAISE_TO_T2 = "raise_to_t2"  # T2 handling


@dataclass(frozen=True)
class Rule:
    name: str
    requirement: str
    description: str  # lazily translated
    reads: str
    thresholds: tuple[str, ...]
    responses: tuple[Response, ...]


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "repeat_case",
            "R-52",
            _(
                "Another case on the same account within the window, whoever opened it, through "
                "any channel, agent or delivery centre."
            ),
            "the account's earlier cases",
            ("repeat_case_window_seconds",),
            (Response.REROUTE,),
        ),
        Rule(
            "after_denial",
            "R-52",
            _(
                "A case on an account whose earlier case was denied, cancelled or expired within "
                "the window."
            ),
            "the account's earlier cases",
            ("repeat_after_denial_window_seconds",),
            (Response.REROUTE,),
        ),
        Rule(
            "push_denial_before_call",
            "R-55 (e)",
            _(
                "The account's identity provider reported a burst of denied MFA pushes, or "
                "someone reported its MFA as not working, shortly before the case: push-bombing "
                "or a ticket first, then a call about 'broken MFA'."
            ),
            "ingested push_denied_burst and mfa_trouble_reported events of the account",
            ("push_denial_lookback_seconds",),
            (Response.RAISE_TO_T2, Response.REROUTE),
        ),
        Rule(
            "caller_reuse",
            "R-55 (d)",
            _(
                "One inbound number, email address or chat handle on cases for several subjects "
                "within the window: one caller working through several accounts. (A given name "
                "alone is too common to count; the watch-list takes names.)"
            ),
            "caller identifiers of the tenant's recent cases (keyed hashes)",
            ("caller_reuse_window_seconds", "caller_reuse_subjects"),
            (Response.REROUTE,),
        ),
        Rule(
            "new_network_after_recovery",
            "R-55 (c)",
            _(
                "The identity provider reported a sign-in from a network (ASN) the account had "
                "not used before, or through an anonymizing proxy or a residential VPN range, "
                "inside the re-establishment window of a recovery: the first use after a "
                "recovery, from somewhere new or hidden."
            ),
            "ingested sign_in_new_asn and sign_in_anonymized events; the account's "
            "re-establishment window",
            ("reestablishment_window_seconds",),
            (),
        ),
        Rule(
            "admin_access_after_mfa_reset",
            "R-55 (a)",
            _(
                "The account opened an admin console or was granted an admin role within 24 "
                "hours of an MFA reset: the pattern of a help-desk takeover of an administrator."
            ),
            "ingested admin_console_access and admin_role_granted events; the account's "
            "executed MFA resets",
            (),
            (),
        ),
        Rule(
            "federation_change_after_recovery",
            "R-55 (f)",
            _(
                "The account changed a federation or identity-provider trust inside the "
                "re-establishment window of a recovery: an attacker adding their own identity "
                "provider to keep access."
            ),
            "ingested federation_changed events; the account's re-establishment window",
            ("reestablishment_window_seconds",),
            (),
        ),
        Rule(
            "fast_decision",
            "R-26",
            _(
                "An approver approved or denied a case within seconds of first opening its review "
                "page: the evidence cannot have been looked at."
            ),
            "when the approver first opened the case's review page",
            ("min_review_seconds",),
            (),
        ),
        Rule(
            "watchlisted_caller",
            "R-56",
            _("A caller identifier an agent flagged as suspicious on an earlier case."),
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


# What the case-open rules read, row by row. `findings_at_open` reads it for one account as a
# case opens; a replay (recovery.detection.simulate) reads it for a chunk of past cases at once.


class EarlierCase(NamedTuple):
    pk: int
    correlation_id: UUID
    created_at: datetime
    status: str
    ended_at: datetime | None


class Burst(NamedTuple):
    """A push-denial burst or an "MFA not working" report (`MFA_TROUBLE`)."""

    occurred_at: datetime
    source: str
    received_at: datetime
    event_type: str


class Watched(NamedTuple):
    kind: str
    digest: str
    hint: str
    case_id: int  # the case it was flagged on
    flagged_at: datetime


class CallerSeen(NamedTuple):
    kind: str
    digest: str
    hint: str
    case_id: int
    account_id: int
    correlation_id: UUID
    created_at: datetime


@dataclass(frozen=True)
class History:
    """The rows the case-open rules decide on: the account's other cases, its push-denial
    bursts, the watch-list entries and other accounts' cases that share a caller identifier."""

    earlier: list[EarlierCase]
    bursts: list[Burst]
    watched: list[Watched] = field(default_factory=list)
    seen: list[CallerSeen] = field(default_factory=list)


def findings_at_open(
    *,
    account: ProtectedAccount,
    req: Requirements,
    callers: list[CallerValue],
    now: datetime,
) -> list[Finding]:
    """Every rule that fires on a case about to open on `account`: one query."""
    history = history_at_open(account, req, callers, now)
    return findings_in(history, account_id=account.pk, req=req, callers=callers, now=now)


# The four reads as one statement: each a member of a UNION ALL that tags its rows and lays them
# out in the same nine columns (a column a member has no value for is a typed NULL), with the
# ORDER BY and LIMIT of a member inside a subquery (SQLite allows neither directly in a compound
# member). Written out rather than built by the ORM: compiling four querysets cost more than
# running them (bench/detection.py). Every member starts from the tenant, as `for_tenant` does.
# Only runs of `%s` are put in; every value is a parameter.
_EARLIER_SQL = """
SELECT 'earlier', id, CAST(NULL AS bigint), correlation_id, created_at, ended_at, status,
       CAST(NULL AS text), CAST(NULL AS text)
FROM (SELECT id, correlation_id, created_at, ended_at, status
      FROM "recovery_recoverycase"
      WHERE tenant_id = %s AND account_id = %s
        AND (created_at >= %s OR (status IN ({statuses}) AND ended_at >= %s))
      ORDER BY id LIMIT %s) AS earlier"""
_BURST_SQL = """
SELECT 'burst', CAST(NULL AS bigint), CAST(NULL AS bigint), CAST(NULL AS uuid), occurred_at,
       received_at, source, event_type, CAST(NULL AS text)
FROM (SELECT occurred_at, received_at, source, event_type
      FROM "integrations_ingestedevent"
      WHERE tenant_id = %s AND account_id = %s AND event_type IN (%s, %s)
        AND occurred_at >= %s AND occurred_at <= %s
      ORDER BY occurred_at DESC LIMIT 1) AS burst"""
_WATCHED_SQL = """
SELECT 'watched', case_id, CAST(NULL AS bigint), CAST(NULL AS uuid), flagged_at,
       CAST(NULL AS timestamptz), kind, digest, hint
FROM "recovery_watchedcaller"
WHERE tenant_id = %s AND ({matches})"""
_SEEN_SQL = """
SELECT 'seen', case_id, account_id, correlation_id, created_at, CAST(NULL AS timestamptz), kind,
       digest, hint
FROM (SELECT identifier.case_id, opened.account_id, opened.correlation_id,
             identifier.created_at, identifier.kind, identifier.digest, identifier.hint
      FROM "recovery_calleridentifier" identifier
      JOIN "recovery_recoverycase" opened ON opened.id = identifier.case_id
      WHERE identifier.tenant_id = %s AND ({matches}) AND identifier.created_at >= %s
        AND identifier.kind <> %s AND opened.account_id <> %s
      ORDER BY identifier.case_id LIMIT %s) AS seen"""


def history_at_open(
    account: ProtectedAccount,
    req: Requirements,
    callers: list[CallerValue],
    now: datetime,
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> History:
    """What the case-open rules decide on for a case opening on `account` now, in one query:
    the account's recent and recently abandoned cases, its latest push-denial burst in the
    lookback and, when the caller gave identifiers, their watch-list entries and other
    accounts' recent cases with the same (non-name) identifiers."""
    connection = connections[using]
    at = connection.ops.adapt_datetimefield_value
    tenant_id, statuses = account.tenant_id, sorted(str(status) for status in ABANDONED_STATUSES)
    recent_since = now - timedelta(seconds=req.repeat_case_window_seconds)
    denial_since = now - timedelta(seconds=req.repeat_after_denial_window_seconds)
    burst_since = now - timedelta(seconds=req.push_denial_lookback_seconds)
    members = [_EARLIER_SQL.format(statuses=", ".join(["%s"] * len(statuses))), _BURST_SQL]
    params: list[Any] = [tenant_id, account.pk, at(recent_since), *statuses, at(denial_since)]
    params += [LINKED_LIMIT, tenant_id, account.pk, *MFA_TROUBLE]
    params += [at(burst_since), at(now)]
    if callers:
        keys = [str(part) for caller in callers for part in (caller.kind, caller.digest)]
        reuse_since = now - timedelta(seconds=req.caller_reuse_window_seconds)
        members.append(_WATCHED_SQL.format(matches=_matches(len(callers), "")))
        params += [tenant_id, *keys]
        members.append(_SEEN_SQL.format(matches=_matches(len(callers), "identifier.")))
        params += [tenant_id, *keys, at(reuse_since), str(CallerKind.NAME), account.pk]
        params.append(REUSE_LIMIT)
    with connection.cursor() as cursor:
        cursor.execute("\nUNION ALL".join(members).lstrip(), params)
        rows = cursor.fetchall()
    return _history_of(rows, connection)


def _matches(count: int, prefix: str) -> str:
    """A condition for `count` identifiers: same kind and keyed hash as one of them."""
    return " OR ".join([f"({prefix}kind = %s AND {prefix}digest = %s)"] * count)


def _history_of(rows: list[tuple], connection: BaseDatabaseWrapper) -> History:
    """The tagged rows of `history_at_open`'s statement as a History, each value as the ORM
    would give it (on SQLite a UUID and an aware datetime from their stored text)."""
    uuid_of = _converted(connection, RecoveryCase._meta.get_field("correlation_id"))
    time_of = _converted(connection, RecoveryCase._meta.get_field("created_at"))
    history = History(earlier=[], bursts=[], watched=[], seen=[])
    for tag, pk, account_id, correlation, at, at2, word, digest, hint in rows:
        if tag == "earlier":
            history.earlier.append(
                EarlierCase(pk, uuid_of(correlation), time_of(at), word, time_of(at2))
            )
        elif tag == "burst":
            history.bursts.append(Burst(time_of(at), word, time_of(at2), digest))
        elif tag == "watched":
            history.watched.append(Watched(word, digest, hint, pk, time_of(at)))
        else:
            seen = CallerSeen(word, digest, hint, pk, account_id, uuid_of(correlation), time_of(at))
            history.seen.append(seen)
    return history


def _converted(connection: BaseDatabaseWrapper, field: Field) -> Callable[[Any], Any]:
    """`field`'s value from the database as the ORM converts it (nothing to do on PostgreSQL)."""
    column = field.get_col(field.model._meta.db_table)
    converters = [*connection.ops.get_db_converters(column), *field.get_db_converters(connection)]

    def convert(value: Any) -> Any:
        for converter in converters:
            value = converter(value, column, connection)
        return value

    return convert


def findings_in(
    history: History,
    *,
    account_id: int,
    req: Requirements,
    callers: list[CallerValue],
    now: datetime,
    before: datetime | None = None,
) -> list[Finding]:
    """The case-open rules' decisions over `history`, without a query.

    `before`: only what was recorded before that moment counts. A replay passes the opened time
    of the case it re-evaluates, so later cases, events and watch-list entries are left out;
    None (a case opening now) counts every row read.
    """
    findings = _repeat_findings(history.earlier, req, now, before)
    findings += _push_denial_findings(history.bursts, req, now, before)
    if callers:
        findings += _caller_findings(history, account_id, req, callers, now, before)
    return findings


def _recorded(at: datetime, before: datetime | None) -> bool:
    """Recorded before `before` (None: whenever)."""
    return before is None or at < before


def _ended_within(row: EarlierCase, since: datetime, before: datetime | None) -> bool:
    ended = row.ended_at
    return (
        row.status in ABANDONED_STATUSES
        and ended is not None
        and since <= ended
        and (before is None or ended < before)
    )


def _repeat_findings(
    rows: list[EarlierCase], req: Requirements, now: datetime, before: datetime | None
) -> list[Finding]:
    recent_since = now - timedelta(seconds=req.repeat_case_window_seconds)
    denial_since = now - timedelta(seconds=req.repeat_after_denial_window_seconds)
    rows = sorted(
        row
        for row in rows
        if _recorded(row.created_at, before)
        and (row.created_at >= recent_since or _ended_within(row, denial_since, before))
    )[:LINKED_LIMIT]
    findings = []
    recent = [row for row in rows if row.created_at >= recent_since]
    if recent:
        findings.append(
            Finding(
                "repeat_case",
                {"earlier_cases": len(recent), "window_seconds": req.repeat_case_window_seconds},
                tuple((row.pk, row.correlation_id) for row in recent),
            )
        )
    denied = [row for row in rows if _ended_within(row, denial_since, before)]
    if denied:
        findings.append(
            Finding(
                "after_denial",
                {
                    "ended_cases": [{"case": row.pk, "status": row.status} for row in denied],
                    "window_seconds": req.repeat_after_denial_window_seconds,
                },
                tuple((row.pk, row.correlation_id) for row in denied),
            )
        )
    return findings


def _push_denial_findings(
    bursts: list[Burst], req: Requirements, now: datetime, before: datetime | None
) -> list[Finding]:
    since = now - timedelta(seconds=req.push_denial_lookback_seconds)
    within = [
        burst
        for burst in bursts
        if since <= burst.occurred_at <= now and _recorded(burst.received_at, before)
    ]
    if not within:
        return []
    burst = max(within, key=lambda burst: burst.occurred_at)
    facts = {
        "burst_at": burst.occurred_at.isoformat(),
        "reported": burst.event_type,
        "source": burst.source,
        "lookback_seconds": req.push_denial_lookback_seconds,
    }
    return [Finding("push_denial_before_call", facts)]


def _caller_findings(
    history: History,
    account_id: int,
    req: Requirements,
    callers: list[CallerValue],
    now: datetime,
    before: datetime | None,
) -> list[Finding]:
    keys = {(caller.kind, caller.digest) for caller in callers}
    findings = []
    watched = [
        row
        for row in history.watched
        if (row.kind, row.digest) in keys and _recorded(row.flagged_at, before)
    ]
    if watched:
        facts = {
            "watched": [
                {"kind": row.kind, "hint": row.hint, "flagged_on_case": row.case_id}
                for row in watched
            ]
        }
        findings.append(Finding("watchlisted_caller", facts))
    since = now - timedelta(seconds=req.caller_reuse_window_seconds)
    others = sorted(
        (
            row
            for row in history.seen
            if (row.kind, row.digest) in keys
            and row.kind != CallerKind.NAME
            and row.account_id != account_id
            and row.created_at >= since
            and _recorded(row.created_at, before)
        ),
        key=lambda row: row.case_id,
    )[:REUSE_LIMIT]
    subjects = {row.account_id for row in others} | {account_id}
    if len(subjects) >= req.caller_reuse_subjects:
        shared = sorted({(row.kind, row.hint) for row in others})
        facts = {
            "identifiers": [{"kind": kind, "hint": hint} for kind, hint in shared],
            "subjects": len(subjects),
            "window_seconds": req.caller_reuse_window_seconds,
        }
        linked = tuple(dict.fromkeys((row.case_id, row.correlation_id) for row in others))
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

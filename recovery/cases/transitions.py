"""The case lifecycle as one table: every move, the statuses it leaves and enters, who may make
it and the audit action it records.

Services call `transition_require` before they work (a move the table does not allow from the
case's status is refused with `case.wrong_state`) and `case_move` / `case_end` when they change
the status (the pair, from and to, must be an edge of the table). The console derives its
buttons from `moves_allowed`, which asks the existing policy functions whether this user may
make each move the table allows from the current status. The table is rendered in
docs/recovery.md ("Case lifecycle"), and a test keeps the two equal.

A small table of our own rather than django-fsm-2: our moves are already service functions that
lock the case, check policy and record the audit event in one transaction; django-fsm-2's
`@transition` decorates model methods and `save()`s from them, which our models must not do
(STYLE.md rule 1), and its single `source → target` per method does not fit moves whose target
the service decides (an approval ends in `cooling_off` or `ready`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from tenants.exceptions import InvalidInput
from tenants.policies import ALLOW, Decision

from .choices import OPEN_STATUSES, CaseStatus
from .policies import can_referee_case, can_work_case

if TYPE_CHECKING:
    from tenants.access import TenantAccess
    from tenants.models import User

    from .models import RecoveryCase


class Move(StrEnum):
    OPEN = "open"
    TAKE = "take"
    COLLECT = "collect"
    SUBMIT = "submit"
    APPROVE = "approve"
    DENY = "deny"
    APPROVALS_MET = "approvals_met"
    RELEASE = "release"
    BACK_TO_EVIDENCE = "back_to_evidence"
    SEND_BACK = "send_back"
    EXECUTE = "execute"
    RECORD_MANUAL_STEP = "record_manual_step"
    CLOSE = "close"
    CANCEL = "cancel"
    EXPIRE = "expire"
    REJECT = "reject"
    REPUDIATE = "repudiate"
    RECORD_REVERT_STEP = "record_revert_step"
    REVERT = "revert"
    FLAG_FRAUD = "flag_fraud"


class Party(StrEnum):
    """Who may make a move; `PARTY_POLICY` names the policy that decides it for a person."""

    WORKER = "worker"
    APPROVER = "approver"
    EXECUTOR = "executor"
    REFEREE = "referee"
    OWNER = "owner"
    SYSTEM = "system"


# The policy function behind each party (for the docs; `party_decision` calls them).
PARTY_POLICY: dict[Party, str] = {
    Party.WORKER: "recovery.cases.policies.can_work_case",
    Party.APPROVER: "recovery.cases.services.approval.approval_refusal",
    Party.EXECUTOR: "recovery.cases.services.execution.executor_refusal",
    Party.REFEREE: "recovery.cases.policies.can_referee_case",
    Party.OWNER: "the signed owner notice or owner-portal session (no staff user)",
    Party.SYSTEM: "the workflow itself: a sweep, a verifier, a detection (no staff user)",
}

ALL = frozenset(CaseStatus)
OPEN = frozenset(OPEN_STATUSES)
INITIAL = CaseStatus.COLLECTING_EVIDENCE
Edge = tuple[str | None, str]


def _edges(sources: Iterable[str | None], targets: Iterable[str] | None = None) -> frozenset[Edge]:
    """Every pair from `sources` to `targets`; without targets a move stays in its status."""
    targets = tuple(targets) if targets is not None else None
    return frozenset(
        (source, target)
        for source in sources
        for target in (targets if targets is not None else (source,))
    )


@dataclass(frozen=True)
class Transition:
    move: Move
    edges: frozenset[Edge]
    parties: frozenset[Party]
    audit_action: str
    services: tuple[str, ...]  # dotted paths of the functions that make the move

    @property
    def sources(self) -> frozenset[str | None]:
        return frozenset(source for source, _target in self.edges)

    def allows(self, status: str, to: str | None = None) -> bool:
        """From `status` at all (`to` None), or from `status` to `to`."""
        if to is None:
            return status in self.sources
        return (status, to) in self.edges


def _t(
    move: Move,
    edges: frozenset[Edge],
    parties: Iterable[Party],
    audit_action: str,
    services: tuple[str, ...],
) -> Transition:
    return Transition(move, edges, frozenset(parties), audit_action, services)


S = CaseStatus
P = Party
OPENING = "recovery.cases.services.opening."
EVIDENCE = "recovery.cases.services.evidence."
APPROVAL = "recovery.cases.services.approval."
EXECUTION = "recovery.cases.services.execution."
LIFECYCLE = "recovery.cases.services.lifecycle."
REPUDIATION = "recovery.cases.services.repudiation."
EXPIRABLE = frozenset({S.COLLECTING_EVIDENCE, S.PENDING_APPROVAL, S.READY})
REPUDIABLE = ALL - {S.FROZEN, S.REVERTED}

TABLE: tuple[Transition, ...] = (
    _t(Move.OPEN, _edges([None], [INITIAL]), [P.WORKER], "case.opened", (OPENING + "case_open",)),
    _t(Move.TAKE, _edges(OPEN), [P.WORKER], "case.taken", (OPENING + "case_take",)),
    _t(
        Move.COLLECT,
        _edges([S.COLLECTING_EVIDENCE]),
        [P.WORKER, P.REFEREE, P.OWNER, P.SYSTEM],
        "verification.signal_accepted",
        (EVIDENCE + "evidence_from_verifier",),
    ),
    _t(
        Move.SUBMIT,
        _edges([S.COLLECTING_EVIDENCE], [S.PENDING_APPROVAL]),
        [P.WORKER],
        "case.submitted",
        (APPROVAL + "case_submit",),
    ),
    _t(
        Move.APPROVE,
        _edges([S.PENDING_APPROVAL]),
        [P.APPROVER],
        "approval.approved",
        (APPROVAL + "approval_decide",),
    ),
    _t(
        Move.DENY,
        _edges([S.PENDING_APPROVAL], [S.DENIED]),
        [P.APPROVER],
        "approval.denied",
        (APPROVAL + "approval_decide",),
    ),
    _t(
        Move.APPROVALS_MET,
        _edges([S.PENDING_APPROVAL], [S.COOLING_OFF, S.READY]),
        [P.SYSTEM],
        "case.status_changed",
        (APPROVAL + "case_submit", APPROVAL + "approval_decide"),
    ),
    _t(
        Move.RELEASE,
        _edges([S.COOLING_OFF], [S.READY]),
        [P.SYSTEM],
        "case.status_changed",
        (LIFECYCLE + "case_release_cooled",),
    ),
    _t(
        Move.BACK_TO_EVIDENCE,
        _edges([S.PENDING_APPROVAL, S.COOLING_OFF, S.READY], [S.COLLECTING_EVIDENCE]),
        [P.SYSTEM],
        "case.tier_raised",
        (APPROVAL + "case_tier_recompute",),
    ),
    _t(
        Move.SEND_BACK,
        _edges([S.COOLING_OFF, S.READY], [S.PENDING_APPROVAL, S.COOLING_OFF]),
        [P.SYSTEM],
        "case.status_changed",
        (
            APPROVAL + "approvals_void_stale",
            APPROVAL + "case_policy_recheck_locked",
            EXECUTION + "case_execute",
        ),
    ),
    _t(
        Move.EXECUTE,
        _edges([S.READY], [S.EXECUTED]),
        [P.EXECUTOR],
        "case.executed",
        (EXECUTION + "case_execute",),
    ),
    _t(
        Move.RECORD_MANUAL_STEP,
        _edges([S.EXECUTED]),
        [P.WORKER],
        "case.manual_step_recorded",
        (EXECUTION + "case_manual_step_record",),
    ),
    _t(
        Move.CLOSE,
        _edges([S.EXECUTED], [S.CLOSED]),
        [P.WORKER],
        "case.closed",
        (EXECUTION + "case_close",),
    ),
    _t(
        Move.CANCEL,
        _edges(OPEN, [S.CANCELLED]),
        [P.WORKER, P.OWNER],
        "case.cancelled",
        (LIFECYCLE + "case_cancel",),
    ),
    _t(
        Move.EXPIRE,
        _edges(EXPIRABLE, [S.EXPIRED]),
        [P.SYSTEM],
        "case.expired",
        (LIFECYCLE + "case_expire_idle",),
    ),
    _t(
        Move.REJECT,
        _edges(OPEN, [S.REJECTED]),
        [P.SYSTEM],
        "case.rejected",
        ("recovery.proofing.services.proofing_verdict_receive",),
    ),
    _t(
        Move.REPUDIATE,
        _edges(REPUDIABLE, [S.FROZEN]),
        [P.OWNER],
        "case.repudiated",
        (REPUDIATION + "case_repudiate",),
    ),
    _t(
        Move.RECORD_REVERT_STEP,
        _edges([S.FROZEN]),
        [P.WORKER],
        "revert.step_recorded",
        (REPUDIATION + "revert_step_record",),
    ),
    _t(
        Move.REVERT,
        _edges([S.FROZEN], [S.REVERTED]),
        [P.WORKER, P.SYSTEM],
        "case.reverted",
        (REPUDIATION + "revert_step_record", REPUDIATION + "account_revert"),
    ),
    _t(
        Move.FLAG_FRAUD,
        _edges(REPUDIABLE, [S.FROZEN]) | _edges([S.FROZEN, S.REVERTED]),
        [P.REFEREE],
        "case.fraud_flagged",
        ("recovery.proofing.attended.attended_fraud_flag",),
    ),
)
TRANSITIONS: dict[Move, Transition] = {t.move: t for t in TABLE}


def _label(status: str) -> str:
    return str(CaseStatus(status).label).lower()


def transition_require(case: RecoveryCase, move: Move, to: str | None = None) -> Transition:
    """Refuse (`case.wrong_state`) unless the table allows `move` from the case's status
    (and, given `to`, to that status); the message names the current and the needed states."""
    transition = TRANSITIONS[move]
    if transition.allows(case.status, to):
        return transition
    if to is not None and transition.allows(case.status):
        raise InvalidInput(
            _("The case is %(now)s; %(move)s cannot make it %(to)s.")
            % {"now": _label(case.status), "move": move, "to": _label(to)},
            code="case.wrong_state",
        )
    needed = sorted(s for s in transition.sources if s is not None)
    raise InvalidInput(
        _("The case is %(now)s; this needs it to be %(needed)s.")
        % {"now": _label(case.status), "needed": _(" or ").join(_label(s) for s in needed)},
        code="case.wrong_state",
    )


def case_move(case: RecoveryCase, move: Move, to: str) -> None:
    """Set the status of a locked case to `to` by `move`, if the table has that edge (the
    caller saves the case and records the move's audit event in its transaction)."""
    transition_require(case, move, to)
    case.status = to


def _deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


def _allowed_unless(refusal: Decision | None) -> Decision:
    """A `*_refusal` policy's answer (None, or a Decision that allows: allowed) as a Decision."""
    return refusal if refusal is not None and not refusal else ALLOW


def party_decision(
    party: Party, case: RecoveryCase, user: User, access: TenantAccess | None
) -> Decision:
    """Whether this staff user may act on `case` as `party`, by the party's policy function."""
    # Imported here: the services import this table.
    from .services.approval import approval_refusal
    from .services.base import requirements_for
    from .services.execution import executor_refusal

    work = can_work_case(access, route=case.route, tier=case.tier, case_type=case.case_type)
    if party == Party.WORKER:
        return work
    if party == Party.EXECUTOR:
        return _allowed_unless(executor_refusal(case, user)) if work else work
    if party == Party.APPROVER:
        return _allowed_unless(approval_refusal(case, user, access, requirements_for(case)))
    if party == Party.REFEREE:
        return can_referee_case(access, case)
    return _deny("case.not_a_staff_move", _("Only the account owner or the workflow does this."))


def moves_allowed(
    case: RecoveryCase, user: User, access: TenantAccess | None
) -> dict[Move, frozenset[Party]]:
    """The moves the table allows from the case's status now, each with the parties through
    which this user may make it (the services decide again on every POST)."""
    allowed: dict[Move, frozenset[Party]] = {}
    for transition in TABLE:
        if not transition.allows(case.status):
            continue
        parties = frozenset(
            party
            for party in transition.parties
            if party not in (Party.OWNER, Party.SYSTEM)
            and party_decision(party, case, user, access)
        )
        if parties:
            allowed[transition.move] = parties
    return allowed


ORDER = {status: rank for rank, status in enumerate(CaseStatus.values)}


def _statuses(statuses: Iterable[str | None]) -> str:
    named = sorted((s for s in statuses if s is not None), key=ORDER.__getitem__)
    if len(named) > len(ALL) // 2:
        rest = sorted(ALL - set(named), key=ORDER.__getitem__)
        return "any but " + ", ".join(f"`{s}`" for s in rest)
    return ", ".join(["(new)"] * (None in statuses) + [f"`{s}`" for s in named])


def table_markdown() -> str:
    """The table as docs/recovery.md shows it: a row per move and set of statuses it leaves
    (`(stays)` when the move never changes the status), then the policy behind each party."""
    rows = [
        "| move | from | to | who | records | service |",
        "|---|---|---|---|---|---|",
    ]
    for transition in TABLE:
        stays = all(source == target for source, target in transition.edges)
        by_target: dict[str, set[str | None]] = {}
        for source, target in transition.edges:
            by_target.setdefault(INITIAL if stays else target, set()).add(source)
        by_sources: dict[frozenset[str | None], list[str]] = {}
        for target, sources in sorted(by_target.items(), key=lambda item: ORDER[item[0]]):
            by_sources.setdefault(frozenset(sources), []).append(target)
        for sources, targets in by_sources.items():
            to = "(stays)" if stays else ", ".join(f"`{t}`" for t in targets)
            rows.append(
                f"| `{transition.move}` | {_statuses(sources)} | {to} "
                f"| {', '.join(sorted(transition.parties))} | `{transition.audit_action}` "
                f"| {', '.join(name.rsplit('.', 1)[1] for name in transition.services)} |"
            )
    rows += ["", "| who | decided by |", "|---|---|"]
    rows += [f"| {party} | {policy} |" for party, policy in PARTY_POLICY.items()]
    return "\n".join(rows)

"""Platform floors: the minimums a tenant policy may raise but never lower.

Each floor has a stable rule id naming the requirement it comes from
(`R-16.T1.min_signal_classes`). Floors are checked on the *effective* requirements of every
tier and case type, so a weak value is caught wherever it is inherited, and the error points at
the document path the value came from.

Classes and methods are closed lists: `accepted_classes` holds S1-S5 and `accepted_methods` names
from the method catalogue, nothing else. No entry is interpreted from the words in it; what is not
a signal (a knowledge question, caller ID, a voice) is refused with a message that says such facts
are context only (R-02).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from recovery.cases.methods import CATALOGUE, METHODS
from tenants.choices import CaseType, Role, StepUpKind, Tier

from .document import ParsedDocument, Path, effective, lookup, requirement_blocks
from .errors import PolicyError

SIGNAL_CLASSES = ("S1", "S2", "S3", "S4", "S5")
# Only to choose the message for an unknown class ("S6"); it decides nothing.
_CLASS_SHAPE = re.compile(r"[Ss]\d+\Z")
T0_CLASSES = frozenset({"S1", "S2", "S3", "S5"})
APPROVER_ROLES = frozenset({Role.SUPERVISOR.value, Role.SECURITY_OFFICER.value})
MINUTE, HOUR, DAY = 60, 3_600, 86_400
# an agent-issued temporary access pass (any vendor's one-time pass) lives at most 8 h.
TEMPORARY_PASS_CEILING_SECONDS = 8 * HOUR

# (rule, field of the effective requirements, bound, why): value must be <= bound.
CEILINGS: tuple[tuple[str, Path, int, str], ...] = (
    ("R-31.sms", ("artifact_lifetimes", "sms"), 10 * MINUTE, "SMS codes live at most 10 min."),
    ("R-31.voice", ("artifact_lifetimes", "voice"), 10 * MINUTE, "Voice codes: at most 10 min."),
    ("R-31.email", ("artifact_lifetimes", "email"), DAY, "Email artifacts: at most 24 h."),
    (
        "R-31.temporary_access_pass",
        ("artifact_lifetimes", "temporary_access_pass"),
        TEMPORARY_PASS_CEILING_SECONDS,
        "A temporary access pass lives at most 8 h.",
    ),
    ("R-53.max_failed_attempts", ("max_failed_attempts",), 5, "At most 5 failed attempts."),
    (
        "R-55.caller_reuse_subjects",
        ("caller_reuse_subjects",),
        2,
        "One caller identifier on cases for 2 subjects is already a pattern (R-55 d).",
    ),
    (
        "R-19.role_regrant_max_seconds",
        ("role_regrant_max_seconds",),
        90 * DAY,
        "Privileged roles are granted back for at most 90 days at a time (R-19).",
    ),
)
# Same shape: value must be >= bound. Applied to every tier and case type.
MINIMUMS: tuple[tuple[str, Path, int, str], ...] = (
    (
        "R-04.quarantine_seconds",
        ("quarantine_seconds",),
        7 * DAY,
        "Changed contacts stay quarantined at least 7 days (platform choice).",
    ),
    (
        "R-52.repeat_case_window_seconds",
        ("repeat_case_window_seconds",),
        DAY,
        "A second case within 24 h or more is a repeat attempt.",
    ),
    (
        "R-52.repeat_after_denial_window_seconds",
        ("repeat_after_denial_window_seconds",),
        3 * DAY,
        "A case within 72 h or more of a denied one is a repeat attempt.",
    ),
    (
        "R-26.min_review_seconds",
        ("min_review_seconds",),
        10,
        "A decision within 10 s or more of first seeing the review page raises an alert.",
    ),
    (
        "R-55.push_denial_lookback_seconds",
        ("push_denial_lookback_seconds",),
        DAY,
        "A push-denial burst in the 24 h or more before a case raises it (R-55 e).",
    ),
    (
        "R-55.caller_reuse_window_seconds",
        ("caller_reuse_window_seconds",),
        DAY,
        "One caller identifier on cases for several subjects within 24 h or more (R-55 d).",
    ),
)
TIER_MINIMUMS: dict[str, tuple[tuple[str, Path, int, str], ...]] = {
    Tier.T0: (("R-16.T0.min_signal_classes", ("min_signal_classes",), 1, "T0 needs 1 signal."),),
    Tier.T1: (
        (
            "R-16.T1.min_signal_classes",
            ("min_signal_classes",),
            2,
            "T1 needs 2 distinct signal classes (or S4 alone, see s4_alone_suffices).",
        ),
        ("R-16.T1.approvals_required", ("approvals_required",), 1, "T1 needs 1 approval."),
        (
            "R-36.T1.cooling_off_seconds",
            ("cooling_off_seconds",),
            15 * MINUTE,
            "T1 waits at least 15 min before execution (R-36, platform choice).",
        ),
        (
            "R-35.T1.reestablishment_window_seconds",
            ("reestablishment_window_seconds",),
            DAY,
            "After a T1 recovery the re-establishment window lasts at least 24 h (R-35).",
        ),
    ),
    Tier.T2: (
        (
            "R-16.T2.min_signal_classes",
            ("min_signal_classes",),
            2,
            "T2 needs 2 distinct signal classes (or S4 alone, see s4_alone_suffices).",
        ),
        ("R-16.T2.approvals_required", ("approvals_required",), 2, "T2 needs 2 approvals."),
        (
            "R-16.T2.security_officer",
            ("min_security_officer_approvals",),
            1,
            "T2 needs a security_officer among its approvers.",
        ),
        (
            "R-16.T2.cooling_off_seconds",
            ("cooling_off_seconds",),
            4 * HOUR,
            "T2 waits at least 4 h before execution (R-36, platform choice).",
        ),
        (
            "R-35.T2.reestablishment_window_seconds",
            ("reestablishment_window_seconds",),
            DAY,
            "After a T2 recovery the re-establishment window lasts at least 24 h (R-35).",
        ),
    ),
}
EXCEPTION_MINIMUMS: tuple[tuple[str, Path, int, str], ...] = (
    (
        "R-24.exception.approvals_required",
        ("approvals_required",),
        2,
        "An exception needs 2 approvals.",
    ),
    (
        "R-24.exception.security_officers",
        ("min_security_officer_approvals",),
        2,
        "An exception needs 2 security_officer approvals.",
    ),
    (
        "R-24.exception.cooling_off_seconds",
        ("cooling_off_seconds",),
        DAY,
        "An exception waits at least 24 h before execution (R-36, platform choice).",
    ),
)

# how long an approval counts. It must outlive the case's cooling-off by a margin, or
# every approval of a long wait (an exception's 24 h) would expire before execution.
APPROVAL_LIFETIME_DEFAULT = DAY
APPROVAL_LIFETIME_MAX = 3 * DAY
APPROVAL_LIFETIME_MARGIN = HOUR
LONG_COOLING_OFF = 23 * HOUR
# phishing-resistant step-up for every T2 approval and every execution.
PHISHING_RESISTANT = (StepUpKind.PASSKEY.value,)
EXECUTION_STEP_UP = PHISHING_RESISTANT


# the re-establishment window after a recovery when the policy names none (our default;
# no standard gives a number). T0 recoveries get none unless the tenant sets one.
REESTABLISHMENT_WINDOW_DEFAULT = {Tier.T0: 0, Tier.T1: 3 * DAY, Tier.T2: 3 * DAY}
# the longest a privileged_role_restore case grants the suspended roles back when the
# policy names no maximum (our default); the CEILINGS entry above keeps any policy at 90 days.
ROLE_REGRANT_MAX_DEFAULT = 7 * DAY


def approval_lifetime_default(cooling_off_seconds: int) -> int:
    """24 h; for a cooling-off of 23 h or more, the cooling-off plus 24 h (at most 72 h)."""
    if cooling_off_seconds >= LONG_COOLING_OFF:
        return min(cooling_off_seconds + DAY, APPROVAL_LIFETIME_MAX)
    return APPROVAL_LIFETIME_DEFAULT


def step_up_default(tier: str) -> tuple[str, ...]:
    """The approval step-up kinds when the policy names none: the floor's for T2, else both."""
    return PHISHING_RESISTANT if tier == Tier.T2 else tuple(StepUpKind.values)


# Every rule id this module can report, with what it protects.
FLOORS: dict[str, str] = {
    **{rule: why for rule, _, _, why in CEILINGS + MINIMUMS + EXCEPTION_MINIMUMS},
    **{rule: why for rules in TIER_MINIMUMS.values() for rule, _, _, why in rules},
    "R-01.signal_class": "Signal classes are S1-S5 only.",
    "R-01.method_not_class": (
        "A method is not a class: list classes in accepted_classes and catalogue methods in "
        "accepted_methods."
    ),
    "R-02.not_a_signal": (
        "Only S1-S5 are signals. Knowledge facts (a question, a date, an employee or ticket "
        "number), caller ID, a sender address, a voice or a face are context only, never a "
        "signal (R-02, R-03, R-08)."
    ),
    "R-02.method_not_in_catalogue": (
        "Methods come from the platform catalogue only. Knowledge facts (a question, a date, an "
        "employee or ticket number) are context only, never a method (R-02)."
    ),
    "R-01.method_class_accepted": "Every accepted method's class is an accepted class.",
    "R-16.T0.accepted_classes": "T0 accepts at least one of S1, S2, S3, S5.",
    "R-24.exception.s5_waives_cooling_off": "Nothing waives an exception's waiting period.",
    "R-36.T2.s5_waives_cooling_off": "Nothing waives a T2 case's waiting period.",
    "R-20.approver_roles": "Approvers are supervisors or security officers.",
    "R-20.security_officer_eligible": "Required security_officer approvals need that role.",
    "R-20.approvals_consistent": "Security-officer approvals cannot exceed all approvals.",
    "R-01.min_signal_classes_satisfiable": (
        "No more classes required than the accepted methods with a verifier provide, unless "
        "S4 alone suffices."
    ),
    "R-01.s4_alone_needs_s4": "S4 alone can suffice only when S4 is accepted.",
    "R-22.approval_lifetime_max": "An approval counts for at most 72 h.",
    "R-22.approval_lifetime_after_cooling_off": (
        "An approval must outlive the case's cooling-off by at least 1 h, or it expires before "
        "the case may be executed."
    ),
    "R-23.T2.step_up": (
        "Every T2 approval needs a phishing-resistant step-up (passkey); an authenticator app "
        "code is not accepted."
    ),
    "R-15.admin_roles": "Accounts holding admin roles are T2.",
    "R-15.staff_subject": "Subjects who are also staff are T2.",
    "R-15.helpdesk_groups": "The directory groups of help-desk/MSP/security staff map to T2.",
    "R-15.delegations": "Accounts others delegate to are at least T1.",
    "R-15.mailbox_types": "Shared and functional mailboxes are at least T1.",
}

_TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}
Problem = tuple[str, Path, str]  # (rule, field of the effective requirements, message)


def _class_entry_rule(name: Any) -> str | None:
    """The rule an accepted_classes entry breaks, or None for a signal class S1-S5.

    No guessing from words: anything but S1-S5 is refused. The rule only chooses the most
    helpful message (a catalogue method listed as a class, an unknown class, anything else).
    """
    if name in SIGNAL_CLASSES:
        return None
    if name in METHODS:
        return "R-01.method_not_class"
    if isinstance(name, str) and _CLASS_SHAPE.match(name):
        return "R-01.signal_class"
    return "R-02.not_a_signal"


def _class_entry_message(name: Any, rule: str) -> str:
    if rule == "R-01.method_not_class":
        return f"{name!r} is a method of class {METHODS[name].signal_class}. {FLOORS[rule]}"
    return f"{name!r} is not a signal class. {FLOORS[rule]}"


def _entry_errors(doc: ParsedDocument) -> Iterator[PolicyError]:
    """Each accepted_classes entry that is not S1-S5 and each accepted_methods entry that is not
    in the catalogue, at its own list position."""
    catalogue = ", ".join(method.name for method in CATALOGUE)
    for tier in Tier.values:
        for case_type in CaseType.values:
            for base, block in requirement_blocks(doc.data, tier, case_type):
                for index, name in enumerate(block.get("accepted_classes") or []):
                    rule = _class_entry_rule(name)
                    if rule:
                        message = _class_entry_message(name, rule)
                        yield doc.error((*base, "accepted_classes", index), message, rule)
                for index, name in enumerate(block.get("accepted_methods") or []):
                    if name not in METHODS:
                        rule = "R-02.method_not_in_catalogue"
                        message = f"{name!r} is not a method ({catalogue}). {FLOORS[rule]}"
                        yield doc.error((*base, "accepted_methods", index), message, rule)


def _bounds(req: dict[str, Any], bounds: tuple, *, ceiling: bool) -> Iterator[Problem]:
    for rule, field, bound, why in bounds:
        value = lookup(req, field)
        if value is None:  # an optional field left out: its platform default meets the bound
            continue
        if (value > bound) if ceiling else (value < bound):
            limit = "at most" if ceiling else "at least"
            yield rule, field, f"{'.'.join(field)} is {value}, must be {limit} {bound}. {why}"


def _evidence_consistency(req: dict[str, Any]) -> Iterator[Problem]:
    """The evidence rule can be met with methods a verifier can check today (R-01)."""
    accepted = {c for c in req["accepted_classes"] if c in SIGNAL_CLASSES}
    listed = req.get("accepted_methods")
    chosen = [METHODS[name] for name in (listed or METHODS) if name in METHODS]
    if listed is not None:
        outside = sorted({m.name for m in chosen if m.signal_class not in accepted})
        if outside:
            rule = "R-01.method_class_accepted"
            yield rule, ("accepted_methods",), f"{', '.join(outside)}: {FLOORS[rule]}"
    reachable = sorted({m.signal_class for m in chosen if m.available} & accepted)
    s4_alone = req["s4_alone_suffices"] and "S4" in reachable
    if req["min_signal_classes"] > len(reachable) and not s4_alone:
        rule = "R-01.min_signal_classes_satisfiable"
        yield (
            rule,
            ("min_signal_classes",),
            f"min_signal_classes is {req['min_signal_classes']}, but the accepted methods give "
            f"{len(reachable)} class(es) ({', '.join(reachable) or 'none'}). {FLOORS[rule]}",
        )
    if req["s4_alone_suffices"] and "S4" not in accepted:
        rule = "R-01.s4_alone_needs_s4"
        yield rule, ("s4_alone_suffices",), FLOORS[rule]


def _approver_consistency(req: dict[str, Any]) -> Iterator[Problem]:
    roles = set(req["approver_roles"])
    checks = (
        (
            req["approvals_required"] > 0 and (not roles or bool(roles - APPROVER_ROLES)),
            "R-20.approver_roles",
            "approver_roles",
        ),
        (
            req["min_security_officer_approvals"] > 0 and Role.SECURITY_OFFICER not in roles,
            "R-20.security_officer_eligible",
            "approver_roles",
        ),
        (
            req["min_security_officer_approvals"] > req["approvals_required"],
            "R-20.approvals_consistent",
            "min_security_officer_approvals",
        ),
    )
    for broken, rule, field in checks:
        if broken:
            yield rule, (field,), FLOORS[rule]


def _approval_lifetime(req: dict[str, Any]) -> Iterator[Problem]:
    """R-22: at most 72 h, and past the cooling-off by the margin (the default too)."""
    cooling_off = req["cooling_off_seconds"]
    given = req.get("approval_lifetime_seconds")
    lifetime = approval_lifetime_default(cooling_off) if given is None else given
    # Reported where the author can fix it: the lifetime given, else the cooling-off.
    field = ("approval_lifetime_seconds",) if given is not None else ("cooling_off_seconds",)
    if lifetime > APPROVAL_LIFETIME_MAX:
        rule = "R-22.approval_lifetime_max"
        yield rule, field, f"approval_lifetime_seconds is {lifetime}. {FLOORS[rule]}"
    least = cooling_off + APPROVAL_LIFETIME_MARGIN
    if lifetime < least:
        rule = "R-22.approval_lifetime_after_cooling_off"
        origin = "" if given is not None else " (the default)"
        yield (
            rule,
            field,
            f"approval_lifetime_seconds is {lifetime}{origin}, must be at least "
            f"cooling_off_seconds + {APPROVAL_LIFETIME_MARGIN} = {least}. {FLOORS[rule]}",
        )


def _problems(tier: str, case_type: str, req: dict[str, Any]) -> Iterator[Problem]:
    yield from _evidence_consistency(req)
    yield from _approval_lifetime(req)
    if tier == Tier.T2 and set(req.get("step_up") or ()) - set(PHISHING_RESISTANT):
        yield "R-23.T2.step_up", ("step_up",), FLOORS["R-23.T2.step_up"]
    yield from _approver_consistency(req)
    yield from _bounds(req, CEILINGS, ceiling=True)
    yield from _bounds(req, MINIMUMS + TIER_MINIMUMS[tier], ceiling=False)
    if tier == Tier.T0 and not T0_CLASSES & set(req["accepted_classes"]):
        yield "R-16.T0.accepted_classes", ("accepted_classes",), FLOORS["R-16.T0.accepted_classes"]
    if tier == Tier.T2 and req["s5_waives_cooling_off"]:
        rule = "R-36.T2.s5_waives_cooling_off"
        yield rule, ("s5_waives_cooling_off",), FLOORS[rule]
    if case_type == CaseType.EXCEPTION:
        yield from _bounds(req, EXCEPTION_MINIMUMS, ceiling=False)
        if req["s5_waives_cooling_off"]:
            rule = "R-24.exception.s5_waives_cooling_off"
            yield rule, ("s5_waives_cooling_off",), FLOORS[rule]


def _requirement_errors(doc: ParsedDocument) -> Iterator[PolicyError]:
    for tier in Tier.values:
        for case_type in CaseType.values:
            req, sources = effective(doc.data, tier, case_type)
            for rule, field, message in _problems(tier, case_type, req):
                source = sources[field]
                scope = f"{tier} {case_type}" if "case_types" in source else tier
                yield doc.error(source, f"{scope}: {message}", rule)


def _tier_rule_errors(doc: ParsedDocument) -> Iterator[PolicyError]:
    rules = doc.data["tier_rules"]
    checks: list[tuple[bool, str, Path]] = [
        (rules["admin_roles"] != Tier.T2, "R-15.admin_roles", ("admin_roles",)),
        (rules["staff_subject"] != Tier.T2, "R-15.staff_subject", ("staff_subject",)),
        (not rules["groups"].get("T2"), "R-15.helpdesk_groups", ("groups",)),
        (_TIER_RANK[rules["delegations"]] < 1, "R-15.delegations", ("delegations",)),
    ]
    for mailbox in ("shared", "functional"):
        below = _TIER_RANK[rules["mailbox_types"][mailbox]] < 1
        checks.append((below, "R-15.mailbox_types", ("mailbox_types", mailbox)))
    for broken, rule, path in checks:
        if broken:
            yield doc.error(("tier_rules", *path), FLOORS[rule], rule)


def floor_errors(doc: ParsedDocument) -> list[PolicyError]:
    """Every floor a schema-valid document breaks, once per (rule, path), in document order."""
    found: dict[tuple[str, str], PolicyError] = {}
    for error in (*_entry_errors(doc), *_requirement_errors(doc), *_tier_rule_errors(doc)):
        found.setdefault((error.rule, error.path), error)
    return sorted(found.values(), key=lambda e: (e.line, e.path, e.rule))

"""A validated policy turned into answers: what a case needs, and which tier an account is."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from tenants.choices import CaseType, Tier
from tenants.exceptions import InvalidInput

from ..cases.methods import METHOD_NAMES
from .document import effective
from .floors import (
    REESTABLISHMENT_WINDOW_DEFAULT,
    ROLE_REGRANT_MAX_DEFAULT,
    approval_lifetime_default,
    step_up_default,
)
from .schema import (
    ATTESTATION_FORMATS,
    CALLER_REUSE_SUBJECTS_DEFAULT,
    CALLER_REUSE_WINDOW_DEFAULT,
    CASE_IDLE_LIMIT_DEFAULT,
    MIN_REVIEW_SECONDS_DEFAULT,
    PUSH_DENIAL_LOOKBACK_DEFAULT,
)
from .validation import source_sha256, validated

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.yaml")
PLATFORM_DEFAULT = "platform_default"
TENANT = "tenant"
_TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}


@dataclass(frozen=True)
class ArtifactLifetimes:
    """Maximum lifetimes in seconds of the artifacts a case may issue (R-31)."""

    sms: int
    voice: int
    email: int
    temporary_access_pass: int


@dataclass(frozen=True)
class Requirements:
    """What one case of `case_type` on a `tier` account needs under one policy version."""

    tier: str
    case_type: str
    min_signal_classes: int
    accepted_classes: tuple[str, ...]
    accepted_methods: tuple[str, ...]
    s4_alone_suffices: bool
    approvals_required: int
    approver_roles: tuple[str, ...]
    min_security_officer_approvals: int
    security_officer_required: bool
    tenant_approver_required_when_msp: bool
    cooling_off_seconds: int
    s5_waives_cooling_off: bool
    quarantine_seconds: int
    lifetimes: ArtifactLifetimes
    max_failed_attempts: int
    repeat_case_window_seconds: int
    repeat_after_denial_window_seconds: int
    push_denial_lookback_seconds: int
    caller_reuse_window_seconds: int
    caller_reuse_subjects: int
    min_review_seconds: int
    case_idle_limit_seconds: int
    approval_lifetime_seconds: int
    reestablishment_window_seconds: int
    role_regrant_max_seconds: int
    step_up_kinds: tuple[str, ...]
    policy_versions: tuple[int, ...]

    def evidence_met(self, accepted_signal_classes: Iterable[str]) -> bool:
        """True when these accepted signals (one class per signal) satisfy the evidence rule.

        Only distinct classes the policy accepts count (two S2 signals are one class, R-01);
        a completed S4 alone suffices where `s4_alone_suffices` says so.
        """
        classes = set(accepted_signal_classes) & set(self.accepted_classes)
        if self.s4_alone_suffices and "S4" in classes:
            return True
        return len(classes) >= self.min_signal_classes

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples as lists)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def stricter(self, other: Requirements) -> Requirements:
        """Rule by rule the stricter of `self` and `other` (`STRICTER`), for a case that two
        policy versions decide: whatever meets the result meets both. A field without a rule
        raises KeyError: fail closed rather than pick one side."""
        return Requirements(
            **{
                f.name: STRICTER[f.name](getattr(self, f.name), getattr(other, f.name))
                for f in fields(self)
            }
        )


def _higher_tier(one: str, other: str) -> str:
    return max(one, other, key=_TIER_RANK.__getitem__)


def _same(one: str, other: str) -> str:
    if one != other:
        raise ValueError(f"Requirements for {one} and {other} cases do not combine.")
    return one


def _in_both(one: tuple[str, ...], other: tuple[str, ...]) -> tuple[str, ...]:
    """Only what both accept, in the first one's order (empty: nothing is accepted)."""
    return tuple(item for item in one if item in other)


def _both_allow(one: bool, other: bool) -> bool:
    return one and other


def _either_requires(one: bool, other: bool) -> bool:
    return one or other


def _shorter_lifetimes(one: ArtifactLifetimes, other: ArtifactLifetimes) -> ArtifactLifetimes:
    return ArtifactLifetimes(
        **{f.name: min(getattr(one, f.name), getattr(other, f.name)) for f in fields(one)}
    )


def _both_named(one: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    return one + other


# One rule per field of Requirements: how the stricter of two values is chosen.
STRICTER: dict[str, Callable[[Any, Any], Any]] = {
    "tier": _higher_tier,
    "case_type": _same,
    "min_signal_classes": max,
    "accepted_classes": _in_both,
    "accepted_methods": _in_both,
    "s4_alone_suffices": _both_allow,
    "approvals_required": max,
    "approver_roles": _in_both,
    "min_security_officer_approvals": max,
    "security_officer_required": _either_requires,
    "tenant_approver_required_when_msp": _either_requires,
    "cooling_off_seconds": max,
    "s5_waives_cooling_off": _both_allow,
    "quarantine_seconds": max,
    "lifetimes": _shorter_lifetimes,
    "max_failed_attempts": min,
    "repeat_case_window_seconds": max,
    "repeat_after_denial_window_seconds": max,
    "push_denial_lookback_seconds": max,  # looks further back
    "caller_reuse_window_seconds": max,
    "caller_reuse_subjects": min,  # fires on fewer subjects
    "min_review_seconds": max,  # a slower decision still alerts
    "case_idle_limit_seconds": min,  # a case expires sooner
    "approval_lifetime_seconds": min,
    "reestablishment_window_seconds": max,  # changes are undone for longer
    "role_regrant_max_seconds": min,  # roles come back for less long
    "step_up_kinds": _in_both,
    "policy_versions": _both_named,
}


class TierSubject(Protocol):
    """The authoritative attributes a tier is computed from (a ProtectedAccount has them)."""

    admin_roles: Any
    groups: Any
    mailbox_type: str
    delegations: Any
    person_id: Any


@dataclass(frozen=True)
class OwnerPortalRules:
    """The tenant's owner portal options (`owner_portal` in the policy document)."""

    allowed_attestation_formats: tuple[str, ...] = ATTESTATION_FORMATS
    password_min_length: int = 15
    confirmation_lifetime_seconds: int = 300
    enrolment_link_lifetime_seconds: int = 86_400


@dataclass(frozen=True)
class DelegationRules:
    """The tenant's mailbox delegation lengths (`mailbox_delegation` in the policy document):
    a request names a length up to `max_lifetime_seconds`, else gets the default."""

    default_lifetime_seconds: int = 86_400
    max_lifetime_seconds: int = 7 * 86_400

    def lifetime(self, requested_seconds: int | None) -> int | None:
        """The length a request gets, or None when it asks for more than the maximum."""
        if requested_seconds is None:
            return min(self.default_lifetime_seconds, self.max_lifetime_seconds)
        return requested_seconds if requested_seconds <= self.max_lifetime_seconds else None


def _texts(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


@dataclass(frozen=True, eq=False)
class TenantPolicy:
    """One validated policy version (or the platform default, `number` 0)."""

    document: dict[str, Any]
    number: int
    sha256: str
    version_id: int | None = None

    @property
    def source(self) -> str:
        """`tenant` for a tenant's activated version, `platform_default` otherwise."""
        return TENANT if self.version_id is not None else PLATFORM_DEFAULT

    def requirements(self, tier: str, case_type: str) -> Requirements:
        """The effective requirements for `tier` and `case_type` (most specific layer wins)."""
        if tier not in Tier.values:
            raise InvalidInput(f"Unknown tier {tier!r}.", code="policy.unknown_tier")
        if case_type not in CaseType.values:
            raise InvalidInput(f"Unknown case type {case_type!r}.", code="policy.unknown_case_type")
        req, _ = effective(self.document, tier, case_type)
        return Requirements(
            tier=tier,
            case_type=case_type,
            min_signal_classes=req["min_signal_classes"],
            accepted_classes=tuple(req["accepted_classes"]),
            accepted_methods=tuple(req.get("accepted_methods", METHOD_NAMES)),
            s4_alone_suffices=req["s4_alone_suffices"],
            approvals_required=req["approvals_required"],
            approver_roles=tuple(req["approver_roles"]),
            min_security_officer_approvals=req["min_security_officer_approvals"],
            security_officer_required=req["min_security_officer_approvals"] > 0,
            tenant_approver_required_when_msp=req["tenant_approver_required_when_msp"],
            cooling_off_seconds=req["cooling_off_seconds"],
            s5_waives_cooling_off=req["s5_waives_cooling_off"],
            quarantine_seconds=req["quarantine_seconds"],
            lifetimes=ArtifactLifetimes(**req["artifact_lifetimes"]),
            max_failed_attempts=req["max_failed_attempts"],
            repeat_case_window_seconds=req["repeat_case_window_seconds"],
            repeat_after_denial_window_seconds=req["repeat_after_denial_window_seconds"],
            push_denial_lookback_seconds=req.get(
                "push_denial_lookback_seconds", PUSH_DENIAL_LOOKBACK_DEFAULT
            ),
            caller_reuse_window_seconds=req.get(
                "caller_reuse_window_seconds", CALLER_REUSE_WINDOW_DEFAULT
            ),
            caller_reuse_subjects=req.get("caller_reuse_subjects", CALLER_REUSE_SUBJECTS_DEFAULT),
            min_review_seconds=req.get("min_review_seconds", MIN_REVIEW_SECONDS_DEFAULT),
            case_idle_limit_seconds=req.get("case_idle_limit_seconds", CASE_IDLE_LIMIT_DEFAULT),
            approval_lifetime_seconds=req.get(
                "approval_lifetime_seconds", approval_lifetime_default(req["cooling_off_seconds"])
            ),
            reestablishment_window_seconds=req.get(
                "reestablishment_window_seconds", REESTABLISHMENT_WINDOW_DEFAULT[tier]
            ),
            role_regrant_max_seconds=req.get("role_regrant_max_seconds", ROLE_REGRANT_MAX_DEFAULT),
            step_up_kinds=tuple(req.get("step_up", step_up_default(tier))),
            policy_versions=(self.number,),
        )

    @property
    def owner_portal(self) -> OwnerPortalRules:
        """The owner portal options, defaults filled in."""
        given = dict(self.document.get("owner_portal") or {})
        if "allowed_attestation_formats" in given:
            given["allowed_attestation_formats"] = tuple(given["allowed_attestation_formats"])
        return OwnerPortalRules(**given)

    @property
    def mailbox_delegation(self) -> DelegationRules:
        """The mailbox delegation lengths, defaults filled in."""
        return DelegationRules(**dict(self.document.get("mailbox_delegation") or {}))

    def compute_tier(self, account: TierSubject) -> tuple[str, list[str]]:
        """The account's tier by the document's tier rules, and the rules that matched.

        Every matching rule is listed (highest tier first) as `"<rule path>: <why> -> <tier>"`;
        the highest tier wins, never lower than `tier_rules.default`.
        """
        rules = self.document["tier_rules"]
        matches: list[tuple[str, str]] = []
        admin_roles = _texts(account.admin_roles)
        if admin_roles:
            held = ", ".join(admin_roles)
            matches.append((rules["admin_roles"], f"tier_rules.admin_roles: holds {held}"))
        if account.person_id:
            why = "tier_rules.staff_subject: the subject is also staff (person id set)"
            matches.append((rules["staff_subject"], why))
        member_of = {group.casefold() for group in _texts(account.groups)}
        for tier in (Tier.T2, Tier.T1):
            hits = [g for g in rules["groups"].get(tier, []) if g.casefold() in member_of]
            if hits:
                matches.append((tier, f"tier_rules.groups.{tier}: member of {', '.join(hits)}"))
        mailbox_tier = rules["mailbox_types"].get(account.mailbox_type)
        if mailbox_tier:
            why = f"tier_rules.mailbox_types.{account.mailbox_type}: {account.mailbox_type} mailbox"
            matches.append((mailbox_tier, why))
        delegates = _texts(account.delegations)
        if delegates:
            why = f"tier_rules.delegations: {len(delegates)} account(s) delegate to it"
            matches.append((rules["delegations"], why))
        default = rules["default"]
        matches.sort(key=lambda match: -_TIER_RANK[match[0]])
        tier = max([default, *(t for t, _ in matches)], key=_TIER_RANK.__getitem__)
        reasons = [f"{why} -> {t}" for t, why in matches]
        if not matches or _TIER_RANK[default] > _TIER_RANK[matches[0][0]]:
            reasons.append(f"tier_rules.default: every account is at least {default}")
        return tier, reasons


@dataclass(frozen=True, eq=False)
class CasePolicy:
    """What decides one case: the version it was opened under and the tenant's active one.

    Rule by rule the stricter of the two (`Requirements.stricter`) and the higher of the two
    tiers, so a tightening since the case opened applies to it and a loosening does not.
    """

    opened: TenantPolicy
    active: TenantPolicy

    @property
    def versions(self) -> list[int]:
        """`[opened, active]` version numbers, as the trail names them."""
        return [self.opened.number, self.active.number]

    def requirements(self, tier: str, case_type: str) -> Requirements:
        opened = self.opened.requirements(tier, case_type)
        return opened.stricter(self.active.requirements(tier, case_type))

    def compute_tier(self, account: TierSubject) -> tuple[str, list[str]]:
        """The higher of the two versions' tiers, with that version's reasons."""
        opened, active = self.opened.compute_tier(account), self.active.compute_tier(account)
        return active if _TIER_RANK[active[0]] > _TIER_RANK[opened[0]] else opened


def policy_from_source(source: str, *, number: int, version_id: int | None) -> TenantPolicy:
    """Validate `source` (memoised) and wrap it; raises PolicyInvalid if it breaks a floor."""
    doc = validated(source)
    return TenantPolicy(
        document=doc.data, number=number, sha256=source_sha256(source), version_id=version_id
    )


@cache
def platform_default() -> TenantPolicy:
    """The built-in policy for tenants without an active version (it passes every floor)."""
    source = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    return policy_from_source(source, number=0, version_id=None)

"""What a case needs, in plain words and as data."""

from __future__ import annotations

from typing import Any

from recovery.models import ProtectedAccount
from tenants.choices import CaseType, Tier
from tenants.exceptions import InvalidInput

from ..cases.methods import METHODS
from .rules import Requirements, TenantPolicy
from .selectors import policy_active

STANDARD, SECURITY = "standard", "security"
SIGNAL_NAMES = {
    "S1": "a saved recovery code",
    "S2": "a code sent to a recovery address confirmed before the case",
    "S3": "an attestation by the manager or recovery contact from their own session",
    "S4": "repeated identity proofing against the enrolment record",
    "S5": "sign-in with an authenticator still bound to the account",
}
ROLE_NAMES = {"supervisor": "a supervisor", "security_officer": "a security officer"}


def duration(seconds: int) -> str:
    """`90` → `90 seconds`, `3600` → `1 hour`, `1209600` → `14 days`."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def route_for(account: ProtectedAccount, tier: str, case_type: str) -> tuple[str, list[str]]:
    """The queue a case goes to (`standard` or `security`) and why (R-18, R-24)."""
    reasons = []
    if tier == Tier.T2:
        reasons.append("T2 cases are worked only in the security queue (R-18)")
    if account.no_helpdesk_reset:
        reasons.append("the account is flagged 'no help-desk reset' (R-18)")
    if case_type == CaseType.EXCEPTION:
        reasons.append("exception requests are reviewed by security officers (R-24)")
    return (SECURITY if reasons else STANDARD), reasons


def _summary(
    req: Requirements, route: str, tier_reasons: list[str], policy: TenantPolicy
) -> list[str]:
    verifiable = {
        METHODS[name].signal_class
        for name in req.accepted_methods
        if name in METHODS and METHODS[name].available
    }
    classes = "; ".join(
        f"{c} ({SIGNAL_NAMES[c]}{'' if c in verifiable else ', not verifiable yet'})"
        for c in req.accepted_classes
    )
    lines = [f"Tier {req.tier}: " + "; ".join(tier_reasons) + "."]
    lines.append(
        "Route: the security queue."
        if route == SECURITY
        else "Route: the standard help-desk queue."
    )
    evidence = (
        f"Evidence: at least {req.min_signal_classes} different signal class(es) from: {classes}"
    )
    if req.s4_alone_suffices:
        evidence += "; or a completed S4 on its own"
    lines.append(evidence + ". Knowledge answers never count (R-02).")
    if req.approvals_required:
        roles = " or ".join(ROLE_NAMES.get(r, r) for r in req.approver_roles)
        text = f"Approvals: {req.approvals_required}, each by {roles}"
        if req.min_security_officer_approvals:
            text += f", at least {req.min_security_officer_approvals} by a security officer"
        if req.tenant_approver_required_when_msp:
            text += (
                "; when an MSP agent opened the case, one approver must be the tenant's own staff"
            )
        lines.append(
            text + ". No approver may be the opener, executor, subject, a delegate of the subject "
            "or the same person under another account (R-21)."
        )
    else:
        lines.append("Approvals: none needed beyond the evidence.")
    if req.cooling_off_seconds:
        waiver = (
            " (waived when an S5 checked by its verifier was one of the signals)"
            if req.s5_waives_cooling_off
            and req.tier != Tier.T2
            and req.case_type != CaseType.EXCEPTION
            else ""
        )
        lines.append(
            f"Cooling-off: execution waits {duration(req.cooling_off_seconds)} after the owner "
            f"is notified{waiver}."
        )
    lt = req.lifetimes
    lines.append(
        f"Contacts added or changed in the last {duration(req.quarantine_seconds)} are not used. "
        f"Artifacts expire: SMS/voice {duration(lt.sms)}/{duration(lt.voice)}, email "
        f"{duration(lt.email)}, temporary access pass {duration(lt.temporary_access_pass)}; "
        f"disabled after {req.max_failed_attempts} failed attempts."
    )
    lines.append(
        f"Repeat attempts: a second case within {duration(req.repeat_case_window_seconds)}, or "
        f"any case within {duration(req.repeat_after_denial_window_seconds)} of a denied one, "
        "goes to the security queue."
    )
    lines.append(
        f"Detection: an MFA push-denial burst in the {duration(req.push_denial_lookback_seconds)} "
        "before a case raises it to T2; one caller identifier on cases for "
        f"{req.caller_reuse_subjects} subjects within {duration(req.caller_reuse_window_seconds)} "
        "raises an alert (recovery.detection)."
    )
    if req.reestablishment_window_seconds:
        lines.append(
            f"After the recovery, for {duration(req.reestablishment_window_seconds)}: a new "
            "authenticator, address, mailbox rule, delegate, OAuth consent or privileged role "
            "is undone and the account frozen pending review (R-35)."
        )
    if req.case_type == CaseType.PRIVILEGED_ROLE_RESTORE:
        lines.append(
            f"The suspended roles are granted back for at most "
            f"{duration(req.role_regrant_max_seconds)}, then removed again (R-19)."
        )
    if policy.source == "tenant":
        lines.append(
            f"Policy: version {policy.number} of this tenant (sha256 {policy.sha256[:12]})."
        )
    else:
        lines.append(f"Policy: the platform default (sha256 {policy.sha256[:12]}).")
    return lines


def policy_explain(account: ProtectedAccount, case_type: str) -> dict[str, Any]:
    """What a `case_type` case on `account` needs under the tenant's active policy.

    The tier is computed now from the account's authoritative attributes (never the stored
    copy). Returns JSON-ready data plus a plain-words `summary` list.
    """
    if case_type not in CaseType.values:
        raise InvalidInput(
            f"Unknown case type {case_type!r}; use one of {', '.join(CaseType.values)}.",
            code="policy.unknown_case_type",
        )
    policy = policy_active(account.tenant)
    tier, tier_reasons = policy.compute_tier(account)
    req = policy.requirements(tier, case_type)
    route, route_reasons = route_for(account, tier, case_type)
    data = req.as_dict()
    lifetimes = data.pop("lifetimes")
    return {
        "tenant": account.tenant.slug,
        "account": account.external_id,
        **data,
        "tier_reasons": tier_reasons,
        "route": route,
        "route_reasons": route_reasons,
        "artifact_lifetimes": lifetimes,
        "policy_version": policy.number,
        "policy_source": policy.source,
        "policy_sha256": policy.sha256,
        "summary": _summary(req, route, tier_reasons, policy),
    }

"""S1 during a case: the agent types the saved recovery code the caller reads out.

The owner saved ten codes before anything went wrong (`recovery.owner.codes`); each is kept
as a keyed digest (R-29) in the account's current `RecoveryCodeSet`. A check here, in one
transaction with the case locked:

1. refuses when saved codes are locked for the case: as many wrong codes as the policy's
   `max_failed_attempts` allows, never more than 5 (R-53, `recovery_code.locked`);
2. looks the typed code up by its digest among the codes of the account's current set;
3. consumes it by compare-and-set on `used_at` (R-30): of two checks of one code at the same
   moment exactly one wins, whatever locks the callers hold;
4. writes a `RecoveryCodeCheck` (the verifier record, matched or not; wrong ones count);
5. on a match, records the evidence through `evidence_from_verifier` with the code set's
   `ContactMethod`, so the quarantine rules apply to a set enrolled recently (R-04), and tells
   the owner how many codes remain (`owner.code_used`, which plans the owner's notice).

What the agent hears of a refusal is one sentence for every reason (unknown, used, of a
replaced set: `recovery_code.invalid`, R-14); the trail records the precise reason. A code read
out to anyone is used up, even when its evidence does not count for this case.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.functions import Now

from audit.context import Actor
from audit.services import attempt_recorded, record
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked

from ..cases.choices import SignalClass, Verifier
from ..cases.models import Evidence, RecoveryCase
from ..cases.services import VerifiedSignal, case_taken_decision, evidence_from_verifier
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_locked,
    requirements_for,
    work_access,
)
from ..cases.transitions import Move, transition_require
from ..challenges.models import MAX_FAILED_ATTEMPTS
from ..policy.rules import Requirements
from .codes import code_digest, code_normalise, code_well_formed, codes_remaining
from .models import RecoveryCode, RecoveryCodeCheck, RecoveryCodeSet

RECOVERY_CODE_METHOD = "recovery_code"
CODE_INPUT_MAX = 64
INVALID = "That saved recovery code is not valid."


class RecoveryCodeRefused(InvalidInput):
    """Unknown, used or of a replaced set: one answer for all, so nothing is learned from it."""

    code = "recovery_code.invalid"

    def __init__(self) -> None:
        super().__init__(INVALID)


def _locked_out() -> PolicyDenied:
    return PolicyDenied(
        "Too many wrong saved recovery codes on this case: saved codes no longer count for "
        "it. A new case is needed (R-53).",
        code="recovery_code.locked",
    )


def code_attempt_limit(req: Requirements) -> int:
    """Wrong codes a case allows: the policy's value, never above 5 (R-53)."""
    return max(1, min(req.max_failed_attempts, MAX_FAILED_ATTEMPTS))


def codes_wrong_count(case: RecoveryCase) -> int:
    """Wrong saved codes typed on this case so far."""
    return (
        RecoveryCodeCheck.objects.for_tenant(case.tenant).filter(case=case, matched=False).count()
    )


def codes_locked_for(case: RecoveryCase, req: Requirements | None = None) -> bool:
    """Whether saved codes can no longer be checked on this case (R-53)."""
    return codes_wrong_count(case) >= code_attempt_limit(req or requirements_for(case))


def case_code_set(case: RecoveryCase) -> RecoveryCodeSet | None:
    """The account's current set of saved codes (one at most), with its contact method."""
    return (
        RecoveryCodeSet.objects.for_tenant(case.tenant)
        .select_related("contact")
        .filter(account_id=case.account_id, replaced_at__isnull=True)
        .first()
    )


def _precondition(case: RecoveryCase, req: Requirements) -> tuple[str, str] | None:
    """Why no code may be checked on this case now, as (code, message), or None."""
    if not (taken := case_taken_decision(case)):
        return taken.code, taken.detail
    if SignalClass.S1 not in req.accepted_classes:
        return "evidence.class_not_accepted", "The policy does not accept S1 for this case."
    if RECOVERY_CODE_METHOD not in req.accepted_methods:
        return (
            "evidence.method_not_accepted",
            "The policy does not accept saved recovery codes for this case.",
        )
    if case_code_set(case) is None:
        return (
            "recovery_code.not_enrolled",
            "The owner has no saved recovery codes: there is nothing to check against.",
        )
    return None


def _find(case: RecoveryCase, digest: str) -> tuple[RecoveryCode | None, str]:
    """The account's code with this digest and why it cannot be used ("" when it can)."""
    code = (
        RecoveryCode.objects.for_tenant(case.tenant)
        .select_related("code_set", "code_set__contact")
        .filter(code_hash=digest, code_set__account_id=case.account_id)
        .first()
    )
    if code is None:
        return None, "unknown"
    if code.code_set.replaced_at is not None:
        return None, "replaced_set"
    if code.used_at is not None:
        return None, "used"
    return code, ""


def _consume(code: RecoveryCode, case: RecoveryCase) -> bool:
    """Compare-and-set (R-30): only a code still unused is taken, by this call alone.

    One table, no join: PostgreSQL re-checks a blocked UPDATE's own WHERE against the row
    another transaction just committed, but not a subquery's (which a join would become), so
    a join here would let both of two concurrent checks take the code. (A set is replaced only
    when the account has no case open: enrolment refuses it, so no join is needed for that.)
    """
    return bool(
        RecoveryCode.objects.for_tenant(case.tenant)
        .filter(pk=code.pk, used_at__isnull=True)
        .update(used_at=Now(), used_for=case)
    )


def _wrong(case: RecoveryCase, actor: User, who: Actor, reason: str, limit: int) -> DomainError:
    """Store the wrong check (it counts, and locks codes at the limit, even when the trail
    cannot record it: R-44), record it; return the refusal."""
    check = RecoveryCodeCheck.objects.create(
        tenant=case.tenant, case=case, checked_by=actor, matched=False
    )
    wrong = codes_wrong_count(case)
    unrecorded = attempt_recorded(
        lambda: _wrong_record(case, who, check, reason, wrong, limit), "wrong recovery code"
    )
    return unrecorded or (_locked_out() if wrong >= limit else RecoveryCodeRefused())


def _wrong_record(
    case: RecoveryCase, who: Actor, check: RecoveryCodeCheck, reason: str, wrong: int, limit: int
) -> None:
    """The record of a wrong check: a reused code's alert, and the lock at the limit."""
    data = {"check": check.pk, "reason": reason, "wrong": wrong, "limit": limit}
    record(action="owner.code_refused", actor=who, tenant=case.tenant, target=case, data=data)
    if reason == "used":
        record(
            action="token.reuse_attempt",
            actor=who,
            tenant=case.tenant,
            target=case,
            data={"kind": "recovery_code", "check": check.pk},
        )
        alert_raise(case, "token_reuse", artifact_kind="recovery_code", check=check.pk)
    if wrong >= limit:
        record(
            action="owner.codes_locked",
            actor=who,
            tenant=case.tenant,
            target=case,
            data={"wrong": wrong, "limit": limit},
        )
        alert_raise(case, "recovery_codes_locked", wrong=wrong)


def _matched(
    case: RecoveryCase, actor: User, who: Actor, code: RecoveryCode
) -> tuple[RecoveryCodeCheck, Evidence]:
    """Store the check of a consumed code and the evidence it stands for."""
    check = RecoveryCodeCheck.objects.create(
        tenant=case.tenant, case=case, checked_by=actor, matched=True, code=code
    )
    remaining = codes_remaining(code.code_set)
    evidence = evidence_from_verifier(
        case=case,
        signal=VerifiedSignal(
            method=RECOVERY_CODE_METHOD,
            verifier=Verifier.OWNER_PORTAL,
            verifier_ref=check.pk,
            contact_method=code.code_set.contact,
            details={"remaining": remaining},
        ),
        collected_by=actor,
        who=who,
    )
    check.evidence = evidence
    check.save(update_fields=["evidence"])
    record(
        action="owner.code_used",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={
            "check": check.pk,
            "code_set": code.code_set_id,
            "account": case.account.external_id,
            "remaining": remaining,
            "evidence": evidence.pk,
            "result": evidence.result,
            "reason": evidence.reason_code,
        },
    )
    return check, evidence


def recovery_code_check(*, actor: User, case: RecoveryCase, code: str) -> Evidence:
    """The agent types the saved code the caller reads out; a match records S1 evidence.

    Refused before anything is looked up, and recorded as `owner.code_refused`, when no person
    has taken the case (`case.not_taken`), the policy does not take S1 or saved codes here
    (`evidence.class_not_accepted`, `evidence.method_not_accepted`), the owner saved no codes
    (`recovery_code.not_enrolled`) or codes are locked for the case (`recovery_code.locked`).
    Otherwise every check is stored as a `RecoveryCodeCheck`; a wrong, used or replaced code
    answers `recovery_code.invalid` and counts, and the one that reaches the limit locks saved
    codes for the case (`owner.codes_locked`, an alert). A match uses the code up and returns
    the evidence: accepted, or rejected with its reason when the set was enrolled during the
    case or within the quarantine window (R-04).
    """
    enforce(ai_blocked(actor, "accept evidence"))
    typed = code_normalise(code or "")
    if not code_well_formed(typed):
        # A typing slip, not a guess: nothing is looked up and nothing counts.
        raise InvalidInput(
            "A saved recovery code has 13 letters and digits; check what you typed.",
            code="recovery_code.input_invalid",
            field_errors={"code": ["13 letters and digits, as the caller reads them out."]},
        )
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        req = requirements_for(case)
        limit = code_attempt_limit(req)
        problem = _precondition(case, req)
        if problem is None and codes_wrong_count(case) >= limit:
            problem = ("recovery_code.locked", _locked_out().message)
        if problem is not None:
            code_name, message = problem
            record(
                action="owner.code_refused",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"reason": code_name},
            )
            refusal = PolicyDenied(message, code=code_name)
        else:
            found, reason = _find(case, code_digest(typed))
            if found is not None and not _consume(found, case):
                found, reason = None, "used"  # another check took it first
            if found is None:
                refusal = _wrong(case, actor, who, reason, limit)
            else:
                _check, evidence = _matched(case, actor, who, found)
    if refusal is not None:
        raise refusal
    return evidence

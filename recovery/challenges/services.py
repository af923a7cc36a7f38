"""Verification challenges: a one-time code to the owner (S2) and a manager's attestation (S3).

The agent picks one of the account's contact methods by id (never a typed destination, R-03);
the server generates the secret, keeps only its hash, sends it, and later decides whether what
comes back counts (R-10, R-29). A challenge is used once (R-30), until its expiry by database
time (R-31), with a limited number of wrong codes (R-53); what the agent learns of a refusal is
"wrong or expired" (R-14), while the trail records the precise reason.

Every function here owns its transaction, records its audit events in it, and fails closed.
Refusals that must stay on record (a wrong code, a reused code, a blocked channel) are written
in the transaction, which commits before the refusal is raised.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now

from audit.context import Actor
from audit.services import attempt_recorded, record
from tenants.choices import PrincipalKind
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.rls import tenant_scope

from ..cases.channels import channel_problem
from ..cases.choices import CaseStatus, SignalClass, Verifier
from ..cases.models import Evidence, RecoveryCase
from ..cases.services import (
    VerifiedSignal,
    case_taken_decision,
    evidence_from_verifier,
    evidence_refusal_record,
)
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_locked,
    db_now,
    requirements_for,
    work_access,
)
from ..cases.transitions import Move, transition_require
from ..choices import ContactKind
from ..messaging import Delivery, email_send, message_send
from ..models import ContactMethod, ProtectedAccount
from ..policy.rules import Requirements
from .choices import ChallengeChannel, ChallengeKind, ChallengeStatus, ConfirmedVia
from .models import LIFETIME_CEILINGS, MAX_FAILED_ATTEMPTS, VerificationChallenge
from .selectors import challenge_find_by_link, expired_now
from .tokens import code_hash, code_matches, code_new, code_normalise, link_digest, link_token_new

CHANNEL_OF_KIND = {
    ContactKind.MOBILE: ChallengeChannel.SMS,
    ContactKind.DESK_PHONE: ChallengeChannel.VOICE,
    ContactKind.EMAIL: ChallengeChannel.EMAIL,
}
METHOD_OF_CHANNEL = {
    ChallengeChannel.SMS: "sms_code",
    ChallengeChannel.VOICE: "voice_code",
    ChallengeChannel.EMAIL: "email_code",
}
ATTESTATION_METHOD = "manager_attestation"
# Our choice (R-29 "throttling"): challenges of one kind a case may send, each with its own
# failed-attempt limit. After that, or after any code was disabled, a new case is needed.
MAX_CHALLENGES_PER_CASE = 5
CONFIRM_PATH = "verify"  # mounted at the site root by recovery.challenges.urls
ATTEST_PATH = "attest"

WRONG_OR_EXPIRED = "The code is wrong or has expired."
LINK_INVALID = "This link is not valid or has expired."
CHANNEL_REFUSALS = {
    "channel_not_in_system_of_record": (
        "That contact method is not one the system of record holds for this account (R-03)."
    ),
    "contact_added_during_case": (
        "That contact method was added after the case opened; it cannot carry a code (R-04)."
    ),
    "contact_changed_in_quarantine": (
        "That contact method was added or changed within the quarantine window; it cannot "
        "carry a code (R-04)."
    ),
    "sim_change_recent": (
        "The carrier reports a recent SIM change on that number; it cannot carry a code (R-04)."
    ),
}


class ChallengeRefused(InvalidInput):
    """Wrong, expired, used or superseded: one answer for all, so nothing is learned from it."""

    code = "challenge.code_invalid"

    def __init__(self, message: str = WRONG_OR_EXPIRED, *, code: str | None = None) -> None:
        super().__init__(message, code=code)


def _locked_out() -> PolicyDenied:
    return PolicyDenied(
        "Too many wrong codes: this challenge is disabled. A new case is needed (R-53).",
        code="challenge.locked",
    )


# --- sending --------------------------------------------------------------------------------


def _lifetime(req: Requirements, channel: str) -> int:
    """The policy's lifetime for the channel, never above the R-31 ceiling."""
    return max(0, min(getattr(req.lifetimes, channel), LIFETIME_CEILINGS[channel]))


def _attempt_limit(req: Requirements) -> int:
    """Wrong codes before the challenge is disabled: the policy's value, never above 5 (R-53)."""
    return max(1, min(req.max_failed_attempts, MAX_FAILED_ATTEMPTS))


def _link(path: str, token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/{path}/{token}/"


def _in_tenant(case: RecoveryCase, contact: ContactMethod | None) -> ContactMethod | None:
    """The contact as the tenant's own rows have it now (an id of another tenant is None)."""
    if contact is None:
        return None
    return ContactMethod.objects.for_tenant(case.tenant).filter(pk=contact.pk).first()


def _send_limits(case: RecoveryCase, kind: str) -> tuple[str, str] | None:
    sent = VerificationChallenge.objects.for_tenant(case.tenant).filter(case=case, kind=kind)
    if sent.filter(status=ChallengeStatus.DISABLED).exists():
        return (
            "challenge.locked",
            "A code on this case was disabled after too many wrong entries; a new case is "
            "needed (R-53).",
        )
    if sent.count() >= MAX_CHALLENGES_PER_CASE:
        return (
            "challenge.send_limit",
            f"This case has sent {MAX_CHALLENGES_PER_CASE} challenges of this kind; a new "
            "case is needed.",
        )
    return None


def _not_taken(case: RecoveryCase) -> tuple[str, str] | None:
    """R-66: an AI-drafted case sends nothing until a person has taken it."""
    decision = case_taken_decision(case)
    return None if decision else (decision.code, decision.detail)


def _code_problem(
    case: RecoveryCase, contact: ContactMethod | None, req: Requirements
) -> tuple[str, str] | None:
    """Why no code may go to `contact` on this case, as (code, message), or None."""
    if problem := channel_problem(case, contact, req.quarantine_seconds):
        return f"evidence.{problem}", CHANNEL_REFUSALS.get(
            problem, "That contact method cannot carry a code."
        )
    assert contact is not None  # channel_problem refuses a missing contact
    if contact.kind not in CHANNEL_OF_KIND:
        return (
            "challenge.channel_cannot_carry_code",
            "Codes go to a mobile phone, a desk phone or an email address on record.",
        )
    if SignalClass.S2 not in req.accepted_classes:
        return "evidence.class_not_accepted", "The policy does not accept S2 for this case."
    return _send_limits(case, ChallengeKind.CODE)


def _refused_send(
    case: RecoveryCase,
    who: Actor,
    kind: str,
    contact: ContactMethod | None,
    problem: tuple[str, str],
    **extra: object,
) -> PolicyDenied:
    """Record a refused send (an alert too for a swapped SIM, R-55) and return the refusal."""
    code, message = problem
    hint = contact.masked if contact is not None else ""
    record(
        action="verification.challenge_refused",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={
            "code": code,
            "kind": kind,
            "contact": hint,
            "contact_kind": contact.kind if contact is not None else "",
            **extra,
        },
    )
    if code == "evidence.sim_change_recent":
        alert_raise(case, "sim_swap_recovery_attempt", contact=hint, challenge_kind=kind)
    return PolicyDenied(message, code=code)


def _challenge_new(
    *,
    actor: User,
    case: RecoveryCase,
    contact: ContactMethod,
    kind: str,
    channel: str,
    req: Requirements,
    code: str = "",
    token: str = "",
    attester_person: object = None,
) -> tuple[VerificationChallenge, list[int], int]:
    """Supersede the open challenge of this case, contact and kind, then store the new one
    (hashes only). Returns it, the superseded ids and its lifetime in seconds."""
    open_ones = VerificationChallenge.objects.for_tenant(case.tenant).filter(
        case=case, contact_method=contact, kind=kind, status=ChallengeStatus.OPEN
    )
    superseded = list(open_ones.values_list("pk", flat=True))
    open_ones.update(status=ChallengeStatus.SUPERSEDED)
    lifetime = _lifetime(req, channel)
    now = db_now(case)
    challenge = VerificationChallenge.objects.create(
        tenant=case.tenant,
        case=case,
        kind=kind,
        contact_method=contact,
        channel=channel,
        contact_hint=contact.masked,
        code_hash=code_hash(code) if code else "",
        link_hash=link_digest(token) if token else None,
        attester_person=attester_person,
        max_attempts=_attempt_limit(req),
        requested_by=actor,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    return challenge, superseded, lifetime


def _until(challenge: VerificationChallenge) -> str:
    return challenge.expires_at.strftime("%Y-%m-%d %H:%M UTC")


def _code_message(challenge: VerificationChallenge, code: str, link: str) -> tuple[str, str]:
    """What the owner receives: what it is for, never which facts matched (R-14)."""
    subject = "Your help-desk verification code"
    if challenge.channel != ChallengeChannel.EMAIL:
        lifetime = (challenge.expires_at - challenge.created_at).total_seconds()
        minutes = max(1, round(lifetime / 60))
        spoken = " ".join(code) if challenge.channel == ChallengeChannel.VOICE else code
        return subject, (
            f"Your help-desk verification code is {spoken}. Read it to the help-desk "
            f"agent you are speaking with now. It works once and expires in {minutes} minutes. "
            "If you did not ask the help desk for help, do not share it."
        )
    return subject, (
        "Someone asked the help desk to recover access to your account.\n\n"
        f"Verification code: {code}\n\n"
        "If it was you, read the code to the help-desk agent you are speaking with, or confirm "
        f"here:\n{link}\n\n"
        f"The code and the link work once, until {_until(challenge)}.\n"
        "If you did not ask the help desk for help, do not share the code or confirm the link, "
        "and tell your security team."
    )


def _sent_or_refused(
    challenge: VerificationChallenge,
    delivery: Delivery,
    who: Actor,
    *,
    lifetime: int,
    superseded: list[int],
    action: str,
) -> PolicyDenied | None:
    """Record the delivery; a failed one leaves the challenge unusable and is refused."""
    case = challenge.case
    if not delivery.ok:
        challenge.status = ChallengeStatus.UNDELIVERED
        challenge.delivery_provider = delivery.provider[:32]
        challenge.save(update_fields=["status", "delivery_provider"])
        return _refused_send(
            case,
            who,
            challenge.kind,
            challenge.contact_method,
            (
                "challenge.delivery_failed",
                "The message could not be sent; nothing was issued. Try another contact "
                "method on record.",
            ),
            challenge=challenge.pk,
            provider=delivery.provider,
            error=delivery.error[:300],
        )
    challenge.delivery_provider = delivery.provider[:32]
    challenge.save(update_fields=["delivery_provider"])
    record(
        action=action,
        actor=who,
        tenant=case.tenant,
        target=case,
        data={
            "challenge": challenge.pk,
            "kind": challenge.kind,
            "channel": challenge.channel,
            "contact": challenge.contact_hint,
            "contact_kind": challenge.contact_method.kind,
            "contact_source": challenge.contact_method.source,
            "expires_at": challenge.expires_at,
            "lifetime_seconds": lifetime,
            "max_attempts": challenge.max_attempts,
            "link": challenge.link_hash is not None,
            "superseded": superseded,
            "provider": delivery.provider,
        },
    )
    return None


def challenge_send(
    *,
    actor: User,
    case: RecoveryCase,
    contact_method: ContactMethod | None,
    caller_supplied_destination: str = "",
) -> VerificationChallenge:
    """Send a one-time code (S2) to one of the account's contact methods, chosen by id.

    Refused with the channel's reason (`evidence.contact_added_during_case`,
    `evidence.contact_changed_in_quarantine`, `evidence.sim_change_recent`,
    `evidence.channel_not_in_system_of_record`, R-03/R-04) or a limit (`challenge.locked`,
    `challenge.send_limit`); a refusal is recorded as `verification.challenge_refused`. A newer
    code supersedes the open one for the same contact. Email also carries a confirmation link.
    The code and the link token exist only in the message; the row keeps their hashes.

    A case an AI assistant drafted sends nothing until a person has taken it (`case.not_taken`,
    R-66). `caller_supplied_destination` is where the caller asked us to send the code: any
    value refuses the send (`evidence.caller_supplied_channel`, R-03) and is recorded as
    `verification.signal_rejected` without the destination itself.
    """
    enforce(ai_blocked(actor, "send a verification code"))
    if caller_supplied_destination.strip():
        evidence_refusal_record(
            actor=actor, case=case, code="caller_supplied_channel", data={"kind": "code"}
        )
        raise PolicyDenied(
            "A code goes only to a contact method the system of record held before the case, "
            "never to a number or address the caller gives (R-03).",
            code="evidence.caller_supplied_channel",
        )
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        req = requirements_for(case)
        contact = _in_tenant(case, contact_method)
        problem = _not_taken(case) or _code_problem(case, contact, req)
        if problem is not None:
            refusal = _refused_send(case, who, ChallengeKind.CODE, contact, problem)
        else:
            assert contact is not None
            channel = CHANNEL_OF_KIND[contact.kind]
            code = code_new(channel)
            token = link_token_new() if channel == ChallengeChannel.EMAIL else ""
            challenge, superseded, lifetime = _challenge_new(
                actor=actor,
                case=case,
                contact=contact,
                kind=ChallengeKind.CODE,
                channel=channel,
                req=req,
                code=code,
                token=token,
            )
            subject, body = _code_message(
                challenge, code, _link(CONFIRM_PATH, token) if token else ""
            )
            # Sent inside the transaction: the agent must know whether it left. A rollback
            # after this leaves a code that matches no row.
            delivery = message_send(contact, subject=subject, body=body)
            del code, token, body
            refusal = _sent_or_refused(
                challenge,
                delivery,
                who,
                lifetime=lifetime,
                superseded=superseded,
                action="verification.challenge_sent",
            )
    if refusal is not None:
        raise refusal
    return challenge


# --- checking what comes back ---------------------------------------------------------------


def _locked_challenge(case: RecoveryCase, pk: int) -> VerificationChallenge | None:
    """The challenge row, locked (after its case: the fixed order), with `expired` by DB time."""
    return (
        VerificationChallenge.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("contact_method")
        .annotate(expired=expired_now())
        .filter(case=case, pk=pk)
        .first()
    )


def _failed(challenge: VerificationChallenge, who: Actor, reason: str, **data: object) -> None:
    record(
        action="verification.challenge_failed",
        actor=who,
        tenant=challenge.case.tenant,
        target=challenge.case,
        data={"challenge": challenge.pk, "kind": challenge.kind, "reason": reason, **data},
    )


def _wrong_code_record(
    challenge: VerificationChallenge, who: Actor, via: str, attempts: int, locked: bool
) -> None:
    """The record of a wrong code: the challenge disabled by it, or one more failure."""
    if locked:
        record(
            action="verification.challenge_disabled",
            actor=who,
            tenant=challenge.case.tenant,
            target=challenge.case,
            data={"challenge": challenge.pk, "attempts": attempts},
        )
    else:
        _failed(challenge, who, "wrong_code", via=via, attempts=attempts)


def _reuse(challenge: VerificationChallenge, who: Actor, via: str) -> None:
    """A consumed challenge presented again: `token.reuse_attempt` and an alert (R-30)."""
    record(
        action="token.reuse_attempt",
        actor=who,
        tenant=challenge.case.tenant,
        target=challenge.case,
        data={"challenge": challenge.pk, "kind": challenge.kind, "via": via},
    )
    alert_raise(challenge.case, "token_reuse", challenge=challenge.pk, via=via)


def _present(
    challenge: VerificationChallenge, *, matched: bool, via: str, who: Actor
) -> DomainError | None:
    """One presentation of a locked challenge: recorded, and None when it consumed it."""
    if challenge.status == ChallengeStatus.VERIFIED:
        if matched:
            _reuse(challenge, who, via)
        else:
            _failed(challenge, who, "consumed", via=via)
        return ChallengeRefused()
    if challenge.status == ChallengeStatus.DISABLED:
        _failed(challenge, who, "disabled", via=via)
        return _locked_out()
    if challenge.status != ChallengeStatus.OPEN:
        _failed(challenge, who, challenge.status, via=via)
        return ChallengeRefused()
    rows = VerificationChallenge.objects.for_tenant(challenge.case.tenant).filter(pk=challenge.pk)
    if challenge.expired:
        rows.update(status=ChallengeStatus.EXPIRED)
        _failed(challenge, who, "expired", via=via)
        return ChallengeRefused()
    if not matched:
        # Counted, and disabled at the limit, even when the trail cannot record it.
        rows.update(attempts=F("attempts") + 1)
        attempts = rows.values_list("attempts", flat=True).get()
        locked = attempts >= challenge.max_attempts
        if locked:
            rows.update(status=ChallengeStatus.DISABLED)
        unrecorded = attempt_recorded(
            lambda: _wrong_code_record(challenge, who, via, attempts, locked), "wrong code"
        )
        return unrecorded or (_locked_out() if locked else ChallengeRefused())
    # Compare-and-set: only an open, unexpired row (by database time) is consumed.
    won = rows.filter(status=ChallengeStatus.OPEN, expires_at__gt=Now()).update(
        status=ChallengeStatus.VERIFIED, verified_at=Now(), verified_via=via
    )
    if not won:
        _failed(challenge, who, "not_open", via=via)
        return ChallengeRefused()
    return None


def _accepted(
    challenge: VerificationChallenge,
    *,
    evidence_actor: User,
    who: Actor,
    via: str,
    confirmed_by: User | None = None,
) -> Evidence:
    """Record the evidence the consumed challenge stands for, in the same transaction."""
    if challenge.kind == ChallengeKind.CODE:
        method = METHOD_OF_CHANNEL[challenge.channel]
        details: dict[str, object] = {"challenge": challenge.pk, "via": via}
    else:
        method = ATTESTATION_METHOD
        assert confirmed_by is not None
        details = {
            "challenge": challenge.pk,
            "via": via,
            "attested_by": confirmed_by.get_username(),
            "attested_by_person": str(confirmed_by.person_id),
        }
    evidence = evidence_from_verifier(
        case=challenge.case,
        signal=VerifiedSignal(
            method=method,
            verifier=Verifier.ATTESTATION
            if challenge.kind == ChallengeKind.ATTESTATION
            else Verifier.CHALLENGE,
            verifier_ref=challenge.pk,
            contact_method=challenge.contact_method,
            details=details,
        ),
        collected_by=evidence_actor,
        who=who,
    )
    challenge.refresh_from_db(fields=["status", "verified_at", "verified_via", "attempts"])
    challenge.evidence, challenge.confirmed_by = evidence, confirmed_by
    challenge.save(update_fields=["evidence", "confirmed_by"])
    record(
        action=(
            "verification.attestation_confirmed"
            if challenge.kind == ChallengeKind.ATTESTATION
            else "verification.challenge_verified"
        ),
        actor=who,
        tenant=challenge.case.tenant,
        target=challenge.case,
        data={
            "challenge": challenge.pk,
            "via": via,
            "evidence": evidence.pk,
            "result": evidence.result,
            "reason": evidence.reason_code,
            "contact": challenge.contact_hint,
        },
    )
    return evidence


def challenge_verify(
    *, actor: User, case: RecoveryCase, challenge: VerificationChallenge, code: str
) -> Evidence:
    """The agent types the code the owner read back; a match records the S2 evidence.

    Constant-time comparison with the stored hash; expiry by database time at this moment;
    each wrong code counts under the row lock and the last allowed one disables the challenge
    (`challenge.locked`, R-53); a match consumes it by compare-and-set and records the
    evidence in the same transaction. A consumed code presented again is refused like a wrong
    one and recorded as `token.reuse_attempt` with an alert (R-30). The agent only ever hears
    "wrong or expired" (`challenge.code_invalid`, R-14).
    """
    enforce(ai_blocked(actor, "accept evidence"))
    code = code_normalise(code)
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        row = _locked_challenge(case, challenge.pk)
        if row is None:
            raise ChallengeRefused()
        row.case = case
        if row.kind != ChallengeKind.CODE:
            _failed(row, who, "not_a_code", via=ConfirmedVia.CODE)
            refusal = ChallengeRefused()
        else:
            matched = code_matches(code, row.code_hash)
            refusal = _present(row, matched=matched, via=ConfirmedVia.CODE, who=who)
        if refusal is None:
            evidence = _accepted(row, evidence_actor=actor, who=who, via=ConfirmedVia.CODE)
    if refusal is not None:
        raise refusal
    return evidence


def challenge_link_confirm(*, token: str) -> Evidence:
    """The owner's POST on the emailed confirmation link: counts like a correct code.

    The link is single-use and bound to its challenge; a second use is refused like an unknown
    link and recorded as `token.reuse_attempt` with an alert. The evidence is recorded in the
    name of the agent who sent the code (the owner has no account here); the trail's
    `verification.challenge_verified` names the account owner.
    """
    found = challenge_find_by_link(token=token, kind=ChallengeKind.CODE)
    if found is None:
        raise ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
    refusal: DomainError | None = None
    owner = Actor.system("account-owner")
    with tenant_scope([found.tenant_id]):
        case = case_locked(found.case)
        row = _locked_challenge(case, found.pk)
        if row is None or not hmac.compare_digest(row.link_hash or "", link_digest(token)):
            raise ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
        row.case = case
        if case.status != CaseStatus.COLLECTING_EVIDENCE:
            _failed(row, owner, "case_not_collecting", via=ConfirmedVia.LINK)
            refusal = ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
        else:
            refusal = _present(row, matched=True, via=ConfirmedVia.LINK, who=owner)
        if refusal is None:
            evidence = _accepted(
                row, evidence_actor=row.requested_by, who=owner, via=ConfirmedVia.LINK
            )
    if refusal is not None:
        raise ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
    return evidence


# --- S3: the manager's attestation ----------------------------------------------------------


def _manager_of(account: ProtectedAccount) -> ProtectedAccount | None:
    if not account.manager_external_id:
        return None
    return (
        ProtectedAccount.objects.for_tenant(account.tenant)
        .filter(external_id=account.manager_external_id)
        .first()
    )


def _attestation_problem(
    case: RecoveryCase, actor: User, contact: ContactMethod | None, req: Requirements
) -> tuple[tuple[str, str] | None, ProtectedAccount | None]:
    """Why no attestation may be asked for, as (code, message), and the manager's account."""
    if contact is None:
        return (
            "attestation.no_manager_contact",
            "The system of record holds no manager contact for this account.",
        ), None
    if problem := channel_problem(case, contact, req.quarantine_seconds):
        return (
            f"evidence.{problem}",
            CHANNEL_REFUSALS.get(problem, "That contact cannot carry a link."),
        ), None
    if "@" not in contact.value:
        return (
            "attestation.manager_contact_not_email",
            "Attestation links go by email only; the manager contact on record is not one.",
        ), None
    manager = _manager_of(case.account)
    if manager is None:
        return (
            "attestation.manager_unknown",
            "The account's manager is not among this tenant's accounts.",
        ), None
    people = {case.account.person_id, case.opened_by_person, actor.person_id}
    if manager.person_id is None or not (
        User.objects.filter(
            person_id=manager.person_id, is_active=True, kind=PrincipalKind.HUMAN
        ).exists()
    ):
        return (
            "attestation.manager_not_staff",
            "The manager has no Vouchsafe sign-in, so cannot attest from their own session.",
        ), manager
    if manager.person_id in people:
        return (
            "sod.attester_is_party",
            "The manager is the subject or the agent of this case and cannot attest to it.",
        ), manager
    if SignalClass.S3 not in req.accepted_classes:
        return (
            "evidence.class_not_accepted",
            "The policy does not accept S3 for this case.",
        ), manager
    return _send_limits(case, ChallengeKind.ATTESTATION), manager


def _attestation_message(
    challenge: VerificationChallenge, case: RecoveryCase, link: str
) -> tuple[str, str]:
    return "Please confirm a help-desk request", (
        f"The help desk is recovering access for {case.account.display_name}, who reports to "
        "you, and asks you to confirm that the request is genuine.\n\n"
        f"Sign in to Vouchsafe with your own account and confirm here:\n{link}\n\n"
        f"The link works once, only for you, until {_until(challenge)}.\n"
        "If you know nothing of this request, do not confirm it; tell your security team."
    )


def attestation_request(*, actor: User, case: RecoveryCase) -> VerificationChallenge:
    """Ask the subject's manager to attest (S3) from their own signed-in session.

    The link (256 bits, stored hashed, email ceiling of 24 h at most) goes to the `manager`
    contact the system of record held before the case opened. It is bound to the person
    (`person_id`) of the manager's own account; only that person's POST records the evidence
    (`attestation_confirm`), never the agent's word.
    """
    enforce(ai_blocked(actor, "request an attestation"))
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        req = requirements_for(case)
        contact = (
            ContactMethod.objects.for_tenant(case.tenant)
            .filter(account=case.account, kind=ContactKind.MANAGER, replaced_at__isnull=True)
            .order_by("registered_at", "pk")
            .first()
        )
        problem, manager = _attestation_problem(case, actor, contact, req)
        problem = _not_taken(case) or problem
        if problem is not None:
            refusal = _refused_send(
                case,
                who,
                ChallengeKind.ATTESTATION,
                contact,
                problem,
                manager=manager.external_id if manager else "",
            )
        else:
            assert contact is not None and manager is not None
            token = link_token_new()
            challenge, superseded, lifetime = _challenge_new(
                actor=actor,
                case=case,
                contact=contact,
                kind=ChallengeKind.ATTESTATION,
                channel=ChallengeChannel.EMAIL,
                req=req,
                token=token,
                attester_person=manager.person_id,
            )
            subject, body = _attestation_message(challenge, case, _link(ATTEST_PATH, token))
            delivery = email_send(contact.value, subject=subject, body=body)
            del token, body
            refusal = _sent_or_refused(
                challenge,
                delivery,
                who,
                lifetime=lifetime,
                superseded=superseded,
                action="verification.attestation_requested",
            )
    if refusal is not None:
        raise refusal
    return challenge


def attestation_confirm(*, actor: User, token: str) -> Evidence:
    """The manager, signed in with their own account, confirms: records S3 evidence.

    Anyone else signed in is refused (`attestation.wrong_person`), recorded as
    `policy.violation` with an alert, and the link stays usable for the right person. A second
    use is refused like an unknown link and recorded as `token.reuse_attempt` with an alert.
    """
    enforce(ai_blocked(actor, "attest a recovery"))
    found = challenge_find_by_link(token=token, kind=ChallengeKind.ATTESTATION)
    if found is None:
        raise ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        case = case_locked(found.case)
        row = _locked_challenge(case, found.pk)
        if row is None or not hmac.compare_digest(row.link_hash or "", link_digest(token)):
            raise ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
        row.case = case
        who = Actor.for_user(actor, organisation=case.tenant.name)
        parties = {case.account.person_id, case.opened_by_person, row.requested_by.person_id}
        if (
            not actor.is_human
            or actor.person_id is None
            or actor.person_id != row.attester_person
            or actor.person_id in parties
        ):
            record(
                action="policy.violation",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"code": "attestation.wrong_person", "challenge": row.pk},
            )
            alert_raise(
                case, "attestation_wrong_person", challenge=row.pk, user=actor.get_username()
            )
            refusal = PolicyDenied(
                "This confirmation is for another person. Sign in with your own account.",
                code="attestation.wrong_person",
            )
        elif case.status != CaseStatus.COLLECTING_EVIDENCE:
            _failed(row, who, "case_not_collecting", via=ConfirmedVia.ATTESTATION)
            refusal = ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
        else:
            refusal = _present(row, matched=True, via=ConfirmedVia.ATTESTATION, who=who)
            if refusal is not None:
                refusal = ChallengeRefused(LINK_INVALID, code="challenge.link_invalid")
        if refusal is None:
            evidence = _accepted(
                row,
                evidence_actor=row.requested_by,
                who=who,
                via=ConfirmedVia.ATTESTATION,
                confirmed_by=actor,
            )
    if refusal is not None:
        raise refusal
    return evidence

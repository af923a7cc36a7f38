"""S5 during a case: in-app confirmation with number matching and a passkey.

The agent asks for it (`confirmation_request`): Vouchsafe draws a two-digit number (00 to 99,
from `secrets`) that the agent reads out to the caller, a nonce and a one-time link, and sends
the link to the owner's addresses on record (the rules of case notices: held before the case,
none R-04 excludes now). Only the link's SHA-256 is kept (R-29). Neither the message nor the
trail ever holds the number.

On the page the link opens (no session: the link plus the passkey are the proof) the owner
sees the organisation, the agent and what is asked, and *types* the number they hear
(`confirmation_match`); the page shows no candidates to choose from. Something that is not two
digits is a typing slip: refused with a clear message, nothing counts. A wrong number counts
an attempt, and a request allows `MAX_ATTEMPTS_PER_REQUEST` (2): one mistype. Someone who
guesses, as push fatigue makes people do, gets past the number at most 2 times in 100; after
the limit the request fails. The right number gets WebAuthn options whose challenge is
computed here, never taken from the browser: SHA-256 over ("vouchsafe-confirm", case id,
nonce, number). The signed assertion (`confirmation_assert`) is verified against one of the
account's eligible passkeys (active, registered before the case and outside the quarantine
window); only then is the S5 evidence recorded, in the name of the agent who asked, with the
passkey's `ContactMethod`. A replayed assertion, an unenrolled authenticator, a wrong origin are
refused and counted against the same limit; a signature counter that goes back disables the
passkey (a clone) and fails the request.

"No, this wasn't me" on the same page (`confirmation_repudiate`) repudiates the case through
the notices' own path (R-41).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import attempt_recorded, record
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope, tenant_scope

from ..cases.channels import channel_problem
from ..cases.choices import CaseStatus, SignalClass, Verifier
from ..cases.models import Evidence, RecoveryCase
from ..cases.services import VerifiedSignal, case_taken_decision, evidence_from_verifier
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_locked,
    db_now,
    requirements_for,
    work_access,
)
from ..cases.services.repudiation import case_repudiate
from ..cases.transitions import Move, transition_require
from ..challenges.models import MAX_FAILED_ATTEMPTS
from ..choices import ContactKind
from ..models import ContactMethod
from ..notifications.models import NoticeEvent, OwnerNotice
from ..notifications.services import link_notices_send
from ..policy.rules import Requirements
from ..policy.selectors import policy_active
from . import webauthn
from .choices import ConfirmationStatus, PasskeyStatus
from .models import OwnerConfirmation, OwnerPasskey
from .passkeys import passkey_mark_cloned

PASSKEY_METHOD = "passkey"
CHALLENGE_LABEL = b"vouchsafe-confirm"
CONFIRM_PATH = "owner/confirm"
OWNER = Actor.system("account-owner")
# The number the owner types: two digits, 00 to 99.
NUMBER_DIGITS = 2
NUMBER_FORMAT = re.compile(rf"[0-9]{{{NUMBER_DIGITS}}}")
# Our choices: requests one case may send (against push fatigue), and failed answers one
# request allows (wrong numbers and refused passkey answers alike; never above the R-53
# ceiling). Two is one mistype: typing at random gets past the number about 2 times in 100.
MAX_CONFIRMATIONS_PER_CASE = 5
MAX_ATTEMPTS_PER_REQUEST = 2
LIFETIME_BOUNDS = (60, 900)
# What can carry a link the owner opens on their device: not a desk phone's voice call.
LINK_CONTACT_KINDS = (ContactKind.EMAIL, ContactKind.MOBILE)

LINK_INVALID = "This confirmation link is not valid or has expired."
REFUSALS = {
    "case.not_taken": (
        "An AI assistant drafted this case; a person must take it before anything is sent "
        "for it (R-66)."
    ),
    "confirmation.no_eligible_passkey": (
        "The owner has no passkey registered before this case and outside the quarantine "
        "window: an in-app confirmation cannot prove anything here (R-04)."
    ),
    "confirmation.no_address": (
        "No address the system of record held before the case can carry the request."
    ),
    "confirmation.delivery_failed": (
        "The request could not be sent to any address on record; nothing is waiting for the owner."
    ),
    "confirmation.request_limit": (
        f"This case has asked for {MAX_CONFIRMATIONS_PER_CASE} in-app confirmations; a new "
        "case is needed."
    ),
    "confirmation.locked": (
        "An in-app confirmation on this case failed after too many wrong answers; a new case "
        "is needed (R-53)."
    ),
    "evidence.class_not_accepted": "The policy does not accept S5 for this case.",
    "evidence.method_not_accepted": "The policy does not accept a passkey for this case.",
}


class ConfirmationRefused(InvalidInput):
    """What the owner's page hears of any refusal of a link: one answer for all."""

    code = "confirmation.link_invalid"

    def __init__(
        self, message: str = LINK_INVALID, *, code: str | None = None, attempts_left: int = 0
    ) -> None:
        super().__init__(message, code=code)
        self.attempts_left = attempts_left


def _refusal(code: str) -> PolicyDenied:
    return PolicyDenied(REFUSALS[code], code=code)


# --- the secrets ------------------------------------------------------------------------------


def link_digest(token: str) -> str:
    return hashlib.sha256((token or "").encode("utf-8", "replace")).hexdigest()


def confirmation_challenge(case_id: int, nonce: str, number: str) -> bytes:
    """The WebAuthn challenge of one confirmation: bound to the case, the nonce and the number."""
    parts = (CHALLENGE_LABEL, str(case_id).encode(), nonce.encode(), number.encode())
    return hashlib.sha256(b"\x00".join(parts)).digest()


def number_new() -> str:
    """The number the agent reads out: uniform over 00..99, always two digits."""
    return f"{secrets.randbelow(10**NUMBER_DIGITS):0{NUMBER_DIGITS}d}"


def number_normalise(text: object) -> str:
    """What the owner typed, without the spaces a phone keyboard may add around it."""
    return str(text or "").strip()


def number_well_formed(typed: str) -> bool:
    """Two ASCII digits: anything else is a typing slip, not an answer."""
    return NUMBER_FORMAT.fullmatch(typed) is not None


# --- reads ------------------------------------------------------------------------------------


def _expired_now() -> ExpressionWrapper:
    return ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField())


def eligible_passkeys(case: RecoveryCase, req: Requirements | None = None) -> list[OwnerPasskey]:
    """The account's passkeys that can prove S5 for this case now: active, still on record,
    registered before the case opened and outside the quarantine window (R-04)."""
    req = req or requirements_for(case)
    rows = (
        OwnerPasskey.objects.for_tenant(case.tenant)
        .select_related("contact")
        .filter(account_id=case.account_id, status=PasskeyStatus.ACTIVE)
        .order_by("pk")
    )
    return [p for p in rows if channel_problem(case, p.contact, req.quarantine_seconds) is None]


def confirmation_latest(case: RecoveryCase) -> OwnerConfirmation | None:
    """The case's newest confirmation request, with `expired` by database time (or None)."""
    return (
        OwnerConfirmation.objects.for_tenant(case.tenant)
        .annotate(expired=_expired_now())
        .filter(case=case)
        .order_by("-created_at", "-pk")
        .first()
    )


def confirmation_find_by_link(token: str) -> OwnerConfirmation | None:
    """The confirmation a link names, across tenants (the token names the tenant)."""
    if not token:
        return None
    with system_scope():
        return (
            OwnerConfirmation.objects.select_related(
                "tenant", "case", "case__account", "requested_by"
            )
            .annotate(expired=_expired_now())
            .filter(link_hash=link_digest(token))
            .first()
        )


def confirmation_usable(confirmation: OwnerConfirmation | None) -> bool:
    """Whether the owner could still answer it (for the page a GET shows)."""
    return (
        confirmation is not None
        and confirmation.status == ConfirmationStatus.OPEN
        and not confirmation.expired
        and confirmation.case.status == CaseStatus.COLLECTING_EVIDENCE
    )


def agent_name(user: User) -> str:
    """How the owner's page names the agent who asked."""
    return user.get_full_name() or user.get_username()


# --- asking -----------------------------------------------------------------------------------


def _request_problem(
    case: RecoveryCase, req: Requirements, passkeys: list[OwnerPasskey]
) -> str | None:
    if not case_taken_decision(case):
        return "case.not_taken"
    if SignalClass.S5 not in req.accepted_classes:
        return "evidence.class_not_accepted"
    if PASSKEY_METHOD not in req.accepted_methods:
        return "evidence.method_not_accepted"
    if not passkeys:
        return "confirmation.no_eligible_passkey"
    asked = OwnerConfirmation.objects.for_tenant(case.tenant).filter(case=case)
    if asked.filter(status=ConfirmationStatus.FAILED, attempts__gte=F("max_attempts")).exists():
        return "confirmation.locked"
    if asked.count() >= MAX_CONFIRMATIONS_PER_CASE:
        return "confirmation.request_limit"
    return None


def _owner_addresses(case: RecoveryCase, req: Requirements) -> list[ContactMethod]:
    """The owner's own addresses that may carry the request: the case notices' rule (R-38,
    R-04), for an email address or a mobile phone. Never the manager or a security contact:
    the link is the owner's alone."""
    held = (
        ContactMethod.objects.for_tenant(case.tenant)
        .filter(
            account_id=case.account_id,
            is_notification=True,
            replaced_at__isnull=True,
            registered_at__lt=case.created_at,
            kind__in=LINK_CONTACT_KINDS,
        )
        .order_by("pk")
    )
    now = timezone.now()
    return [c for c in held if channel_problem(case, c, req.quarantine_seconds, now=now) is None]


def _lifetime(case: RecoveryCase) -> int:
    seconds = policy_active(case.tenant).owner_portal.confirmation_lifetime_seconds
    return max(LIFETIME_BOUNDS[0], min(seconds, LIFETIME_BOUNDS[1]))


def _attempt_limit(req: Requirements) -> int:
    return max(1, min(req.max_failed_attempts, MAX_FAILED_ATTEMPTS, MAX_ATTEMPTS_PER_REQUEST))


def _message(confirmation: OwnerConfirmation, link: str, not_me: str) -> tuple[str, str]:
    """What the owner receives: who asks, what for, and the way out. Never the number."""
    case = confirmation.case
    until = confirmation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    subject = str(NoticeEvent.CONFIRMATION_REQUESTED.label)
    body = (
        f"{case.tenant.name}'s service desk ({agent_name(confirmation.requested_by)}) asks you "
        f"to confirm a recovery of your account {case.account.username} "
        f"({case.get_case_type_display()}, case {case.pk}).\n\n"
        "If you are on the phone with them now, open this page, type the number the agent "
        f"reads to you and confirm with your passkey:\n{link}\n\n"
        f"It works until {until}.\n"
        f"If this wasn't you, do not confirm. Open {not_me} or choose \"No, this wasn't me\" "
        "on the page: we will freeze the account, stop the recovery and alert your security "
        "team. Nobody from the service desk will ever ask you for a code, a link or a password."
    )
    return subject, body


def confirmation_request(*, actor: User, case: RecoveryCase) -> OwnerConfirmation:
    """Ask the owner to confirm in the app (S5): number matching, then a passkey.

    Refused, and recorded as `owner.confirmation_failed` with the reason, when no person has
    taken the case (`case.not_taken`), the policy does not take S5 or passkeys here, the
    account has no passkey registered before the case and outside the quarantine window
    (`confirmation.no_eligible_passkey`), a request on the case already failed after too many
    wrong answers (`confirmation.locked`), the case asked too often
    (`confirmation.request_limit`), or no address on record can carry it
    (`confirmation.no_address`, `confirmation.delivery_failed`). A new request supersedes
    the open one. The number is on the returned row, for the agent to read out; the trail
    never holds it.
    """
    enforce(ai_blocked(actor, "ask for an in-app confirmation"))
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        req = requirements_for(case)
        passkeys = eligible_passkeys(case, req)
        problem = _request_problem(case, req, passkeys)
        contacts = _owner_addresses(case, req) if problem is None else []
        if problem is None and not contacts:
            problem = "confirmation.no_address"
        if problem is not None:
            record(
                action="owner.confirmation_failed",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"reason": problem, "stage": "request"},
            )
            refusal = _refusal(problem)
        else:
            confirmation, superseded, token = _confirmation_new(actor, case, req)
            link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/{CONFIRM_PATH}/{token}/"
            sent, failed = link_notices_send(
                case=case,
                event=NoticeEvent.CONFIRMATION_REQUESTED,
                contacts=contacts,
                compose=lambda not_me: _message(confirmation, link, not_me),
            )
            del token
            if not sent:
                OwnerConfirmation.objects.for_tenant(case.tenant).filter(pk=confirmation.pk).update(
                    status=ConfirmationStatus.FAILED, ended_at=Now()
                )
                record(
                    action="owner.confirmation_failed",
                    actor=who,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "confirmation": confirmation.pk,
                        "reason": "confirmation.delivery_failed",
                        "stage": "request",
                        "failed": failed,
                    },
                )
                refusal = _refusal("confirmation.delivery_failed")
            else:
                record(
                    action="owner.confirmation_requested",
                    actor=who,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "confirmation": confirmation.pk,
                        "expires_at": confirmation.expires_at,
                        "max_attempts": confirmation.max_attempts,
                        "passkeys": len(passkeys),
                        "sent_to": [n.contact.masked for n in sent if n.contact],
                        "failed": failed,
                        "superseded": superseded,
                    },
                )
    if refusal is not None:
        raise refusal
    return confirmation


def _confirmation_new(
    actor: User, case: RecoveryCase, req: Requirements
) -> tuple[OwnerConfirmation, list[int], str]:
    """Supersede the open request of the case and store a new one (the link as its hash)."""
    open_ones = OwnerConfirmation.objects.for_tenant(case.tenant).filter(
        case=case, status=ConfirmationStatus.OPEN
    )
    superseded = list(open_ones.values_list("pk", flat=True))
    open_ones.update(status=ConfirmationStatus.SUPERSEDED, ended_at=Now())
    token = secrets.token_urlsafe(32)
    now = db_now(case)
    confirmation = OwnerConfirmation.objects.create(
        tenant=case.tenant,
        case=case,
        account=case.account,
        requested_by=actor,
        number=number_new(),
        nonce=secrets.token_urlsafe(32),
        link_hash=link_digest(token),
        max_attempts=_attempt_limit(req),
        created_at=now,
        expires_at=now + timedelta(seconds=_lifetime(case)),
    )
    confirmation.case = case
    return confirmation, superseded, token


# --- the owner's answers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Matched:
    """The answer to a typed number: WebAuthn options when it was the right one."""

    matched: bool
    options_json: str = ""
    attempts_left: int = 0
    failed: bool = False


NUMBER_MALFORMED = "The number has two digits: type both, as the agent reads them out."


def _locked_row(case: RecoveryCase, pk: int) -> OwnerConfirmation | None:
    """The confirmation row locked after its case (the fixed order), `expired` by DB time."""
    return (
        OwnerConfirmation.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("requested_by")
        .annotate(expired=_expired_now())
        .filter(case=case, pk=pk)
        .first()
    )


def _failed(confirmation: OwnerConfirmation, reason: str, **data: object) -> None:
    record(
        action="owner.confirmation_failed",
        actor=OWNER,
        tenant=confirmation.case.tenant,
        target=confirmation.case,
        data={"confirmation": confirmation.pk, "reason": reason, **data},
    )


def _end(confirmation: OwnerConfirmation, status: str) -> None:
    OwnerConfirmation.objects.for_tenant(confirmation.case.tenant).filter(
        pk=confirmation.pk
    ).update(status=status, ended_at=Now())
    confirmation.status = status


def _closed_reason(confirmation: OwnerConfirmation) -> str | None:
    """Why the owner can no longer answer (the row is locked; expiry is marked here)."""
    if confirmation.case.status != CaseStatus.COLLECTING_EVIDENCE:
        return "case_not_collecting"
    if confirmation.status != ConfirmationStatus.OPEN:
        return f"not_open:{confirmation.status}"
    if confirmation.expired:
        _end(confirmation, ConfirmationStatus.EXPIRED)
        return "expired"
    return None


@dataclass(frozen=True)
class _Counted:
    """A failed answer as counted: whether it was the last one allowed (the request is then
    failed), and the refusal to give instead if the trail could not record it."""

    last: bool
    unrecorded: DomainError | None


def _count_failure(confirmation: OwnerConfirmation, reason: str, **data: object) -> _Counted:
    """One failed answer: counted (the last one allowed fails the request), then recorded with
    an alert at the end; the count and the failure stand even when the record cannot be
    written (R-44)."""
    rows = OwnerConfirmation.objects.for_tenant(confirmation.case.tenant).filter(pk=confirmation.pk)
    rows.update(attempts=F("attempts") + 1)
    confirmation.attempts = rows.values_list("attempts", flat=True).get()
    last = confirmation.attempts >= confirmation.max_attempts
    if last:
        _end(confirmation, ConfirmationStatus.FAILED)

    def write() -> None:
        _failed(confirmation, reason, attempts=confirmation.attempts, locked=last, **data)
        if last:
            alert_raise(confirmation.case, "confirmation_failed", confirmation=confirmation.pk)

    return _Counted(last, attempt_recorded(write, "wrong owner confirmation"))


def _opened(token: str) -> tuple[OwnerConfirmation, RecoveryCase]:
    """The link's confirmation and its case, both locked (inside the caller's tenant scope)."""
    found = confirmation_find_by_link(token)
    if found is None:
        raise ConfirmationRefused()
    case = case_locked(found.case)
    row = _locked_row(case, found.pk)
    if row is None or not hmac.compare_digest(row.link_hash, link_digest(token)):
        raise ConfirmationRefused()
    row.case = case
    return row, case


def confirmation_match(*, token: str, number: str) -> Matched:
    """The owner types the number they hear.

    Not two digits (`confirmation.number_malformed`): a typing slip, refused before anything is
    looked up, and nothing counts. Wrong: counted and recorded as `owner.confirmation_failed`
    (`wrong_number`, never the number typed); the last attempt allowed fails the request.
    Right: the WebAuthn options over this case's challenge, for the eligible passkeys.
    """
    typed = number_normalise(number)
    if not number_well_formed(typed):
        raise InvalidInput(
            NUMBER_MALFORMED,
            code="confirmation.number_malformed",
            field_errors={"number": ["Two digits, 00 to 99."]},
        )
    found = confirmation_find_by_link(token)
    if found is None:
        raise ConfirmationRefused()
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        row, case = _opened(token)
        if (reason := _closed_reason(row)) is not None:
            _failed(row, reason, stage="number")
            refusal = ConfirmationRefused()
        elif not hmac.compare_digest(typed, row.number):
            counted = _count_failure(row, "wrong_number", stage="number")
            refusal = counted.unrecorded
            matched = Matched(
                matched=False, attempts_left=row.max_attempts - row.attempts, failed=counted.last
            )
        else:
            passkeys = eligible_passkeys(case)
            challenge = confirmation_challenge(case.pk, row.nonce, row.number)
            matched = Matched(
                matched=True,
                options_json=webauthn.assertion_options(passkeys, challenge),
                attempts_left=row.max_attempts - row.attempts,
            )
    if refusal is not None:
        raise refusal
    return matched


def _credential_id(credential_json: str) -> str:
    try:
        data = json.loads(credential_json)
    except (TypeError, ValueError):
        return ""
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class _Checked:
    """What checking a posted assertion found: `problem` is "" when it holds."""

    problem: str
    passkey: OwnerPasskey | None = None
    verified: webauthn.VerifiedAssertion | None = None
    presented_sign_count: int = 0


def _assertion_check(
    row: OwnerConfirmation, case: RecoveryCase, number: str, credential_json: str
) -> _Checked:
    """Verify the posted assertion against the account's eligible passkey it names (locked)."""
    typed = number_normalise(number)
    # The script posts the number that got the options; here anything else is a wrong answer.
    if not (number_well_formed(typed) and hmac.compare_digest(typed, row.number)):
        return _Checked("wrong_number")
    credential_id = _credential_id(credential_json)
    passkey = next((p for p in eligible_passkeys(case) if p.credential_id == credential_id), None)
    if passkey is None:
        return _Checked("unknown_credential")
    locked = (
        OwnerPasskey.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("contact")
        .get(pk=passkey.pk)
    )
    if locked.status != PasskeyStatus.ACTIVE:
        return _Checked("unknown_credential")
    challenge = confirmation_challenge(case.pk, row.nonce, row.number)
    try:
        verified = webauthn.assertion_verify(credential_json, challenge, locked)
    except webauthn.PasskeyCloned as cloned:
        return _Checked("sign_count_not_increased", locked, None, cloned.presented)
    except webauthn.PasskeyRefused as refused:
        return _Checked(refused.reason, locked)
    return _Checked("", locked, verified)


def _cloned(row: OwnerConfirmation, checked: _Checked, credential_json: str) -> None:
    """A good signature with a counter that went back: disable the passkey, alert, fail."""
    passkey = checked.passkey
    assert passkey is not None
    passkey_mark_cloned(
        passkey=passkey,
        presented_sign_count=checked.presented_sign_count,
        case=row.case,
        context=f"confirmation {row.pk}",
    )
    _failed(
        row,
        "sign_count_not_increased",
        stage="assert",
        passkey=passkey.pk,
        credential_id=passkey.credential_id,
        assertion_sha256=hashlib.sha256(credential_json.encode()).hexdigest(),
    )
    _end(row, ConfirmationStatus.FAILED)


def _confirmed(
    row: OwnerConfirmation,
    case: RecoveryCase,
    passkey: OwnerPasskey,
    verified: webauthn.VerifiedAssertion,
) -> Evidence | None:
    """Consume the request (compare-and-set), move the passkey's counter, record the S5."""
    won = (
        OwnerConfirmation.objects.for_tenant(case.tenant)
        .filter(pk=row.pk, status=ConfirmationStatus.OPEN, expires_at__gt=Now())
        .update(
            status=ConfirmationStatus.CONFIRMED,
            ended_at=Now(),
            passkey=passkey,
            sign_count=verified.new_sign_count,
            assertion_hash=verified.assertion_sha256,
        )
    )
    if not won:
        _failed(row, "not_open", stage="assert")
        return None
    OwnerPasskey.objects.for_tenant(case.tenant).filter(pk=passkey.pk).update(
        sign_count=verified.new_sign_count, last_used_at=Now()
    )
    evidence = evidence_from_verifier(
        case=case,
        signal=VerifiedSignal(
            method=PASSKEY_METHOD,
            verifier=Verifier.OWNER_PORTAL,
            verifier_ref=row.pk,
            contact_method=passkey.contact,
            details={
                "credential_id": passkey.credential_id,
                "sign_count": verified.new_sign_count,
                "assertion_sha256": verified.assertion_sha256,
            },
        ),
        collected_by=row.requested_by,
        who=OWNER,
    )
    OwnerConfirmation.objects.for_tenant(case.tenant).filter(pk=row.pk).update(evidence=evidence)
    record(
        action="owner.confirmation_confirmed",
        actor=OWNER,
        tenant=case.tenant,
        target=case,
        data={
            "confirmation": row.pk,
            "passkey": passkey.pk,
            "credential_id": passkey.credential_id,
            "sign_count": verified.new_sign_count,
            "assertion_sha256": verified.assertion_sha256,
            "evidence": evidence.pk,
            "result": evidence.result,
            "reason": evidence.reason_code,
        },
    )
    return evidence


def confirmation_assert(*, token: str, number: str, credential_json: str) -> Evidence:
    """The owner's signed assertion: verified here, it records the S5 evidence.

    Refused (`confirmation.link_invalid`, or `confirmation.assertion_refused` with the attempts
    left) and recorded as `owner.confirmation_failed` with the reason: a closed, expired or
    unknown request, a wrong number, a credential that is not one of the account's eligible
    passkeys, an assertion that does not verify (challenge, origin, signature, user
    verification). Each counts; the last one allowed fails the request. A counter that went
    back disables the passkey (`owner.passkey_clone_detected`, an alert) and fails the request.
    """
    found = confirmation_find_by_link(token)
    if found is None:
        raise ConfirmationRefused()
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        row, case = _opened(token)
        if (reason := _closed_reason(row)) is not None:
            _failed(row, reason, stage="assert")
            refusal = ConfirmationRefused()
        else:
            checked = _assertion_check(row, case, number, credential_json)
            problem, passkey, verified = checked.problem, checked.passkey, checked.verified
            if problem == "sign_count_not_increased":
                _cloned(row, checked, credential_json)
                refusal = ConfirmationRefused(
                    "This passkey looks copied: it is disabled and your security team is "
                    "alerted. The request is cancelled.",
                    code="confirmation.passkey_cloned",
                )
            elif problem:
                counted = _count_failure(
                    row, problem, stage="assert", passkey=passkey.pk if passkey else None
                )
                left = max(row.max_attempts - row.attempts, 0)
                refusal = counted.unrecorded or (
                    ConfirmationRefused(
                        "The passkey answer could not be verified. The request is cancelled: "
                        "ask the agent for a new one.",
                        code="confirmation.failed",
                    )
                    if counted.last
                    else ConfirmationRefused(
                        f"The passkey answer could not be verified. You can try {left} more "
                        "time(s).",
                        code="confirmation.assertion_refused",
                        attempts_left=left,
                    )
                )
            else:
                assert passkey is not None and verified is not None
                evidence = _confirmed(row, case, passkey, verified)
                if evidence is None:
                    refusal = ConfirmationRefused()
    if refusal is not None:
        raise refusal
    return evidence


def confirmation_repudiate(*, token: str) -> RecoveryCase:
    """ "No, this wasn't me" on the confirmation page: the case is repudiated through the
    notices' own path (R-41: frozen account and case, artifacts revoked, security alerted).

    Works while the link is known, whatever the request's state (a confirmed one too: the owner
    may not be who confirmed). Idempotent, like the notices' link.
    """
    found = confirmation_find_by_link(token)
    if found is None:
        raise ConfirmationRefused()
    with tenant_scope([found.tenant_id]):
        row, case = _opened(token)
        notice = (
            OwnerNotice.objects.for_tenant(case.tenant)
            .filter(case=case, event=NoticeEvent.CONFIRMATION_REQUESTED)
            .select_related("case", "tenant")
            .order_by("-pk")
            .first()
        )
        if notice is None:
            raise ConfirmationRefused()
        if row.status == ConfirmationStatus.OPEN:
            _end(row, ConfirmationStatus.REPUDIATED)
        record(
            action="owner.confirmation_repudiated",
            actor=OWNER,
            tenant=case.tenant,
            target=case,
            data={"confirmation": row.pk, "notice": notice.pk, "case_status": case.status},
        )
        return case_repudiate(notice=notice)

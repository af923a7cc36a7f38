"""S4 through an identity-proofing provider: start a session bound to the case, receive the
provider's signed verdict, and let only a verdict that passes every check become evidence.

The agent starts a session (`proofing_start`); the person is sent to the provider; the provider
posts its verdict to `/proofing/<provider>/verdict/` (`proofing_verdict_receive`). A verdict is
applied only when, in this order: its signature is the provider's, its nonce names a session
of that provider, it is for that session's case, the session is still waiting (a verdict is
used once, and a verdict id once per provider), it is fresh (issued within
`VERDICT_MAX_AGE`, the session unexpired by database time), and it proofed at the account's
enrolment level. Then `pass` with the account's enrolment reference (R-05) records an accepted
S4 `identity_proofing`; `pass` with another reference ends the case as `rejected` with an
alert; `fail` records nothing that counts. No person and no API key reaches this path.

Every function owns its transaction and records its audit events in it. Refusals that must
stay on record are written in the transaction, which commits before the refusal is raised.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.context import Actor
from audit.services import record
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope, tenant_scope

from ..artifacts.services import artifacts_revoke_for_case
from ..cases.choices import CaseStatus, SignalClass, Verifier
from ..cases.models import RecoveryCase
from ..cases.services import VerifiedSignal, case_taken_decision, evidence_from_verifier
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_end,
    case_locked,
    db_now,
    requirements_for,
    work_access,
)
from ..cases.transitions import TRANSITIONS, Move, transition_require
from ..choices import ProofingLevel
from ..policy.rules import Requirements
from .choices import ProofingStatus
from .models import ProofingSession
from .providers import ProofingProvider, ProviderUnavailable, Verdict, VerdictInvalid, provider_get

PROOFING_METHOD = "identity_proofing"
# Our choices: how long the person has at the provider, how old a verdict may be when it
# arrives, and how far ahead of our clock a provider's clock may run.
SESSION_LIFETIME = timedelta(minutes=30)
VERDICT_MAX_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
_LEVEL_RANK = {level: rank for rank, level in enumerate(ProofingLevel.values)}

REFUSALS = {
    "case.not_taken": _(
        "No person has taken this case yet; identity proofing starts once a human agent "
        "works it (R-66)."
    ),
    "proofing.no_enrolment_reference": _(
        "The system of record holds no identity-proofing enrolment reference for this account, "
        "so there is nothing to proof against (R-05)."
    ),
    "evidence.class_not_accepted": _("The policy does not accept S4 for this case."),
    "evidence.method_not_accepted": _(
        "The policy does not accept identity proofing for this case."
    ),
    "proofing.not_configured": _("No identity-proofing provider of that name is configured."),
    "proofing.provider_unavailable": _(
        "The identity-proofing provider did not answer; nothing was started. Try again later; "
        "the case waits."
    ),
    "proofing.bad_signature": _("The verdict's signature is not the provider's."),
    "proofing.malformed": _("The verdict could not be read."),
    "proofing.unknown_nonce": _("The verdict names no proofing session of this provider."),
    "proofing.wrong_case": _("The verdict is for another case than its session's."),
    "proofing.replayed": _("This verdict, or a verdict for this session, was already received."),
    "proofing.stale": _("The verdict is too old, or its session has expired."),
    "proofing.level_too_low": _(
        "The provider proofed at a lower level than the account's enrolment (R-05)."
    ),
    "proofing.case_not_collecting": _(
        "The case no longer collects evidence; the verdict was recorded but counts for nothing."
    ),
}
# Refusals of what was sent (400); every other one is a policy refusal (403).
_INPUT_CODES = frozenset({"proofing.malformed", "proofing.unknown_nonce"})


def _refusal(code: str) -> DomainError:
    kind = InvalidInput if code in _INPUT_CODES else PolicyDenied
    return kind(str(REFUSALS[code]), code=code)


def _refused(case: RecoveryCase, who: Actor, code: str, **data: object) -> DomainError:
    """Put a refused start or verdict on the case's trail; return the refusal to raise."""
    record(
        action="verification.proofing_refused",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={"code": code, **data},
    )
    return _refusal(code)


# --- starting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofingStart:
    session: ProofingSession
    redirect_url: str


def _start_problem(
    case: RecoveryCase, adapter: ProofingProvider | None, req: Requirements
) -> str | None:
    if not case_taken_decision(case):
        return "case.not_taken"
    if not case.account.enrolment_reference:
        return "proofing.no_enrolment_reference"
    if SignalClass.S4 not in req.accepted_classes:
        return "evidence.class_not_accepted"
    if PROOFING_METHOD not in req.accepted_methods:
        return "evidence.method_not_accepted"
    if adapter is None:
        return "proofing.not_configured"
    return None


def proofing_start(
    *, actor: User, case: RecoveryCase, provider: str | None = None
) -> ProofingStart:
    """Start identity proofing (S4) for the case's account at a configured provider.

    Creates the session (a random 256-bit nonce, the account's enrolment level, an expiry by
    database time), then asks the provider for the page the person is sent to. Refused, and
    recorded as `verification.proofing_refused`, when no person has taken the case
    (`case.not_taken`), the account has no enrolment reference
    (`proofing.no_enrolment_reference`), the policy does not accept S4 here
    (`evidence.class_not_accepted`), or the provider is not configured
    (`proofing.not_configured`) or does not answer in time (`proofing.provider_unavailable`:
    the session is closed as expired, nothing is accepted, the case waits).
    """
    enforce(ai_blocked(actor, "start identity proofing"))
    name = provider or getattr(settings, "PROOFING_DEFAULT_PROVIDER", "")
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        adapter = provider_get(name) if name else None
        problem = _start_problem(case, adapter, requirements_for(case))
        if problem is not None:
            refusal = _refused(case, who, problem, provider=name)
        else:
            assert adapter is not None
            now = db_now(case)
            session = ProofingSession.objects.create(
                tenant=case.tenant,
                case=case,
                provider=name,
                nonce=secrets.token_urlsafe(32),
                level=case.account.proofing_level,
                started_by=actor,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
            session.case = case
            try:
                # Inside the transaction, with a short timeout: the agent must know whether the
                # session exists at the provider. A rollback after this leaves a provider
                # session whose verdict names no row.
                started = adapter.start(session)
            except ProviderUnavailable as down:
                session.status = ProofingStatus.EXPIRED
                session.save(update_fields=["status"])
                refusal = _refused(
                    case,
                    who,
                    "proofing.provider_unavailable",
                    provider=name,
                    session=session.pk,
                    error=str(down)[:300],
                )
            else:
                session.provider_ref = started.provider_ref[:200]
                session.save(update_fields=["provider_ref"])
                record(
                    action="verification.proofing_started",
                    actor=who,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "session": session.pk,
                        "provider": name,
                        "provider_ref": session.provider_ref,
                        "level": session.level,
                        "expires_at": session.expires_at,
                    },
                )
    if refusal is not None:
        raise refusal
    return ProofingStart(session=session, redirect_url=started.redirect_url)


# --- receiving the verdict --------------------------------------------------------------------


def proofing_session_by_nonce(*, provider: str, nonce: str) -> ProofingSession | None:
    """The session a verdict or the development vendor page names, across tenants (the nonce
    names the tenant, as a link token does); None for an unknown nonce."""
    if not nonce:
        return None
    with system_scope():
        return (
            ProofingSession.objects.select_related("tenant", "case", "case__account")
            .filter(provider=provider, nonce=nonce)
            .first()
        )


def _verdict_id_used(provider: str, verdict_id: str) -> bool:
    """Whether any session of the provider, in any tenant, already took this verdict id."""
    with system_scope():
        return ProofingSession.objects.filter(provider=provider, verdict_id=verdict_id).exists()


def _verdict_problem(
    session: ProofingSession, verdict: Verdict, now: datetime, *, id_used: bool
) -> tuple[str, str | None]:
    """Why the verdict cannot be applied ("" when it can), and the status its session takes."""
    if verdict.case_id != session.case_id:
        return "proofing.wrong_case", None
    if session.status == ProofingStatus.EXPIRED:
        return "proofing.stale", None
    if session.status != ProofingStatus.STARTED or id_used:
        return "proofing.replayed", None
    if session.expires_at <= now:
        return "proofing.stale", ProofingStatus.EXPIRED
    issued = verdict.issued_at
    if not (session.created_at - CLOCK_SKEW <= issued <= now + CLOCK_SKEW) or (
        now - issued > VERDICT_MAX_AGE
    ):
        return "proofing.stale", None
    if verdict.outcome == "pass" and _LEVEL_RANK[verdict.level] < _LEVEL_RANK.get(session.level, 0):
        return "proofing.level_too_low", ProofingStatus.FAILED
    return "", None


def _verdict_keep(session: ProofingSession, verdict: Verdict, digest: str, status: str) -> bool:
    """Store the verdict on its session; False when its id was taken meanwhile (a replay)."""
    session.status = status
    session.verdict_id = verdict.verdict_id
    session.verdict_digest = digest
    session.verdict_at = timezone.now()
    try:
        with transaction.atomic():
            session.save(update_fields=["status", "verdict_id", "verdict_digest", "verdict_at"])
    except IntegrityError:
        return False
    return True


def _reject_case(case: RecoveryCase, session: ProofingSession, who: Actor) -> None:
    """R-05: the person proofed is not the one enrolled; the case ends as `rejected`."""
    case_end(
        case,
        Move.REJECT,
        status=CaseStatus.REJECTED,
        reason="Identity proofing did not match the enrolment record (R-05).",
    )
    artifacts_revoke_for_case(case=case, reason="proofing_mismatch", actor=who)
    ProofingSession.objects.for_tenant(case.tenant).filter(
        case=case, status=ProofingStatus.STARTED
    ).update(status=ProofingStatus.EXPIRED)
    record(
        action="case.rejected",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={"session": session.pk, "provider": session.provider, "reason": case.end_reason},
    )


def _apply(
    case: RecoveryCase, session: ProofingSession, verdict: Verdict, digest: str, who: Actor
) -> str | None:
    """Apply a verdict that passed every check; returns a refusal code or None."""
    reference = case.account.enrolment_reference
    matched = bool(reference) and hmac.compare_digest(
        verdict.subject_reference.encode(), reference.encode()
    )
    if verdict.outcome == "fail":
        status = ProofingStatus.FAILED
    elif not matched:
        status = ProofingStatus.MISMATCH
    elif case.status != CaseStatus.COLLECTING_EVIDENCE:
        status = ProofingStatus.EXPIRED
    else:
        status = ProofingStatus.PASSED
    if not _verdict_keep(session, verdict, digest, status):
        return "proofing.replayed"
    evidence = None
    if status == ProofingStatus.PASSED:
        evidence = evidence_from_verifier(
            case=case,
            signal=VerifiedSignal(
                method=PROOFING_METHOD,
                verifier=Verifier.PROOFING_PROVIDER,
                verifier_ref=session.pk,
                details={
                    "provider": session.provider,
                    "verdict_id": verdict.verdict_id,
                    "level": verdict.level,
                },
            ),
            collected_by=session.started_by,
            who=who,
        )
        session.evidence = evidence
        session.save(update_fields=["evidence"])
    record(
        action="verification.proofing_verdict",
        actor=who,
        tenant=case.tenant,
        target=case,
        data={
            "session": session.pk,
            "provider": session.provider,
            "verdict_id": verdict.verdict_id,
            "outcome": verdict.outcome,
            "level": verdict.level,
            "matched": matched if verdict.outcome == "pass" else None,
            "status": status,
            "evidence": evidence.pk if evidence else None,
            "result": evidence.result if evidence else "",
        },
    )
    if status == ProofingStatus.MISMATCH:
        alert_raise(case, "proofing_mismatch", session=session.pk, verdict_id=verdict.verdict_id)
        if TRANSITIONS[Move.REJECT].allows(case.status):
            _reject_case(case, session, who)
    if status == ProofingStatus.EXPIRED:
        return "proofing.case_not_collecting"
    return None


def proofing_verdict_receive(
    *, provider: str, body: bytes, headers: Mapping[str, str]
) -> ProofingSession:
    """A provider's signed verdict, as posted to `/proofing/<provider>/verdict/`.

    Checks, in order: the signature (`proofing.bad_signature`), the nonce
    (`proofing.unknown_nonce`), the case (`proofing.wrong_case`), that the session still waits
    and the verdict id is new (`proofing.replayed`, with an alert), freshness by database time
    (`proofing.stale`) and the level (`proofing.level_too_low`). Then `pass` naming the
    account's enrolment reference records the S4 evidence; `pass` naming another one ends the
    case as `rejected` and raises the alert `proofing_mismatch`; `fail` counts for nothing.
    Each refusal is recorded on the session's case when the nonce names one.
    """
    adapter = provider_get(provider)
    if adapter is None:
        raise _refusal("proofing.not_configured")
    who = Actor.system(f"proofing-provider:{provider}"[:64])
    digest = hashlib.sha256(body).hexdigest()
    try:
        verdict = adapter.parse_verdict(body, headers)
    except VerdictInvalid as invalid:
        code = f"proofing.{invalid.code}"
        named = proofing_session_by_nonce(provider=provider, nonce=invalid.nonce)
        if named is not None:
            with tenant_scope([named.tenant_id]):
                _refused(named.case, who, code, provider=provider, session=named.pk, digest=digest)
        raise _refusal(code) from None
    found = proofing_session_by_nonce(provider=provider, nonce=verdict.nonce)
    if found is None:
        raise _refusal("proofing.unknown_nonce")
    id_used = _verdict_id_used(provider, verdict.verdict_id)
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        case = case_locked(found.case)
        session = (
            ProofingSession.objects.for_tenant(case.tenant)
            .select_for_update()
            .annotate(db_now=Now())
            .get(pk=found.pk)
        )
        session.case = case
        code, status = _verdict_problem(session, verdict, session.db_now, id_used=id_used)
        if code:
            if status is not None:
                session.status = status
                session.save(update_fields=["status"])
            refusal = _refused(
                case,
                who,
                code,
                provider=provider,
                session=session.pk,
                verdict_id=verdict.verdict_id,
                digest=digest,
            )
            if code == "proofing.replayed":
                alert_raise(
                    case, "proofing_replay", session=session.pk, verdict_id=verdict.verdict_id
                )
        elif code := _apply(case, session, verdict, digest, who):
            refusal = _refused(
                case,
                who,
                code,
                provider=provider,
                session=session.pk,
                verdict_id=verdict.verdict_id,
                digest=digest,
            )
            if code == "proofing.replayed":
                alert_raise(
                    case, "proofing_replay", session=session.pk, verdict_id=verdict.verdict_id
                )
    if refusal is not None:
        raise refusal
    return session

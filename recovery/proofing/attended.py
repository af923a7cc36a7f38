"""S4 by an attended session: a certified trusted referee sees the person (R-06, R-07, R-09).

The referee is a person of the tenant's own staff with the `trusted_referee` role and a current
certification, and none of the case's parties (opener, the agent working it, the subject or a
delegate). The server generates the random live challenge; the referee must answer the
coercion question before the session can complete; one action flags fraud and freezes the
case. The session row is the record: why this path, what was presented, which steps were done.
Only a completed session creates evidence (`attended_remote` or `attended_onsite`, verifier
`attended_session`); the referee's word alone never does, and for a T2 account proofed at IAL3
only the onsite session with a biometric comparison counts (R-06, checked at submit).

Lock order everywhere: the case, then the session row.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, DomainError, InvalidInput, PolicyDenied
from tenants.models import Membership, Tenant, User
from tenants.policies import Decision, enforce
from tenants.principals import ai_blocked

from ..artifacts.services import artifacts_revoke_for_case
from ..cases.access_rules import within_grant
from ..cases.choices import CaseStatus, SignalClass, Verifier
from ..cases.models import Evidence, RecoveryCase
from ..cases.policies import can_run_attended_session, case_taker
from ..cases.services import VerifiedSignal, evidence_from_verifier, subject_and_delegate_persons
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_end,
    case_locked,
    requirements_for,
)
from ..cases.transitions import Move, transition_require
from .choices import AttendedMode, AttendedStatus
from .models import AttendedSession

METHOD_OF_MODE = {
    AttendedMode.REMOTE_VIDEO: "attended_remote",
    AttendedMode.ONSITE: "attended_onsite",
}
REASON_MAX = 2000
NOTE_MAX = 2000
RECORD_ITEM_MAX = 200
RECORD_ITEMS_MAX = 20

# The live challenge: a gesture, three words and a number, drawn by the server at the
# start, so a recording or a face-swap prepared in advance cannot show it. Not a secret once the
# session has run, so it is stored and shown to the referee.
GESTURES = (
    gettext_noop("Raise your left hand"),
    gettext_noop("Raise your right hand"),
    gettext_noop("Touch your left ear"),
    gettext_noop("Touch your right ear"),
    gettext_noop("Turn your head to the left, then to the right"),
    gettext_noop("Cover your mouth with your hand for a moment"),
    gettext_noop("Hold up three fingers"),
    gettext_noop("Look up at the ceiling, then back at the camera"),
)
WORDS = (
    "amber", "anchor", "apple", "arrow", "basket", "beacon", "bicycle", "blossom",
    "bridge", "candle", "canyon", "carpet", "cedar", "circle", "cobalt", "copper",
    "desert", "dolphin", "ember", "falcon", "feather", "forest", "garden", "glacier",
    "harbor", "hazel", "island", "jacket", "kettle", "ladder", "lantern", "lemon",
    "marble", "meadow", "mirror", "nickel", "orange", "orchid", "paddle", "pepper",
    "pillow", "planet", "quartz", "rabbit", "ribbon", "river", "saddle", "silver",
    "spider", "summer", "tablet", "thunder", "timber", "tulip", "velvet", "violet",
    "walnut", "window", "winter", "yellow", "zephyr", "button", "compass", "pebble",
)  # fmt: skip


def live_challenge_new() -> str:
    """A fresh random live challenge, e.g. "Touch your left ear, then say: river amber
    lantern 47" (8 gestures x 64*63*62 ordered words x 90 numbers: about 1.8e8 outcomes)."""
    words = secrets.SystemRandom().sample(WORDS, 3)
    return _("%(gesture)s, then say: %(words)s %(number)d") % {
        "gesture": _(secrets.choice(GESTURES)),
        "words": " ".join(words),
        "number": 10 + secrets.randbelow(90),
    }


# --- reads ----------------------------------------------------------------------------------


def attended_list(*, tenant: Tenant, case: RecoveryCase) -> QuerySet[AttendedSession]:
    """The attended sessions of one case of `tenant`, oldest first (one query)."""
    return (
        AttendedSession.objects.for_tenant(tenant)
        .filter(case=case)
        .select_related("referee")
        .order_by("created_at", "pk")
    )


def attended_get_visible(*, tenant: Tenant, case: RecoveryCase, pk: int) -> AttendedSession:
    """One session of this case; another case's or tenant's id is the same 404 as a missing one."""
    session = attended_list(tenant=tenant, case=case).filter(pk=pk).first()
    if session is None:
        raise CrossTenantNotFound(AttendedSession._meta.label, pk)
    return session


# --- checks shared by the writes ------------------------------------------------------------


def _require_person(actor: User, what: str) -> None:
    """Only a person runs an attended session: never an AI assistant or an integration key."""
    enforce(ai_blocked(actor, what))
    if not actor.is_human:
        raise PolicyDenied(
            _("Only a person can %(what)s; an API key never can.") % {"what": what},
            code="attended.human_required",
        )


def _text(value: str, *, field: str, code: str, message: str, limit: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit or "\x00" in value:
        raise InvalidInput(
            message,
            code=code,
            field_errors={field: [_("Write 1 to %(limit)d characters.") % {"limit": limit}]},
        )
    return value


def _record_list(value: Any, field: str) -> list[str]:
    """One part of the session record (R-09): a non-empty list of short, plain strings."""
    items = [v.strip() if isinstance(v, str) else v for v in (value or [])]
    if (
        not isinstance(value, list | tuple)
        or not items
        or len(items) > RECORD_ITEMS_MAX
        or any(
            not isinstance(v, str) or not v or len(v) > RECORD_ITEM_MAX or "\x00" in v
            for v in items
        )
    ):
        raise InvalidInput(
            _("The session record needs what was presented and which steps were done (R-09)."),
            code="attended.record_invalid",
            field_errors={
                field: [
                    _("1 to %(items)d entries of 1 to %(chars)d characters each.")
                    % {"items": RECORD_ITEMS_MAX, "chars": RECORD_ITEM_MAX}
                ]
            },
        )
    return items


def _certified_until(actor: User, case: RecoveryCase):
    return (
        Membership.objects.for_tenant(case.tenant)
        .filter(user=actor, role=Role.TRUSTED_REFEREE, is_active=True)
        .values_list("certified_until", flat=True)
        .first()
    )


def _referee_decision(actor: User, access: TenantAccess | None, case: RecoveryCase) -> Decision:
    return can_run_attended_session(
        access,
        case,
        referee_person=actor.person_id,
        certified_until=_certified_until(actor, case),
        now=timezone.now(),
        subject_people=subject_and_delegate_persons(case.account),
    )


def _violation(
    actor: User, access: TenantAccess | None, case: RecoveryCase, code: str, **data: Any
) -> PolicyDenied | None:
    """Record a tenant member's refused attempt as `policy.violation`; the caller raises it after
    its transaction commits. A stranger to the tenant leaves nothing on its trail."""
    if access is not None:
        record(
            action="policy.violation",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"code": code, **data},
        )
    return None


def _locked_session(case: RecoveryCase, pk: int) -> AttendedSession:
    """The session row, locked after its (already locked) case: the fixed order."""
    session = (
        AttendedSession.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("referee")
        .filter(case=case, pk=pk)
        .first()
    )
    if session is None:
        raise CrossTenantNotFound(AttendedSession._meta.label, pk)
    session.case = case
    return session


def _referee_access(actor: User, session: AttendedSession) -> TenantAccess:
    """The session's own referee, still a member of the tenant; anyone else is refused."""
    access = access_in(actor, session.case.tenant)
    if access is None:
        raise PolicyDenied(_("You have no access to this tenant."), code="tenant.no_access")
    if actor.pk != session.referee_id:
        raise PolicyDenied(
            _("Only the referee who runs this session can do this."),
            code="attended.not_the_referee",
        )
    return access


def _require_open(session: AttendedSession) -> None:
    if session.status != AttendedStatus.OPEN:
        raise InvalidInput(
            _("This attended session has ended (%(status)s).")
            % {"status": session.get_status_display().lower()},
            code="attended.session_closed",
        )


def _ended(session: AttendedSession, who: Actor, reason: str, **data: Any) -> None:
    """Record the end of a session with its session record (R-09)."""
    record(
        action="verification.attended_ended",
        actor=who,
        tenant=session.case.tenant,
        target=session.case,
        data={
            "session": session.pk,
            "mode": session.mode,
            "status": session.status,
            "reason": reason,
            "documents_presented": session.documents_presented,
            "steps_completed": session.steps_completed,
            "live_challenge_passed": session.live_challenge_passed,
            "biometric_compared": session.biometric_compared,
            "outcome_note": session.outcome_note,
            **data,
        },
    )


# --- start ----------------------------------------------------------------------------------


def _start_problem(case: RecoveryCase, mode: str) -> tuple[str, str] | None:
    """Why this case cannot have an attended session of `mode` now, as (code, message)."""
    if case_taker(case) is None:
        return (
            "attended.case_not_taken",
            _("A person must take this case before an attended session can run (R-66)."),
        )
    req = requirements_for(case)
    if SignalClass.S4 not in req.accepted_classes:
        return "evidence.class_not_accepted", _("The policy does not accept S4 for this case.")
    if METHOD_OF_MODE[mode] not in req.accepted_methods:
        return (
            "evidence.method_not_accepted",
            _("The policy does not accept this kind of attended session for this case."),
        )
    if mode == AttendedMode.ONSITE and not case.account.enrolment_reference:
        return (
            "attended.no_enrolment_reference",
            _(
                "The account has no enrolment reference to compare the person with; an onsite "
                "session cannot run (R-06)."
            ),
        )
    if (
        AttendedSession.objects.for_tenant(case.tenant)
        .filter(case=case, status=AttendedStatus.OPEN)
        .exists()
    ):
        return (
            "attended.session_open",
            _("An attended session is already running on this case; end it first."),
        )
    return None


def attended_start(*, actor: User, case: RecoveryCase, mode: str, reason: str) -> AttendedSession:
    """A trusted referee starts an attended session on a case collecting evidence.

    The referee is a person with the `trusted_referee` role in the tenant and a current
    certification (`attended.referee_required`, `attended.certification_lapsed`), none of the
    case's parties (`sod.referee_is_party`; recorded as `policy.violation`); the case is taken
    by a person and its policy accepts the session's method. `reason` says why this path is
    used (R-09). The server draws the live challenge; `verification.attended_started`.
    """
    _require_person(actor, _("run an attended session"))
    if mode not in AttendedMode.values:
        raise InvalidInput(
            _("Unknown session mode %(mode)r.") % {"mode": mode},
            code="attended.mode_invalid",
            field_errors={"mode": [", ".join(AttendedMode.values)]},
        )
    reason = _text(
        reason,
        field="reason",
        code="attended.reason_required",
        message=_("Say why the attended path is used for this case (R-09)."),
        limit=REASON_MAX,
    )
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = access_in(actor, case.tenant)
        decision = _referee_decision(actor, access, case)
        if not decision:
            _violation(actor, access, case, decision.code, attempted="attended_start")
            refusal = PolicyDenied(decision.detail, code=decision.code)
        else:
            transition_require(case, Move.COLLECT)
            if problem := _start_problem(case, mode):
                raise PolicyDenied(problem[1], code=problem[0])
            session = AttendedSession.objects.create(
                tenant=case.tenant,
                case=case,
                referee=actor,
                referee_person=actor.person_id,
                mode=mode,
                reason=reason,
                live_challenge=live_challenge_new(),
            )
            record(
                action="verification.attended_started",
                actor=audit_actor_of(actor, access, case.tenant),
                tenant=case.tenant,
                target=case,
                data={
                    "session": session.pk,
                    "mode": mode,
                    "method": METHOD_OF_MODE[mode],
                    "reason": reason,
                    "live_challenge": session.live_challenge,
                    "referee": actor.get_username(),
                    "referee_person": str(actor.person_id),
                },
            )
    if refusal is not None:
        raise refusal
    return session


# --- the coercion question ------------------------------------------------------------------


def attended_coercion_answer(
    *, actor: User, session: AttendedSession, observed: bool, note: str = ""
) -> AttendedSession:
    """The referee's mandatory answer to "signs of coercion, manipulation or social engineering
    observed?" (R-07), given once. `observed=True` needs a note, ends the session `failed` and
    raises a `coercion_observed` alert; nothing counts from it.
    """
    _require_person(actor, _("answer the coercion question"))
    if not isinstance(observed, bool):
        raise InvalidInput(
            _("Answer yes or no."),
            code="attended.coercion_answer_invalid",
            field_errors={"observed": [_("true or false.")]},
        )
    note = (note or "").strip()
    if observed:
        note = _text(
            note,
            field="note",
            code="attended.coercion_note_required",
            message=_("Describe the signs of coercion or manipulation you observed."),
            limit=NOTE_MAX,
        )
    elif len(note) > NOTE_MAX or "\x00" in note:
        raise InvalidInput(
            _("The note is too long."),
            code="attended.note_invalid",
            field_errors={"note": [_("At most %(limit)d characters.") % {"limit": NOTE_MAX}]},
        )
    with transaction.atomic():
        case = case_locked(session.case)
        row = _locked_session(case, session.pk)
        access = _referee_access(actor, row)
        _require_open(row)
        if row.coercion_observed is not None:
            raise InvalidInput(
                _("The coercion question is already answered for this session."),
                code="attended.coercion_already_answered",
            )
        now = timezone.now()
        row.coercion_observed, row.coercion_note, row.coercion_answered_at = observed, note, now
        fields = ["coercion_observed", "coercion_note", "coercion_answered_at"]
        if observed:
            row.status, row.ended_at, row.outcome_note = AttendedStatus.FAILED, now, note
            fields += ["status", "ended_at", "outcome_note"]
        row.save(update_fields=fields)
        who = audit_actor_of(actor, access, case.tenant)
        record(
            action="verification.attended_coercion_answered",
            actor=who,
            tenant=case.tenant,
            target=case,
            data={"session": row.pk, "observed": observed, "note": note},
        )
        if observed:
            _ended(row, who, "coercion_observed")
            alert_raise(case, "coercion_observed", session=row.pk, referee=actor.get_username())
    return row


# --- completing -----------------------------------------------------------------------------


def _complete_problem(row: AttendedSession, biometric_compared: bool) -> tuple[str, str] | None:
    if row.mode == AttendedMode.ONSITE and not biometric_compared:
        return (
            "attended.biometric_required",
            _(
                "An onsite session completes only after comparing the person with the "
                "enrolment reference (R-06)."
            ),
        )
    if row.mode != AttendedMode.ONSITE and biometric_compared:
        return (
            "attended.biometric_onsite_only",
            _(
                "A biometric comparison is recorded only onsite; a face seen over video is not "
                "one (R-08)."
            ),
        )
    return None


def attended_complete(
    *,
    actor: User,
    session: AttendedSession,
    documents_presented: Sequence[str],
    steps_completed: Sequence[str],
    live_challenge_passed: bool,
    biometric_compared: bool = False,
    outcome_note: str = "",
) -> Evidence | None:
    """The referee ends the session with its record (R-09); a pass records S4 evidence.

    Refused until the coercion question is answered (`attended.coercion_unanswered`, R-07; the
    database refuses a completed row without it too). The referee must still be eligible
    (certification, not a party). A failed live challenge ends the session `failed` with no
    evidence (None). An onsite session needs the biometric comparison
    (`attended.biometric_required`). A pass: the session is `completed` and
    `evidence_from_verifier` records `attended_remote` or `attended_onsite` (S4).
    """
    _require_person(actor, _("complete an attended session"))
    documents = _record_list(documents_presented, "documents_presented")
    steps = _record_list(steps_completed, "steps_completed")
    if not isinstance(live_challenge_passed, bool) or not isinstance(biometric_compared, bool):
        raise InvalidInput(
            _("Say whether the live challenge was passed and the comparison made."),
            code="attended.record_invalid",
        )
    outcome_note = (outcome_note or "").strip()
    if len(outcome_note) > NOTE_MAX or "\x00" in outcome_note:
        raise InvalidInput(
            _("The note is too long."),
            code="attended.note_invalid",
            field_errors={
                "outcome_note": [_("At most %(limit)d characters.") % {"limit": NOTE_MAX}]
            },
        )
    refusal: DomainError | None = None
    evidence: Evidence | None = None
    with transaction.atomic():
        case = case_locked(session.case)
        row = _locked_session(case, session.pk)
        access = _referee_access(actor, row)
        _require_open(row)
        if row.coercion_observed is None:
            raise PolicyDenied(
                _("Answer the coercion question before the session can go on (R-07)."),
                code="attended.coercion_unanswered",
            )
        decision = _referee_decision(actor, access, case)
        if not decision:
            _violation(actor, access, case, decision.code, attempted="attended_complete")
            refusal = PolicyDenied(decision.detail, code=decision.code)
        else:
            who = audit_actor_of(actor, access, case.tenant)
            row.documents_presented, row.steps_completed = documents, steps
            row.live_challenge_passed, row.outcome_note = live_challenge_passed, outcome_note
            fields = [
                "documents_presented",
                "steps_completed",
                "live_challenge_passed",
                "biometric_compared",
                "outcome_note",
                "status",
                "ended_at",
                "evidence",
            ]
            if not live_challenge_passed:
                row.biometric_compared = biometric_compared and row.mode == AttendedMode.ONSITE
                row.status, row.ended_at = AttendedStatus.FAILED, timezone.now()
                row.save(update_fields=fields)
                _ended(row, who, "live_challenge_failed")
                alert_raise(case, "attended_live_challenge_failed", session=row.pk)
            else:
                if problem := _complete_problem(row, biometric_compared):
                    raise PolicyDenied(problem[1], code=problem[0])
                transition_require(case, Move.COLLECT)
                row.biometric_compared = biometric_compared
                row.status, row.ended_at = AttendedStatus.COMPLETED, timezone.now()
                evidence = evidence_from_verifier(
                    case=case,
                    signal=VerifiedSignal(
                        method=METHOD_OF_MODE[row.mode],
                        verifier=Verifier.ATTENDED_SESSION,
                        verifier_ref=row.pk,
                        details={
                            "session": row.pk,
                            "mode": row.mode,
                            "referee": actor.get_username(),
                            "referee_person": str(actor.person_id),
                            "reason": row.reason,
                            "live_challenge": row.live_challenge,
                            "documents_presented": documents,
                            "steps_completed": steps,
                            "biometric_compared": row.biometric_compared,
                            "enrolment_reference": case.account.enrolment_reference,
                            "coercion_observed": False,
                        },
                    ),
                    collected_by=actor,
                    who=who,
                )
                row.evidence = evidence
                row.save(update_fields=fields)
                _ended(
                    row,
                    who,
                    "completed",
                    evidence=evidence.pk,
                    result=evidence.result,
                    evidence_reason=evidence.reason_code,
                )
    if refusal is not None:
        raise refusal
    return evidence


# --- the fraud flag -------------------------------------------------------------------------


def _flag_access(actor: User, row: AttendedSession) -> TenantAccess:
    """The session's referee, or a security officer of the tenant (within a grant's scope)."""
    case = row.case
    access = access_in(actor, case.tenant)
    if access is None:
        raise PolicyDenied(_("You have no access to this tenant."), code="tenant.no_access")
    if actor.pk == row.referee_id:
        return access
    if Role.SECURITY_OFFICER in access.roles:
        enforce(within_grant(access, case))
        return access
    raise PolicyDenied(
        _("Only the session's referee or a security officer can flag fraud on it."),
        code="attended.fraud_flag_forbidden",
    )


def attended_fraud_flag(*, actor: User, session: AttendedSession, reason: str) -> RecoveryCase:
    """One action that stops everything (R-07): the case is `frozen`, its active artifacts are
    revoked, the session is `fraud_flagged`, and `case.fraud_flagged` plus an
    `attended_fraud_flag` alert are recorded. Works at any point of the session, before the
    coercion answer too, and after it ended (a forged document seen late).
    """
    _require_person(actor, _("flag fraud"))
    reason = _text(
        reason,
        field="reason",
        code="attended.fraud_reason_required",
        message=_("Say what you observed."),
        limit=REASON_MAX,
    )
    with transaction.atomic():
        case = case_locked(session.case)
        row = _locked_session(case, session.pk)
        access = _flag_access(actor, row)
        if row.status == AttendedStatus.FRAUD_FLAGGED:
            raise InvalidInput(
                _("Fraud is already flagged on this session; the case is frozen."),
                code="attended.already_flagged",
            )
        who = audit_actor_of(actor, access, case.tenant)
        now = timezone.now()
        previous_session, previous_case = row.status, case.status
        row.status, row.outcome_note = AttendedStatus.FRAUD_FLAGGED, reason
        row.ended_at = row.ended_at or now
        row.save(update_fields=["status", "outcome_note", "ended_at"])
        revoked = artifacts_revoke_for_case(case=case, reason="fraud_flagged", actor=who)
        case_end(
            case,
            Move.FLAG_FRAUD,
            status=case.status
            if case.status in (CaseStatus.FROZEN, CaseStatus.REVERTED)
            else CaseStatus.FROZEN,
            reason=_("Fraud flagged in attended session %(session)d: %(reason)s")
            % {"session": row.pk, "reason": reason},
            ended_at=case.ended_at or now,
        )
        record(
            action="case.fraud_flagged",
            actor=who,
            tenant=case.tenant,
            target=case,
            data={
                "session": row.pk,
                "reason": reason,
                "from": previous_case,
                "session_was": previous_session,
                "artifacts_revoked": revoked,
                "flagged_by_referee": actor.pk == row.referee_id,
            },
        )
        alert_raise(
            case,
            "attended_fraud_flag",
            session=row.pk,
            flagged_by=actor.get_username(),
            artifacts_revoked=revoked,
        )
    return case

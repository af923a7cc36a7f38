"""A case's audit events as a timeline: one entry per event, with a one-line summary in words.

Pure formatting of what the trail already holds (no queries); `selectors.case_timeline` reads
the events. An action without a summary of its own still appears, named by its action.
Summaries are in the active language (the console user's; English for API clients that ask
for nothing else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from audit.models import AuditEvent
from tenants.choices import CaseType

from ..proofing.choices import AttendedMode, AttendedStatus, ProofingStatus
from .choices import CaseStatus, Channel, Route

MAX_QUOTE = 120


@dataclass(frozen=True)
class TimelineEntry:
    """One step in a case's history, as its audit event recorded it."""

    seq: int
    at: datetime
    actor_label: str
    actor_type: str
    actor_org: str
    action: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor_label": self.actor_label,
            "actor_type": self.actor_type,
            "actor_org": self.actor_org,
            "action": self.action,
            "summary": self.summary,
        }


def _quote(text: Any) -> str:
    """Free text on one line, shortened, in quotes: `'manager confirmed'`."""
    line = " ".join(str(text or "").split())
    return repr(line if len(line) <= MAX_QUOTE else line[: MAX_QUOTE - 1] + "…")


def _when(value: Any) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else None
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else str(value)


def _label(choices: type[models.TextChoices], value: Any) -> str:
    """The translated label of a recorded choice value; the value itself if no longer known."""
    return str(choices(value).label) if value in choices.values else str(value)


def _status(value: Any) -> str:
    return _label(CaseStatus, value).lower()


def _opened(data: dict[str, Any], actor: str) -> str:
    values = {
        "tier": data.get("tier"),
        "type": _label(CaseType, data.get("case_type")),
        "channel": _label(Channel, data.get("channel")),
        "route": _label(Route, data.get("route")),
    }
    if data.get("repeat_attempt"):
        return _("Opened as %(tier)s “%(type)s” via %(channel)s (%(route)s); repeat attempt") % (
            values
        )
    return _("Opened as %(tier)s “%(type)s” via %(channel)s (%(route)s)") % values


def _accepted(data: dict[str, Any], actor: str) -> str:
    values = {"cls": data.get("class"), "method": data.get("method"), "via": data.get("contact")}
    if data.get("contact"):
        return _("Signal %(cls)s (%(method)s) accepted via %(via)s") % values
    return _("Signal %(cls)s (%(method)s) accepted") % values


def _rejected(data: dict[str, Any], actor: str) -> str:
    values = {"cls": data.get("class"), "method": data.get("method"), "reason": data.get("reason")}
    if data.get("class") == "context":
        return _("Kept as context only, not evidence: %(method)s (%(reason)s)") % values
    if "class" not in data:  # a request refused before any verifier (evidence_refusal_record)
        return _("Refused and kept on record: %(actor)s asked for evidence (%(reason)s)") % {
            "actor": actor,
            "reason": data.get("reason"),
        }
    return _("Signal %(cls)s (%(method)s) rejected: %(reason)s") % values


def _submitted(data: dict[str, Any], actor: str) -> str:
    classes = ", ".join(data.get("classes") or []) or "-"
    return _("Submitted for approval with evidence %(classes)s") % {"classes": classes}


def _decided(decision: str) -> Callable[[dict[str, Any], str], str]:
    def summary(data: dict[str, Any], actor: str) -> str:
        values = {
            "actor": actor,
            "roles": ", ".join(data.get("roles") or []),
            "reason": _quote(data.get("reason")),
        }
        if decision == "approved":
            return _("Approved by %(actor)s (%(roles)s): %(reason)s") % values
        return _("Denied by %(actor)s (%(roles)s): %(reason)s") % values

    return summary


def _status_changed(data: dict[str, Any], actor: str) -> str:
    to = data.get("to")
    if data.get("reason") == "policy_tightened" and to == CaseStatus.COOLING_OFF:
        return _("The policy was tightened since the case opened; cooling off until %(when)s") % {
            "when": _when(data.get("cooling_off_until"))
        }
    if data.get("reason") == "policy_tightened":
        return _("The policy was tightened since the case opened; back to %(status)s") % {
            "status": _status(to)
        }
    if to == CaseStatus.COOLING_OFF:
        return _("Approvals complete; cooling off until %(when)s") % {
            "when": _when(data.get("cooling_off_until"))
        }
    if to == CaseStatus.READY and data.get("cooling_off_waived_by_s5"):
        return _("Approvals complete; ready at once (cooling-off waived: S5 signal)")
    if to == CaseStatus.READY and "cooling_off_until" in data:
        return _("Approvals complete; ready at once (no cooling-off)")
    if to == CaseStatus.READY:
        return _("Cooling-off over; ready")
    return _("Status changed to %(status)s") % {"status": _status(to)}


def _tier_raised(data: dict[str, Any], actor: str) -> str:
    voided = int(data.get("approvals_voided") or 0)
    text = ngettext(
        "Tier raised %(old)s → %(new)s; %(voided)d approval voided",
        "Tier raised %(old)s → %(new)s; %(voided)d approvals voided",
        voided,
    )
    return text % {"old": data.get("from"), "new": data.get("to"), "voided": voided}


def _cancelled(data: dict[str, Any], actor: str) -> str:
    return _("Cancelled by %(actor)s: %(reason)s") % {
        "actor": actor,
        "reason": _quote(data.get("reason")),
    }


def _violation(data: dict[str, Any], actor: str) -> str:
    values = {"actor": actor, "code": data.get("code")}
    if data.get("decision") == "approved":
        return _("Refused: %(actor)s may not approve this case (%(code)s)") % values
    if data.get("decision") == "denied":
        return _("Refused: %(actor)s may not deny this case (%(code)s)") % values
    return _("Refused: %(actor)s may not act on this case (%(code)s)") % values


def _execution_refused(data: dict[str, Any], actor: str) -> str:
    values = {"actor": actor, "code": data.get("code")}
    return _("Refused: %(actor)s may not execute this case (%(code)s)") % values


# What a containment or role step did, in words (its recorded `operation`).
STEP_WORDS = {
    "method_remove": gettext_noop("a lost sign-in method removed"),
    "sessions_revoke": gettext_noop("every session and refresh token ended"),
    "revoke_temporary_access": gettext_noop("the one-time pass deleted"),
    "roles_suspend": gettext_noop("standing admin roles removed"),
    "roles_restore": gettext_noop("suspended admin roles granted back"),
}
# R-35's six kinds of change inside the re-establishment window (`ChangeKind`).
CHANGE_WORDS = {
    "mfa_enrolled": gettext_noop("a new authenticator"),
    "address_changed": gettext_noop("a changed recovery or notification address"),
    "mailbox_rule": gettext_noop("a new mailbox forwarding, redirect or hiding rule"),
    "delegate_granted": gettext_noop("a new delegate"),
    "oauth_consent": gettext_noop("a consent given to an OAuth application"),
    "privileged_role": gettext_noop("a privileged role grant"),
}
# Why an approval stopped counting (`approval.invalidated`).
VOID_WORDS = {
    "expired": gettext_noop("it expired"),
    "snapshot_changed": gettext_noop("the case changed after it"),
    "approver_lost_role": gettext_noop("the approver no longer holds the role"),
}


def _words(table: dict[str, str], value: Any) -> str:
    """A recorded code in words, translated; the code itself if it has none."""
    words = table.get(str(value or ""))
    return _(words) if words else str(value or "").replace("_", " ")


def _containment_done(data: dict[str, Any], actor: str) -> str:
    return _("Containment: %(step)s (the %(connector)s connector)") % {
        "step": _words(STEP_WORDS, data.get("operation")),
        "connector": data.get("connector", ""),
    }


def _containment_failed(data: dict[str, Any], actor: str) -> str:
    return _("Containment step left to a person: %(step)s") % {
        "step": data.get("manual_step") or _words(STEP_WORDS, data.get("operation"))
    }


def _window(message: str) -> Callable[[dict[str, Any], str], str]:
    def summary(data: dict[str, Any], actor: str) -> str:
        return _(message) % {"change": _words(CHANGE_WORDS, data.get("kind"))}

    return summary


def _invalidated(data: dict[str, Any], actor: str) -> str:
    return _("The approval by %(approver)s no longer counts: %(why)s") % {
        "approver": data.get("approver", ""),
        "why": _words(VOID_WORDS, data.get("reason")),
    }


def _execution_failed(data: dict[str, Any], actor: str) -> str:
    return _("Execution failed; nothing was issued: %(error)s") % {
        "error": _quote(data.get("error") or data.get("code"))
    }


def _alert(data: dict[str, Any], actor: str) -> str:
    if data.get("type") == "post_recovery_change":
        return _("Alert for the security queue: %(change)s inside the re-establishment window") % {
            "change": _words(CHANGE_WORDS, data.get("kind"))
        }
    return _("Alert for the security queue: %(type)s") % {"type": data.get("type", "unknown")}


def _proofing_started(data: dict[str, Any], actor: str) -> str:
    return _("Identity proofing started at %(provider)s by %(actor)s (session %(session)s)") % {
        "provider": data.get("provider"),
        "actor": actor,
        "session": data.get("session"),
    }


def _proofing_refused(data: dict[str, Any], actor: str) -> str:
    return _("Identity proofing refused (%(code)s)") % {"code": data.get("code")}


def _proofing_verdict(data: dict[str, Any], actor: str) -> str:
    return _("Proofing verdict %(verdict)s from %(provider)s: %(status)s") % {
        "verdict": data.get("verdict_id"),
        "provider": data.get("provider"),
        "status": _label(ProofingStatus, data.get("status")).lower(),
    }


def _attended_started(data: dict[str, Any], actor: str) -> str:
    return _("Attended session %(session)s (%(mode)s) started by referee %(actor)s") % {
        "session": data.get("session"),
        "mode": _label(AttendedMode, data.get("mode")).lower(),
        "actor": actor,
    }


def _coercion_answered(data: dict[str, Any], actor: str) -> str:
    values = {"session": data.get("session"), "actor": actor}
    if data.get("observed"):
        return _("Referee %(actor)s observed signs of coercion in attended session %(session)s") % (
            values
        )
    return _("Referee %(actor)s saw no sign of coercion in attended session %(session)s") % values


def _attended_ended(data: dict[str, Any], actor: str) -> str:
    return _("Attended session %(session)s: %(status)s") % {
        "session": data.get("session"),
        "status": _label(AttendedStatus, data.get("status")).lower(),
    }


def _fraud_flagged(data: dict[str, Any], actor: str) -> str:
    return _("Fraud flagged by %(actor)s in attended session %(session)s: %(reason)s") % {
        "actor": actor,
        "session": data.get("session"),
        "reason": _quote(data.get("reason")),
    }


def _case_rejected(data: dict[str, Any], actor: str) -> str:
    return _("Rejected: identity proofing at %(provider)s did not match the enrolment record") % {
        "provider": data.get("provider")
    }


def _by_actor(template: str) -> Callable[[dict[str, Any], str], str]:
    """A summary that only names who did it (the event's data adds nothing a reader needs)."""

    def summary(data: dict[str, Any], actor: str) -> str:
        return _(template) % {"actor": actor}

    return summary


SUMMARIES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "case.opened": _opened,
    "verification.signal_accepted": _accepted,
    "verification.signal_rejected": _rejected,
    "case.submitted": _submitted,
    "approval.approved": _decided("approved"),
    "approval.denied": _decided("denied"),
    "case.status_changed": _status_changed,
    "case.tier_raised": _tier_raised,
    "case.cancelled": _cancelled,
    "policy.violation": _violation,
    "alert.raised": _alert,
    "verification.challenge_sent": _by_actor(gettext_noop("Verification code sent by %(actor)s")),
    "roles.suspended": _by_actor(
        gettext_noop("Standing admin roles suspended at the directory (R-19), by %(actor)s")
    ),
    "roles.restored": _by_actor(gettext_noop("Suspended admin roles restored by %(actor)s")),
    "roles.regrant_expired": _by_actor(
        gettext_noop("The re-grant's time box ended: admin roles suspended again (R-19)")
    ),
    "roles.regrant_expiry_failed": _by_actor(
        gettext_noop("The connector could not remove the re-granted roles; retried next sweep")
    ),
    "verification.challenge_verified": _by_actor(
        gettext_noop("The owner's verification code was confirmed (%(actor)s)")
    ),
    "verification.challenge_failed": _by_actor(
        gettext_noop("A wrong verification code was entered (%(actor)s)")
    ),
    "verification.attestation_requested": _by_actor(
        gettext_noop("Manager attestation requested by %(actor)s")
    ),
    "verification.attestation_confirmed": _by_actor(
        gettext_noop("The manager confirmed the attestation (%(actor)s)")
    ),
    "evidence.attachment_added": _by_actor(gettext_noop("File attached by %(actor)s")),
    "case.note_added": _by_actor(gettext_noop("Note added by %(actor)s")),
    "case.executed": _by_actor(gettext_noop("Executed by %(actor)s")),
    "case.execution_refused": _execution_refused,
    "case.manual_step_recorded": _by_actor(gettext_noop("Manual step path recorded by %(actor)s")),
    "case.closed": _by_actor(gettext_noop("Closed by %(actor)s")),
    "verification.proofing_started": _proofing_started,
    "verification.proofing_refused": _proofing_refused,
    "verification.proofing_verdict": _proofing_verdict,
    "verification.attended_started": _attended_started,
    "verification.attended_coercion_answered": _coercion_answered,
    "verification.attended_ended": _attended_ended,
    "case.fraud_flagged": _fraud_flagged,
    "case.rejected": _case_rejected,
    "case.taken": _by_actor(gettext_noop("Taken by %(actor)s: a person now works this case")),
    "referee.certified": _by_actor(gettext_noop("Referee certification recorded by %(actor)s")),
    "policy.floor_raised": _by_actor(
        gettext_noop("Policy raised to the new platform floors (%(actor)s)")
    ),
    "contact.risk_signal": _by_actor(
        gettext_noop("A risk signal (SIM change or port-out) was recorded on a contact")
    ),
    "case.repudiated": _by_actor(
        gettext_noop('The owner said "this wasn\'t me": account and case frozen')
    ),
    "change.reverted": lambda data, actor: (
        _("Reverted through the connector: %(step)s")
        % {"step": f"{data.get('operation', '')} {data.get('target', '')}".strip()}
    ),
    "revert.step_pending": lambda data, actor: (
        _("A revert step is left to a person: %(step)s") % {"step": data.get("manual_step", "")}
    ),
    "revert.step_recorded": _by_actor(
        gettext_noop("Revert step recorded as done by %(actor)s, with a passkey step-up")
    ),
    "case.reverted": _by_actor(gettext_noop("Every change of this recovery was reverted")),
    # A mailbox access case's delegation (recovery.delegation).
    "access.delegation_requested": _by_actor(
        gettext_noop("Access to a shared mailbox requested by %(actor)s")
    ),
    "access.delegation_owner_approved": _by_actor(
        gettext_noop("The mailbox's owner approved, signed in with their organisation's account")
    ),
    "access.delegation_owner_refused": _by_actor(gettext_noop("The mailbox's owner refused")),
    "access.delegation_granted": _by_actor(gettext_noop("Mailbox delegation in place")),
    "access.delegation_step_pending": lambda data, actor: (
        _("A delegation step is left to a person: %(step)s") % {"step": data.get("manual_step", "")}
    ),
    "access.delegation_step_recorded": _by_actor(
        gettext_noop("Delegation step recorded as done by %(actor)s, with a passkey step-up")
    ),
    "access.delegation_expired": _by_actor(gettext_noop("Mailbox delegation expired")),
    "access.delegation_removed": _by_actor(gettext_noop("Mailbox delegation removed")),
    "access.delegation_removal_failed": _by_actor(
        gettext_noop("The connector could not remove the mailbox delegation; retried next sweep")
    ),
    "approval.invalidated": _invalidated,
    "case.execution_failed": _execution_failed,
    "case.expired": _by_actor(gettext_noop("Expired: idle past the policy's limit")),
    "step_up.challenge_issued": _by_actor(
        gettext_noop("Passkey step-up asked for by %(actor)s, bound to the case as it stands")
    ),
    "containment.step_done": _containment_done,
    "containment.step_failed": _containment_failed,
    "containment.step_recorded": _by_actor(
        gettext_noop("Containment step recorded as done by %(actor)s, with a passkey step-up")
    ),
    "window.change_undone": _window(
        gettext_noop("Inside the re-establishment window: %(change)s, undone by the connector")
    ),
    "window.change_undo_manual": _window(
        gettext_noop("Inside the re-establishment window: %(change)s; a person must undo it")
    ),
    "window.account_frozen": _window(
        gettext_noop("Account frozen pending review: %(change)s inside the window")
    ),
    "owner.session_started": _by_actor(
        gettext_noop("The owner opened their recovery session from the artifact")
    ),
    "owner.session_refused": _by_actor(gettext_noop("An owner recovery session was refused")),
    "owner.temporary_pass_issued": _by_actor(
        gettext_noop("The provider's one-time pass was shown to the owner in their session")
    ),
    "owner.authenticator_bound": _by_actor(gettext_noop("The owner bound a new sign-in method")),
    "owner.password_set": _by_actor(gettext_noop("The owner set their new password")),
    "owner.binding_refused": _by_actor(gettext_noop("An owner binding attempt was refused")),
    "verification.challenge_refused": _by_actor(
        gettext_noop("A verification code could not be sent (%(actor)s)")
    ),
    "verification.challenge_disabled": _by_actor(
        gettext_noop("Too many wrong codes: this verification code no longer counts")
    ),
    "token.reuse_attempt": _by_actor(gettext_noop("A used link or code was presented again")),
    "artifact.issued": _by_actor(gettext_noop("Recovery artifact sent to the owner")),
    "artifact.consumed": _by_actor(gettext_noop("The owner used the recovery artifact")),
    "artifact.revoked": _by_actor(gettext_noop("Recovery artifact revoked")),
    "notice.sent": _by_actor(gettext_noop("Owner notice sent")),
    "notice.failed": _by_actor(gettext_noop("An owner notice could not be delivered")),
    # The owner's signals (S1 saved codes, S5 in-app confirmation).
    "owner.code_used": _by_actor(
        gettext_noop("A saved recovery code read back matched and is used up (%(actor)s)")
    ),
    "owner.code_refused": _by_actor(gettext_noop("A saved recovery code was refused (%(actor)s)")),
    "owner.codes_locked": _by_actor(
        gettext_noop("Too many wrong saved codes: saved codes no longer count for this case")
    ),
    "owner.confirmation_requested": _by_actor(
        gettext_noop("In-app confirmation asked of the owner by %(actor)s")
    ),
    "owner.confirmation_confirmed": _by_actor(
        gettext_noop("The owner typed the number and confirmed with a passkey")
    ),
    "owner.confirmation_failed": _by_actor(
        gettext_noop("An in-app confirmation attempt was refused")
    ),
    "owner.confirmation_repudiated": _by_actor(
        gettext_noop('The owner answered the in-app confirmation "No, this wasn\'t me"')
    ),
}


def summarise(action: str, data: dict[str, Any], actor_label: str) -> str:
    """One line in plain words for an event of `action`."""
    summary = SUMMARIES.get(action)
    if summary is None:
        return _("%(action)s by %(actor)s") % {"action": action, "actor": actor_label}
    return summary(data or {}, actor_label)


def timeline_entry(event: AuditEvent) -> TimelineEntry:
    """The timeline entry for one audit event."""
    return TimelineEntry(
        seq=event.seq,
        at=event.created_at,
        actor_label=event.actor_label,
        actor_type=event.actor_type,
        actor_org=event.actor_org,
        action=event.action,
        summary=summarise(event.action, event.data, event.actor_label),
    )

"""A case's audit events as a timeline: one entry per event, with a one-line summary in words.

Pure formatting of what the trail already holds (no queries); `selectors.case_timeline` reads
the events. An action without a summary of its own still appears, named by its action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent

from .choices import CaseStatus

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


def _status(value: Any) -> str:
    return CaseStatus(value).label.lower() if value in CaseStatus.values else str(value)


def _opened(data: dict[str, Any], actor: str) -> str:
    text = (
        f"Opened as {data.get('tier')} {data.get('case_type')} by {data.get('channel')}; "
        f"route {data.get('route')}"
    )
    return text + ("; repeat attempt" if data.get("repeat_attempt") else "")


def _accepted(data: dict[str, Any], actor: str) -> str:
    via = f" via {data['contact']}" if data.get("contact") else ""
    return f"Signal {data.get('class')} ({data.get('method')}) accepted{via}"


def _rejected(data: dict[str, Any], actor: str) -> str:
    if data.get("class") == "context":
        return f"Kept as context only, not evidence: {data.get('method')} ({data.get('reason')})"
    return f"Signal {data.get('class')} ({data.get('method')}) rejected: {data.get('reason')}"


def _submitted(data: dict[str, Any], actor: str) -> str:
    return f"Submitted for approval with evidence {', '.join(data.get('classes') or []) or '-'}"


def _decided(verb: str) -> Callable[[dict[str, Any], str], str]:
    def summary(data: dict[str, Any], actor: str) -> str:
        roles = ", ".join(data.get("roles") or [])
        return f"{verb} by {actor} ({roles}): {_quote(data.get('reason'))}"

    return summary


def _status_changed(data: dict[str, Any], actor: str) -> str:
    to = data.get("to")
    if to == CaseStatus.COOLING_OFF:
        return f"Approvals complete; cooling off until {_when(data.get('cooling_off_until'))}"
    if to == CaseStatus.READY and data.get("cooling_off_waived_by_s5"):
        return "Approvals complete; ready at once (cooling-off waived: S5 signal)"
    if to == CaseStatus.READY and "cooling_off_until" in data:
        return "Approvals complete; ready at once (no cooling-off)"
    if to == CaseStatus.READY:
        return "Cooling-off over; ready"
    return f"Status changed to {_status(to)}"


def _tier_raised(data: dict[str, Any], actor: str) -> str:
    voided = data.get("approvals_voided", 0)
    return f"Tier raised {data.get('from')} → {data.get('to')}; {voided} approval(s) voided"


def _cancelled(data: dict[str, Any], actor: str) -> str:
    return f"Cancelled by {actor}: {_quote(data.get('reason'))}"


def _violation(data: dict[str, Any], actor: str) -> str:
    verb = {"approved": "approve", "denied": "deny"}.get(data.get("decision"), "act")
    return f"Refused: {actor} may not {verb} this case ({data.get('code')})"


def _alert(data: dict[str, Any], actor: str) -> str:
    return f"Alert for the security queue: {data.get('type', 'unknown')}"


SUMMARIES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "case.opened": _opened,
    "verification.signal_accepted": _accepted,
    "verification.signal_rejected": _rejected,
    "case.submitted": _submitted,
    "approval.approved": _decided("Approved"),
    "approval.denied": _decided("Denied"),
    "case.status_changed": _status_changed,
    "case.tier_raised": _tier_raised,
    "case.cancelled": _cancelled,
    "policy.violation": _violation,
    "alert.raised": _alert,
}


def summarise(action: str, data: dict[str, Any], actor_label: str) -> str:
    """One line in plain words for an event of `action`."""
    summary = SUMMARIES.get(action)
    return summary(data or {}, actor_label) if summary else f"{action} by {actor_label}"


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

"""An alert in words (issue 16 part 3): which rule fired, what it looks for, under which rule
set, and the facts it fired on as sentences rather than JSON.

`alert_explained` reads an alert's data (an `alert.raised` event's, an `Alert`'s `facts`, or a
simulation example: `rule`, `ruleset`, `facts`, `linked_cases`). Alerts that no rule of
`RULES` raised (a token reused, a proofing mismatch …) keep their kind and list their data
field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrations.choices import IngestEventType

from .choices import CallerKind
from .rules import RULES, Rule

HIDDEN = frozenset({"type", "rule", "requirement", "ruleset", "facts", "linked_cases"})


@dataclass(frozen=True)
class Explanation:
    kind: str
    rule: Rule | None
    ruleset: int | None
    facts: list[str]
    linked_cases: list[int] = field(default_factory=list)
    correlation_id: str = ""


def span(seconds: int) -> str:
    """A window in words: `86400` → `1 day`, `5400` → `90 minutes`."""
    for size, words in (
        (86_400, lambda n: ngettext("%(n)d day", "%(n)d days", n)),
        (3_600, lambda n: ngettext("%(n)d hour", "%(n)d hours", n)),
        (60, lambda n: ngettext("%(n)d minute", "%(n)d minutes", n)),
    ):
        if seconds >= size and seconds % size == 0:
            return words(seconds // size) % {"n": seconds // size}
    return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}


def when(text: Any) -> str:
    """An ISO time as the console shows times; anything else as given."""
    moment = parse_datetime(text) if isinstance(text, str) else None
    if not isinstance(moment, datetime):
        return str(text)
    return formats.date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def _identifier(item: Mapping[str, Any]) -> str:
    kind = item.get("kind", "")
    label = CallerKind(kind).label if kind in CallerKind.values else kind
    return f"{label} {item.get('hint', '')}".strip()


def _repeat_case(facts: Mapping[str, Any]) -> list[str]:
    count = int(facts.get("earlier_cases", 0))
    return [
        ngettext(
            "%(n)d earlier case on this account in the %(window)s before it opened.",
            "%(n)d earlier cases on this account in the %(window)s before it opened.",
            count,
        )
        % {"n": count, "window": span(int(facts.get("window_seconds", 0)))}
    ]


def _after_denial(facts: Mapping[str, Any]) -> list[str]:
    window = span(int(facts.get("window_seconds", 0)))
    return [
        _("Case %(case)s on this account ended %(status)s within the %(window)s before.")
        % {"case": ended.get("case"), "status": ended.get("status"), "window": window}
        for ended in facts.get("ended_cases", [])
    ]


def _push_denial(facts: Mapping[str, Any]) -> list[str]:
    return [
        _(
            "The identity provider (%(source)s) reported a burst of denied MFA pushes at "
            "%(at)s, within the %(window)s before the case."
        )
        % {
            "source": facts.get("source") or _("unnamed"),
            "at": when(facts.get("burst_at")),
            "window": span(int(facts.get("lookback_seconds", 0))),
        }
    ]


def _caller_reuse(facts: Mapping[str, Any]) -> list[str]:
    shared = ", ".join(_identifier(item) for item in facts.get("identifiers", []))
    return [
        _("%(identifiers)s was given on cases for %(n)s subjects within %(window)s.")
        % {
            "identifiers": shared or _("The same caller identifier"),
            "n": facts.get("subjects"),
            "window": span(int(facts.get("window_seconds", 0))),
        }
    ]


def _watchlisted(facts: Mapping[str, Any]) -> list[str]:
    return [
        _("%(identifier)s is on the watch-list, flagged as suspicious on case %(case)s.")
        % {"identifier": _identifier(item), "case": item.get("flagged_on_case")}
        for item in facts.get("watched", [])
    ]


def _new_network(facts: Mapping[str, Any]) -> list[str]:
    network = facts.get("network") or {}
    where = ", ".join(f"{key.upper()} {value}" for key, value in network.items()) or _("unknown")
    return [
        _(
            "A sign-in from a network the account had not used (%(network)s) at %(at)s, "
            "reported by %(source)s, inside the re-establishment window of a recovery."
        )
        % {
            "network": where,
            "at": when(facts.get("occurred_at")),
            "source": facts.get("source") or _("the identity provider"),
        }
    ]


def _admin_access(facts: Mapping[str, Any]) -> list[str]:
    kind = facts.get("event_type", "")
    what = IngestEventType(kind).label if kind in IngestEventType.values else kind
    return [
        _("%(what)s at %(at)s, reported by %(source)s, within 24 hours of this MFA reset.")
        % {
            "what": what,
            "at": when(facts.get("occurred_at")),
            "source": facts.get("source") or _("the identity provider"),
        }
    ]


def _federation_change(facts: Mapping[str, Any]) -> list[str]:
    return [
        _(
            "The account changed a federation or identity-provider trust at %(at)s, reported "
            "by %(source)s, inside the re-establishment window of this recovery."
        )
        % {
            "at": when(facts.get("occurred_at")),
            "source": facts.get("source") or _("the identity provider"),
        }
    ]


def _fast_decision(facts: Mapping[str, Any]) -> list[str]:
    return [
        _(
            "The approver decided %(seconds)s seconds after first opening the review page; "
            "at least %(minimum)s are expected."
        )
        % {"seconds": facts.get("seconds"), "minimum": facts.get("min_review_seconds")}
    ]


SENTENCES: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "repeat_case": _repeat_case,
    "after_denial": _after_denial,
    "push_denial_before_call": _push_denial,
    "caller_reuse": _caller_reuse,
    "watchlisted_caller": _watchlisted,
    "new_network_after_recovery": _new_network,
    "admin_access_after_mfa_reset": _admin_access,
    "federation_change_after_recovery": _federation_change,
    "fast_decision": _fast_decision,
}


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{key.replace('_', ' ')} {_plain(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value)
    return when(value)


def _fields(data: Mapping[str, Any]) -> list[str]:
    """Each field of an alert no rule of RULES raised, as `name: value`."""
    return [
        f"{key.replace('_', ' ').capitalize()}: {_plain(value)}"
        for key, value in data.items()
        if key not in HIDDEN and key != "correlation_id"
    ]


def alert_explained(data: Mapping[str, Any] | None) -> Explanation:
    """The alert `data` in words (see the module's docstring)."""
    data = data or {}
    name = str(data.get("rule") or data.get("type") or "alert")
    rule = RULES.get(name)
    facts = data.get("facts") if isinstance(data.get("facts"), Mapping) else {}
    # A simulation example of a rule that would not fire has no facts to put in words.
    sentences = SENTENCES[name](facts) if rule and facts else [] if rule else _fields(data)
    ruleset = data.get("ruleset")
    return Explanation(
        kind=name,
        rule=rule,
        ruleset=ruleset if isinstance(ruleset, int) else None,
        facts=sentences,
        linked_cases=[pk for pk in data.get("linked_cases") or [] if isinstance(pk, int)],
        correlation_id=str(data.get("correlation_id") or ""),
    )

"""Alerts on the tenant's alert routes (issue 16 parts 4 and 6): one outbox row per route and
alert, or per route and digest of cases waiting for a decision.

`outbox.webhooks_derive` turns each committed `alert.raised` (and `cases.waiting`, except to
email routes) of the tenant into one `WebhookDelivery` of kind `route` per route that was
delivering when it was recorded (`tenants.routes`), with the message in the route's format.
`delivery` then sends it like any webhook (lease, retries with backoff, the attempt log,
`webhook.delivery_dead` when it gives up), by email for an email route. A rolled-back action
raised nothing, and a lost task loses nothing: the sweep derives and sends what the workers
never got.

What leaves is the least that gets someone to act: which detection fired, on what (the case
number), when, how often, and a link into the console. No facts about the account or the caller
(names, numbers, hints) go to a chat channel or a mailbox: the console shows them to the
security officer who follows the link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.detection.rules import RULES
from tenants.choices import RouteKind
from tenants.models import AlertRoute, Tenant

from .choices import EVENT_TYPE_OF_ACTION, DeliveryKind
from .models import WebhookDelivery

# What goes on the routes: every alert, and (not to the security contacts' mailboxes: they are
# not the approvers, who are emailed themselves) the cases that entered the approval queue.
ROUTED_ACTIONS = {
    "alert.raised": frozenset(RouteKind.values),
    "cases.waiting": frozenset(RouteKind.values) - {RouteKind.EMAIL},
}
# Alerts that mean an account may be in the wrong hands right now: marked urgent.
URGENT_TYPES = frozenset({"repudiation", "account_repudiation", "token_reuse", "passkey_cloned"})
TEAMS_CARD = "application/vnd.microsoft.card.adaptive"
# What an alert is about, by number only: a representation may name the account's owner.
NOUNS = {"recovery.RecoveryCase": "case", "recovery.ProtectedAccount": "account"}


def route_deliveries(
    *, tenant: Tenant, routes: list[AlertRoute], event: AuditEvent, due: Any
) -> list[WebhookDelivery]:
    """The outbox rows of one committed routed event: one per route of a kind that carries it
    and that was delivering when it was recorded (a route approved later does not receive
    earlier events)."""
    kinds = ROUTED_ACTIONS.get(event.action, frozenset())
    rows = []
    for route in routes:
        if route.kind not in kinds:
            continue
        if route.approved_at is not None and route.approved_at > event.created_at:
            continue
        delivery_id = uuid.uuid4()
        rows.append(
            WebhookDelivery(
                id=delivery_id,
                tenant_id=tenant.pk,
                kind=DeliveryKind.ROUTE,
                route=route,
                event_type=EVENT_TYPE_OF_ACTION[event.action],
                audit_event_id=event.pk,
                audit_seq=event.seq,
                payload=route_message(route.kind, message_of(tenant, event), id=delivery_id),
                next_attempt_at=due,
            )
        )
    return rows


@dataclass(frozen=True)
class Message:
    """What every format is made of."""

    type: str
    tenant: str  # its slug
    title: str
    what: str
    facts: tuple[tuple[str, str], ...]
    link: str
    data: dict[str, Any]  # the signed webhook's `data`
    occurred_at: str
    sequence: int


def _what(kind: str) -> str:
    """The alert in words: a detection rule's description, or its type made readable."""
    rule = RULES.get(kind)
    if rule is None:
        return kind.replace("_", " ").capitalize() + "."
    with translation.override(settings.LANGUAGE_CODE):  # the message's language, as the rest
        return str(rule.description)


def _console(name: str, tenant: Tenant, **kwargs: Any) -> str:
    path = reverse(name, kwargs={"tenant": tenant.slug, **kwargs})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def message_of(tenant: Tenant, event: AuditEvent) -> Message:
    """The message of a routed event: an alert, or the cases waiting for a decision."""
    when = event.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    data = event.data or {}
    if event.action == "cases.waiting":
        cases = data.get("cases", [])
        facts = tuple((f"case {row['case']}", f"{row['tier']} {row['case_type']}") for row in cases)
        return Message(
            type=event.action,
            tenant=tenant.slug,
            title=f"Vouchsafe: {len(cases)} case(s) waiting for a decision in {tenant.name}",
            what="Cases entered the approval queue; the approvers who may decide them were "
            "emailed.",
            facts=facts,
            link=_console("review-queue", tenant),
            data={"cases": cases},
            occurred_at=event.created_at.isoformat(),
            sequence=event.seq,
        )
    kind = str(data.get("type", "alert"))
    urgent = "URGENT: " if kind in URGENT_TYPES else ""
    noun = NOUNS.get(event.target_type, event.target_type.rpartition(".")[2].lower())
    if event.target_type == RecoveryCase._meta.label and event.target_id:
        link = _console("review-case", tenant, pk=event.target_id)
    else:
        link = _console("review-security", tenant) + "#section-alerts"
    what = _what(kind)
    return Message(
        type=event.action,
        tenant=tenant.slug,
        title=f"{urgent}Vouchsafe alert in {tenant.name}: {kind}",
        what=what,
        facts=(
            ("On", f"{noun} {event.target_id}" if event.target_id else tenant.name),
            ("Raised", when),
        ),
        link=link,
        data={
            "type": kind,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "summary": what,
        },
        occurred_at=event.created_at.isoformat(),
        sequence=event.seq,
    )


def route_message(kind: str, message: Message, *, id: uuid.UUID) -> dict:
    """The payload a route of `kind` is sent for `message`."""
    facts = "\n".join(f"{label}: {value}" for label, value in message.facts)
    if kind == RouteKind.EMAIL:
        body = (
            f"{message.what}\n\n{facts}\n\n"
            f"Review it in Vouchsafe and acknowledge the alert in the security queue:\n"
            f"{message.link}\n"
        )
        return {"subject": message.title, "body": body}
    if kind == RouteKind.SLACK:  # an incoming webhook takes `text` in mrkdwn
        return {"text": f"*{message.title}*\n{message.what}\n{facts}\nReview: {message.link}"}
    if kind == RouteKind.TEAMS:  # a Teams workflow or incoming webhook takes an Adaptive Card
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": message.title, "weight": "Bolder", "wrap": True},
                {"type": "TextBlock", "text": message.what, "wrap": True},
                {
                    "type": "FactSet",
                    "facts": [{"title": label, "value": value} for label, value in message.facts],
                },
            ],
            "actions": [{"type": "Action.OpenUrl", "title": "Review", "url": message.link}],
        }
        return {
            "type": "message",
            "attachments": [{"contentType": TEAMS_CARD, "contentUrl": None, "content": card}],
        }
    return {  # a signed webhook: the subscription body, with the words and the link
        "id": str(id),
        "type": message.type,
        "tenant": message.tenant,
        "occurred_at": message.occurred_at,
        "sequence": message.sequence,
        "data": {**message.data, "link": message.link},
    }

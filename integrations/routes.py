"""Alerts on the tenant's alert routes (issue 16 part 4): one outbox row per route and alert.

`outbox.webhooks_derive` turns each committed `alert.raised` of the tenant into one
`WebhookDelivery` of kind `route` per route that was delivering when the alert was raised
(`tenants.routes`), with the message in the route's format; `delivery` then sends it like any
webhook (lease, retries with backoff, the attempt log, `webhook.delivery_dead` when it gives
up), by email for an email route. A rolled-back action raised nothing, and a lost task loses
nothing: the sweep derives and sends what the workers never got.

What leaves is the least that gets someone to act: which detection fired, on what (the case
number), when, how often, and a link into the console. No facts about the account or the caller
(names, numbers, hints) go to a chat channel or a mailbox: the console shows them to the
security officer who follows the link.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.detection.rules import RULES
from tenants.choices import RouteKind
from tenants.models import AlertRoute, Tenant

from .choices import DeliveryKind, WebhookEventType
from .models import WebhookDelivery

ROUTED_ACTIONS = frozenset({"alert.raised"})
# Alerts that mean an account may be in the wrong hands right now: marked urgent.
URGENT_TYPES = frozenset({"repudiation", "account_repudiation", "token_reuse", "passkey_cloned"})
TEAMS_CARD = "application/vnd.microsoft.card.adaptive"
# What an alert is about, by number only: a representation may name the account's owner.
NOUNS = {"recovery.RecoveryCase": "case", "recovery.ProtectedAccount": "account"}


def route_deliveries(
    *, tenant: Tenant, routes: list[AlertRoute], event: AuditEvent, due: Any
) -> list[WebhookDelivery]:
    """The outbox rows of one committed `alert.raised`: one per route that was delivering
    when it was raised (a route approved later does not receive earlier alerts)."""
    if event.action not in ROUTED_ACTIONS:
        return []
    rows = []
    for route in routes:
        if route.approved_at is not None and route.approved_at > event.created_at:
            continue
        delivery_id = uuid.uuid4()
        rows.append(
            WebhookDelivery(
                id=delivery_id,
                tenant_id=tenant.pk,
                kind=DeliveryKind.ROUTE,
                route=route,
                event_type=WebhookEventType.ALERT_RAISED,
                audit_event_id=event.pk,
                audit_seq=event.seq,
                payload=route_message(route.kind, tenant=tenant, event=event, id=delivery_id),
                next_attempt_at=due,
            )
        )
    return rows


def _what(kind: str) -> str:
    """The alert in words: a detection rule's description, or its type made readable."""
    rule = RULES.get(kind)
    if rule is None:
        return kind.replace("_", " ").capitalize() + "."
    with translation.override(settings.LANGUAGE_CODE):  # the message's language, as the rest
        return str(rule.description)


def _link(tenant: Tenant, event: AuditEvent) -> str:
    if event.target_type == RecoveryCase._meta.label and event.target_id:
        path = reverse("review-case", kwargs={"tenant": tenant.slug, "pk": event.target_id})
    else:
        path = reverse("review-security", kwargs={"tenant": tenant.slug}) + "#section-alerts"
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def alert_text(*, tenant: Tenant, event: AuditEvent) -> dict[str, str]:
    """The parts every format is made of: title, what fired, on what, when, the link."""
    kind = str((event.data or {}).get("type", "alert"))
    urgent = "URGENT: " if kind in URGENT_TYPES else ""
    noun = NOUNS.get(event.target_type, event.target_type.rpartition(".")[2].lower())
    about = f"{noun} {event.target_id}" if event.target_id else tenant.name
    return {
        "kind": kind,
        "title": f"{urgent}Vouchsafe alert in {tenant.name}: {kind}",
        "what": _what(kind),
        "about": about,
        "when": event.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "link": _link(tenant, event),
    }


def route_message(kind: str, *, tenant: Tenant, event: AuditEvent, id: uuid.UUID) -> dict:
    """The payload one route of `kind` is sent for `event`."""
    text = alert_text(tenant=tenant, event=event)
    lines = (
        f"{text['what']}\nOn: {text['about']}\nRaised: {text['when']}\nReview it: {text['link']}"
    )
    if kind == RouteKind.EMAIL:
        body = (
            f"{text['what']}\n\nOn: {text['about']}\nRaised: {text['when']}\n\n"
            f"Review it in Vouchsafe and acknowledge the alert in the security queue:\n"
            f"{text['link']}\n"
        )
        return {"subject": text["title"], "body": body}
    if kind == RouteKind.SLACK:  # an incoming webhook takes `text` in mrkdwn
        return {"text": f"*{text['title']}*\n{lines}"}
    if kind == RouteKind.TEAMS:  # a Teams workflow or incoming webhook takes an Adaptive Card
        facts = [
            {"title": "On", "value": text["about"]},
            {"title": "Raised", "value": text["when"]},
        ]
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": text["title"], "weight": "Bolder", "wrap": True},
                {"type": "TextBlock", "text": text["what"], "wrap": True},
                {"type": "FactSet", "facts": facts},
            ],
            "actions": [{"type": "Action.OpenUrl", "title": "Review it", "url": text["link"]}],
        }
        return {
            "type": "message",
            "attachments": [{"contentType": TEAMS_CARD, "contentUrl": None, "content": card}],
        }
    return {  # a signed webhook: the subscription body, with the words and the link
        "id": str(id),
        "type": WebhookEventType.ALERT_RAISED.value,
        "tenant": tenant.slug,
        "occurred_at": event.created_at.isoformat(),
        "sequence": event.seq,
        "data": {
            "type": text["kind"],
            "target_type": event.target_type,
            "target_id": event.target_id,
            "summary": text["what"],
            "link": text["link"],
        },
    }

"""Sending outbox rows: claim with a lease, POST without holding a lock, record the outcome.

An attempt is three steps. (1) In a short transaction the row is locked with SKIP LOCKED,
re-checked (still pending, due) and leased: `attempts` goes up and `next_attempt_at` moves a
lease length ahead, so no other worker takes it while the request runs. (2) The signed POST,
outside any transaction. (3) In a second short transaction the attempt is logged and the row
updated, only if the lease is still ours. A worker that dies mid-request leaves the lease to
expire; the sweep then retries it (its attempt is already counted, so a poison row ends dead).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from smtplib import SMTPException
from typing import Any

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from recovery.addresses import destination_problem
from recovery.connectors.selectors import connector_webhook_target
from tenants.choices import DELIVERING_ROUTE_STATUSES, RouteKind
from tenants.rls import system_scope, tenant_scope

from .choices import DeliveryKind, DeliveryStatus
from .models import WebhookDelivery, WebhookDeliveryAttempt
from .outbox import body_bytes
from .signing import sign

logger = logging.getLogger(__name__)

USER_AGENT = "Vouchsafe-Webhooks/1"
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
SWEEP_CLAIM_BATCH = 10
SWEEP_MAX_ROWS = 200
SWEEP_TIME_BUDGET_SECONDS = 50.0


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5))


def max_attempts() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 8))


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 30 s · 2^(n-1), at most 1 h."""
    exponent = max(attempts - 1, 0)
    return timedelta(
        seconds=min(BACKOFF_BASE_SECONDS * 2 ** min(exponent, 20), BACKOFF_CAP_SECONDS)
    )


def _lease_length(rows: int) -> timedelta:
    # Long enough for every request of the batch to time out, with a margin.
    return timedelta(seconds=rows * (timeout_seconds() * 2 + 1) + 30)


@dataclass(frozen=True)
class Claim:
    """A leased delivery and everything needed to send it without touching the database."""

    delivery_id: str
    tenant_id: int
    attempt: int
    lease_until: datetime
    url: str
    secret: str
    event_type: str
    body: bytes
    mail_to: str = ""  # an email route's address: the payload is sent as an email to it
    mail: tuple[str, str] = ("", "")  # its subject and body


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _give_up(row: WebhookDelivery, reason: str) -> None:
    """Mark a row dead (inside the caller's transaction) and record it in the tenant's trail."""
    row.status = DeliveryStatus.DEAD
    row.last_error = reason[:500]
    row.save(update_fields=["status", "last_error", "last_status_code"])
    record(
        action="webhook.delivery_dead",
        actor=Actor.system("webhooks"),
        tenant=row.tenant,
        target=row,
        data={
            "subscription": row.subscription_id,
            "route": row.route_id,
            "event_type": row.event_type,
            "attempts": row.attempts,
            "last_status_code": row.last_status_code,
            "last_error": row.last_error,
        },
    )


def _claim(due: QuerySet[WebhookDelivery], limit: int) -> tuple[list[Claim], int]:
    """Lock up to `limit` due pending rows no one else holds and lease them.

    Returns the leased claims and how many rows were taken (a row of an inactive or deleted
    subscription is given up at once, not sent).
    """
    claims: list[Claim] = []
    with system_scope():
        rows = list(
            due.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=Now())
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription", "route", "tenant")
            .order_by("next_attempt_at", "created_at")[:limit]
        )
        lease_until = timezone.now() + _lease_length(len(rows))
        for row in rows:
            if row.kind == DeliveryKind.CONNECTOR:  # a recovery connector's request
                target, problem = connector_webhook_target(tenant_id=row.tenant_id)
                if target is None:
                    _give_up(row, problem)
                    continue
                url, secret = target.url, target.secret
            elif row.kind == DeliveryKind.ROUTE:  # an alert for one of the tenant's routes
                route = row.route
                if route.status not in DELIVERING_ROUTE_STATUSES:
                    _give_up(row, "The alert route was removed.")
                    continue
                url, secret = route.target, route.secret
            else:
                subscription = row.subscription
                if not subscription.is_active or subscription.deleted_at is not None:
                    _give_up(row, "The subscription is inactive.")
                    continue
                url, secret = subscription.url, subscription.secret
            row.attempts += 1
            row.next_attempt_at = lease_until
            row.save(update_fields=["attempts", "next_attempt_at"])
            claims.append(
                Claim(
                    delivery_id=str(row.pk),
                    tenant_id=row.tenant_id,
                    attempt=row.attempts,
                    lease_until=lease_until,
                    url=url,
                    secret=secret,
                    event_type=row.event_type,
                    body=body_bytes(row.payload),
                    **_mail_of(row),
                )
            )
    return claims, len(rows)


def _mail_of(row: WebhookDelivery) -> dict[str, Any]:
    """An email route's address, subject and body (nothing for a row sent over HTTP)."""
    if row.kind != DeliveryKind.ROUTE or row.route.kind != RouteKind.EMAIL:
        return {}
    return {"mail_to": row.route.target, "mail": (row.payload["subject"], row.payload["body"])}


def _mail(claim: Claim) -> Outcome:
    """Send an email route's alert; never raises for a mail server that is down."""
    subject, body = claim.mail
    started = time.monotonic()
    try:
        sent = EmailMessage(subject=subject, body=body, to=[claim.mail_to]).send()
    except (OSError, SMTPException) as exc:
        return Outcome(None, f"mail not sent ({type(exc).__name__})", _ms_since(started))
    if sent != 1:
        return Outcome(None, "the mail server did not accept the message", _ms_since(started))
    return Outcome(250, "", _ms_since(started))  # SMTP's "completed", as a status code


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _error_of(exc: requests.RequestException) -> str:
    # A fixed description by exception class: messages can quote the URL, whose path may be
    # a credential of the receiver.
    for kind, text in (
        (requests.exceptions.ConnectTimeout, "connect timeout"),
        (requests.exceptions.ReadTimeout, "read timeout"),
        (requests.exceptions.SSLError, "TLS error"),
        (requests.exceptions.ConnectionError, "connection failed"),
        (requests.exceptions.TooManyRedirects, "too many redirects"),
    ):
        if isinstance(exc, kind):
            return text
    return f"request failed ({type(exc).__name__})"


def _post(claim: Claim) -> Outcome:
    """Send one signed request; never raises for a network problem."""
    problem = destination_problem(claim.url)
    if problem:
        return Outcome(None, f"not sent: {problem}", 0)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Vouchsafe-Event": claim.event_type,
        "Vouchsafe-Delivery": claim.delivery_id,
        "Vouchsafe-Signature": sign(claim.secret, timestamp, claim.body),
    }
    started = time.monotonic()
    try:
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            response = session.post(
                claim.url,
                data=claim.body,
                headers=headers,
                timeout=timeout_seconds(),
                allow_redirects=False,  # a redirect could lead anywhere, past the SSRF check
                stream=True,  # the body of the answer is never read
            )
            response.close()
    except requests.RequestException as exc:
        return Outcome(None, _error_of(exc), int((time.monotonic() - started) * 1000))
    elapsed = int((time.monotonic() - started) * 1000)
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(code, "", elapsed)
    if 300 <= code < 400:
        return Outcome(code, f"HTTP {code}: redirects are not followed", elapsed)
    return Outcome(code, f"HTTP {code}", elapsed)


def _record(claim: Claim, outcome: Outcome) -> str:
    """Log the attempt and move the row on, if the lease is still ours; the row's status."""
    now = timezone.now()
    with tenant_scope([claim.tenant_id]):
        WebhookDeliveryAttempt.objects.create(
            tenant_id=claim.tenant_id,
            delivery_id=claim.delivery_id,
            number=claim.attempt,
            attempted_at=now,
            status_code=outcome.status_code,
            error=outcome.error[:500],
            duration_ms=outcome.duration_ms,
        )
        row = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .filter(
                pk=claim.delivery_id,
                status=DeliveryStatus.PENDING,
                attempts=claim.attempt,
                next_attempt_at=claim.lease_until,
            )
            .first()
        )
        if row is None:  # the lease ran out and another worker took over
            logger.warning("webhook delivery %s: lease lost during attempt", claim.delivery_id)
            return "lease_lost"
        row.last_status_code = outcome.status_code
        row.last_error = outcome.error[:500]
        if outcome.delivered:
            row.status, row.delivered_at = DeliveryStatus.DELIVERED, now
            row.save(update_fields=["status", "delivered_at", "last_status_code", "last_error"])
        elif row.attempts >= max_attempts():
            _give_up(row, row.last_error)
        else:
            row.next_attempt_at = now + backoff(row.attempts)
            row.save(update_fields=["next_attempt_at", "last_status_code", "last_error"])
        return row.status


def _attempt(claim: Claim) -> str:
    return _record(claim, _mail(claim) if claim.mail_to else _post(claim))


def webhook_delivery_attempt(*, delivery_id: Any) -> str:
    """Try one delivery now if it is pending and due; returns its status, or "skipped".

    Idempotent: a delivered, dead, leased or not-yet-due row is left as it is.
    """
    claims, rows = _claim(WebhookDelivery.objects.filter(pk=delivery_id), 1)
    if not claims:
        return DeliveryStatus.DEAD if rows else "skipped"
    return _attempt(claims[0])


def webhook_outbox_sweep(
    *, max_rows: int = SWEEP_MAX_ROWS, time_budget_seconds: float = SWEEP_TIME_BUDGET_SECONDS
) -> int:
    """Send due pending deliveries of every tenant, a leased batch at a time; how many tried.

    Rows written while the broker was down, retries after a backoff and rows whose worker died
    all leave through here.
    """
    started, taken, tried = time.monotonic(), 0, 0
    while taken < max_rows and time.monotonic() - started < time_budget_seconds:
        batch = min(SWEEP_CLAIM_BATCH, max_rows - taken)
        claims, rows = _claim(WebhookDelivery.objects.all(), batch)
        if not rows:
            break
        for claim in claims:
            _attempt(claim)
        taken, tried = taken + rows, tried + len(claims)
    return tried

"""Every write of webhook subscriptions and ingested events, each with its audit event."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from recovery.addresses import destination_problem, url_origin, url_syntax_problem
from recovery.cases.choices import ChangeSource
from recovery.cases.services.window import window_change_act_after_commit, window_change_report
from recovery.choices import PHONE_KINDS
from recovery.connectors.cloud import ReportedChange
from recovery.detection.services import ingested_event_detect
from recovery.models import ContactMethod, ProtectedAccount
from tenants.access import TenantAccess, access_in
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User
from tenants.policies import enforce

from .choices import WINDOW_CHANGE_KINDS, DeliveryStatus, IngestEventType, WebhookEventType
from .ingest import event_data_clean
from .models import IngestedEvent, WebhookDelivery, WebhookSubscription
from .policies import can_ingest_events, can_manage_webhooks

MAX_SUBSCRIPTIONS_PER_TENANT = 25
MAX_DESCRIPTION = 200
FUTURE_TOLERANCE = timedelta(minutes=5)
# Carrier events that make a phone number unfit to carry anything for a while.
RISK_EVENTS = frozenset({IngestEventType.SIM_CHANGE, IngestEventType.PORT_OUT})


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _actor(user: User, access: TenantAccess | None, tenant: Tenant) -> Actor:
    return Actor.for_user(user, organisation=(access.organisation if access else "") or tenant.name)


def _webhook_access(actor: User, tenant: Tenant) -> TenantAccess:
    access = access_in(actor, tenant)
    enforce(can_manage_webhooks(actor, access))
    assert access is not None  # guaranteed by the policy above
    return access


def _checked_url(url: Any) -> str:
    url = url.strip() if isinstance(url, str) else url
    problem = url_syntax_problem(url)
    if problem:
        raise InvalidInput(problem, code="webhook.url_invalid", field_errors={"url": [problem]})
    problem = destination_problem(url)
    if problem:
        raise InvalidInput(problem, code="webhook.url_not_allowed", field_errors={"url": [problem]})
    return url


def _checked_event_types(event_types: Any) -> list[str]:
    valid = (
        isinstance(event_types, list | tuple)
        and bool(event_types)
        and all(isinstance(t, str) for t in event_types)
    )
    unknown = sorted(set(event_types) - set(WebhookEventType.values)) if valid else []
    if not valid or unknown:
        raise InvalidInput(
            f"Unknown event types: {unknown}." if unknown else "Choose at least one event type.",
            code="webhook.event_type_unknown",
            field_errors={"event_types": [f"Choose from {', '.join(WebhookEventType.values)}."]},
        )
    return sorted(set(event_types))


def _checked_description(description: Any) -> str:
    if not isinstance(description, str) or len(description.strip()) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"A description is at most {MAX_DESCRIPTION} characters.",
            code="webhook.description_invalid",
            field_errors={"description": [f"At most {MAX_DESCRIPTION} characters."]},
        )
    return description.strip()


def _url_facts(url: str) -> dict[str, str]:
    # The full URL can carry the receiver's credential in its path or query: audit only its
    # origin and a fingerprint.
    return {"origin": url_origin(url), "url_sha256": hashlib.sha256(url.encode()).hexdigest()}


def _locked(subscription: WebhookSubscription) -> WebhookSubscription:
    locked = (
        WebhookSubscription.objects.for_tenant(subscription.tenant)
        .select_for_update()
        .filter(pk=subscription.pk, deleted_at__isnull=True)
        .first()
    )
    if locked is None:
        raise InvalidInput("This webhook subscription was deleted.", code="webhook.deleted")
    return locked


def webhook_subscription_create(
    *,
    actor: User,
    tenant: Tenant,
    url: str,
    event_types: list[str],
    description: str = "",
) -> tuple[WebhookSubscription, str]:
    """Subscribe `url` to `event_types`; returns the subscription and its secret (shown once)."""
    access = _webhook_access(actor, tenant)
    url = _checked_url(url)
    event_types = _checked_event_types(event_types)
    description = _checked_description(description)
    secret = _new_secret()
    with transaction.atomic():
        live = WebhookSubscription.objects.for_tenant(tenant).filter(deleted_at__isnull=True)
        if live.count() >= MAX_SUBSCRIPTIONS_PER_TENANT:
            raise InvalidInput(
                f"A tenant may have at most {MAX_SUBSCRIPTIONS_PER_TENANT} webhook subscriptions.",
                code="webhook.too_many",
            )
        subscription = WebhookSubscription.objects.create(
            tenant=tenant,
            url=url,
            description=description,
            event_types=event_types,
            secret=secret,
            created_by=actor,
        )
        record(
            action="webhook.subscription_created",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=subscription,
            data={**_url_facts(url), "event_types": event_types},
        )
    return subscription, secret


def webhook_subscription_update(
    *,
    actor: User,
    subscription: WebhookSubscription,
    url: str | None = None,
    event_types: list[str] | None = None,
    is_active: bool | None = None,
    description: str | None = None,
) -> WebhookSubscription:
    """Change what was given (None leaves a field as it is); a change of URL is checked again."""
    tenant = subscription.tenant
    access = _webhook_access(actor, tenant)
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = _checked_url(url)
    if event_types is not None:
        changes["event_types"] = _checked_event_types(event_types)
    if description is not None:
        changes["description"] = _checked_description(description)
    if is_active is not None:
        if not isinstance(is_active, bool):
            raise InvalidInput(
                "is_active must be true or false.",
                code="webhook.is_active_invalid",
                field_errors={"is_active": ["true or false."]},
            )
        changes["is_active"] = is_active
    with transaction.atomic():
        subscription = _locked(subscription)
        changed = sorted(k for k, v in changes.items() if getattr(subscription, k) != v)
        if not changed:
            return subscription
        for name in changed:
            setattr(subscription, name, changes[name])
        subscription.save(update_fields=[*changed, "updated_at"])
        record(
            action="webhook.subscription_updated",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=subscription,
            data={
                "changed": changed,
                **_url_facts(subscription.url),
                "event_types": subscription.event_types,
                "is_active": subscription.is_active,
            },
        )
    return subscription


def webhook_subscription_delete(*, actor: User, subscription: WebhookSubscription) -> None:
    """Delete a subscription: it stops at once, its secret is wiped, pending deliveries end.

    The row stays (deleted_at) so its delivery log keeps its subscription.
    """
    tenant = subscription.tenant
    access = _webhook_access(actor, tenant)
    with transaction.atomic():
        subscription = _locked(subscription)
        subscription.is_active, subscription.secret = False, ""
        subscription.deleted_at = timezone.now()
        subscription.save(update_fields=["is_active", "secret", "deleted_at", "updated_at"])
        dropped = (
            WebhookDelivery.objects.for_tenant(tenant)
            .filter(subscription=subscription, status=DeliveryStatus.PENDING)
            .update(status=DeliveryStatus.DEAD, last_error="The subscription was deleted.")
        )
        record(
            action="webhook.subscription_deleted",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=subscription,
            data={**_url_facts(subscription.url), "pending_dropped": dropped},
        )


def webhook_secret_rotate(*, actor: User, subscription: WebhookSubscription) -> str:
    """Replace the signing secret; returns the new one (shown once). Old signatures stop now."""
    tenant = subscription.tenant
    access = _webhook_access(actor, tenant)
    secret = _new_secret()
    with transaction.atomic():
        subscription = _locked(subscription)
        subscription.secret = secret
        subscription.save(update_fields=["secret", "updated_at"])
        record(
            action="webhook.subscription_secret_rotated",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=subscription,
            data=_url_facts(subscription.url),
        )
    return secret


def _checked_occurred_at(occurred_at: Any) -> datetime:
    if not isinstance(occurred_at, datetime) or timezone.is_naive(occurred_at):
        raise InvalidInput(
            "occurred_at must be a date and time with a time zone.",
            code="event.occurred_at_invalid",
            field_errors={"occurred_at": ["An ISO 8601 date-time with an offset."]},
        )
    if occurred_at > timezone.now() + FUTURE_TOLERANCE:
        raise InvalidInput(
            "occurred_at is in the future.",
            code="event.occurred_in_future",
            field_errors={"occurred_at": ["Not more than 5 minutes in the future."]},
        )
    return occurred_at


def _checked_text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value.strip()) > limit or "\x00" in value:
        raise InvalidInput(
            f"{name} must be text of at most {limit} characters.",
            code="event.field_invalid",
            field_errors={name: [f"At most {limit} characters."]},
        )
    return value.strip()


def event_ingest(
    *,
    actor: User,
    tenant: Tenant,
    event_type: str,
    account_external_id: str,
    occurred_at: datetime,
    source: str = "",
    external_id: str = "",
    data: dict[str, Any],
) -> tuple[IngestedEvent, bool]:
    """Store an identity/security event about one of the tenant's protected accounts.

    A repeat of (source, external_id) returns the stored event with created=False and records
    nothing more, so a sender may retry safely.
    """
    access = access_in(actor, tenant)
    enforce(can_ingest_events(actor, access))
    cleaned = event_data_clean(event_type, data)
    occurred_at = _checked_occurred_at(occurred_at)
    source = _checked_text("source", source, 100)
    external_id = _checked_text("external_id", external_id, 200)
    account_external_id = _checked_text("account_external_id", account_external_id, 200)
    with transaction.atomic():
        account = (
            ProtectedAccount.objects.for_tenant(tenant)
            .filter(external_id=account_external_id)
            .first()
        )
        if account is None:
            raise InvalidInput(
                "No protected account of this tenant has that external id.",
                code="event.account_unknown",
                field_errors={"account_external_id": ["Unknown account."]},
            )
        if external_id:
            existing = _existing(tenant, source, external_id)
            if existing is not None:
                return existing, False
        try:
            with transaction.atomic():  # a savepoint: a concurrent twin may win the insert
                event = IngestedEvent.objects.create(
                    tenant=tenant,
                    account=account,
                    event_type=event_type,
                    occurred_at=occurred_at,
                    source=source,
                    external_id=external_id,
                    data=cleaned,
                    received_by=actor,
                )
        except IntegrityError:
            existing = _existing(tenant, source, external_id) if external_id else None
            if existing is None:
                raise
            return existing, False
        record(
            action="event.ingested",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=event,
            data={
                "event_type": event_type,
                "account": account.external_id,
                "occurred_at": occurred_at,
                "source": source,
                "external_id": external_id,
                "data": cleaned,
            },
        )
        # a SIM change or port-out bars the phone from codes, artifacts and notices now.
        _risk_signal_apply(_actor(actor, access, tenant), account, event)
        # inside a recovered account's re-establishment window the change is undone and
        # the account frozen.
        _window_change_report(account, event)
        # R-55 (c): the first use after a recovery, from a network never seen before.
        ingested_event_detect(account=account, event=event)
    return event, True


def _window_change_report(account: ProtectedAccount, event: IngestedEvent) -> None:
    """An ingested R-35 change inside the account's window: kept and the account frozen in the
    ingest's transaction, undone through the connector once it has committed. The sender's
    `external_id` should be the provider's own event id, so the poll reading the same change
    acts on it once."""
    kind = WINDOW_CHANGE_KINDS.get(event.event_type)
    if kind is None:
        return
    details = ", ".join(f"{name}={value}" for name, value in sorted(event.data.items()))
    change = ReportedChange(
        id=event.external_id or f"ingested-{event.pk}",
        at=event.occurred_at,
        kind=kind,
        summary=f"{event.event_type} ({details})" if details else event.event_type,
        target=dict(event.data),
    )
    kept = window_change_report(
        account=account, change=change, source=ChangeSource.INGEST, ingested_event=event.pk
    )
    if kept is not None:
        window_change_act_after_commit(kept)


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _risk_signal_apply(who: Actor, account: ProtectedAccount, event: IngestedEvent) -> int:
    """Move the risk timestamp (`sim_changed_at`) of the phone a SIM change or port-out is
    about, in the ingest's transaction, so the very next request sees it (R-04, R-55).

    The phone is matched by `phone_last4` when the sender gives it, else every phone of the
    account is marked (over-marking only delays a recovery). The timestamp never moves back.
    Each marked contact is recorded as `contact.risk_signal`. Returns how many were marked.
    """
    if event.event_type not in RISK_EVENTS:
        return 0
    last4 = event.data.get("phone_last4") or ""
    phones = (
        ContactMethod.objects.for_tenant(account.tenant)
        .select_for_update()
        .filter(account=account, kind__in=PHONE_KINDS, replaced_at__isnull=True)
        .order_by("pk")
    )
    marked = 0
    for contact in phones:
        if last4 and not _digits(contact.value).endswith(last4):
            continue
        previous = contact.sim_changed_at
        if previous is None or event.occurred_at > previous:
            contact.sim_changed_at = event.occurred_at
            contact.save(update_fields=["sim_changed_at"])
        record(
            action="contact.risk_signal",
            actor=who,
            tenant=account.tenant,
            target=account,
            data={
                "contact": contact.masked,
                "kind": contact.kind,
                "event_type": event.event_type,
                "occurred_at": event.occurred_at,
                "sim_changed_at": contact.sim_changed_at,
                "previous": previous,
                "ingested_event": event.pk,
            },
        )
        marked += 1
    return marked


def _existing(tenant: Tenant, source: str, external_id: str) -> IngestedEvent | None:
    return (
        IngestedEvent.objects.for_tenant(tenant)
        .select_related("account")
        .filter(source=source, external_id=external_id)
        .first()
    )

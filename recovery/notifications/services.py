"""Owner notices (R-38 to R-42): planned from the committed audit chain, sent by workers.

The audit chain is the outbox (`audit.consumers`): for an event the owner must hear about,
the receiver of `audit.signals.event_recorded` only asks, once the event's transaction
commits, for a worker to run `notices_derive`, which reads the tenant's committed events past
its `NoticeCursor` and writes one `OwnerNotice` per address; each is then sent by its own
task. A rolled-back action left no event, so nobody hears of it; a lost task loses nothing
(the sweep derives every tenant whose chain is past its cursor, then sends what the broker
never carried). A failed notice raises an alert and blocks T1/T2 execution (R-42), and so
does a case event whose notices are not planned yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from audit.consumers import chain_consume, chain_consume_soon, chain_consumed, chain_lagging
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import record
from tenants.choices import Tier
from tenants.exceptions import DomainError
from tenants.rls import system_scope
from tenants.routes import security_contacts

from ..cases.channels import IN_QUARANTINE, NOT_ON_RECORD, SIM_CHANGE_RECENT, channel_problem
from ..cases.models import RecoveryCase
from ..choices import PHONE_KINDS, ContactKind
from ..messaging import Delivery, email_send, message_send
from ..models import ContactMethod, ProtectedAccount
from ..policy.rules import Requirements
from ..policy.selectors import policy_for_case
from .models import NoticeCursor, NoticeEvent, NoticeStatus, OwnerNotice

logger = logging.getLogger(__name__)

EVENT_OF_ACTION = {
    "case.opened": NoticeEvent.CASE_OPENED,
    # A case an AI assistant drafted is announced when a person takes it; a person's
    # own case is taken as it opens, so case.taken never follows it.
    "case.taken": NoticeEvent.CASE_OPENED,
    "approval.approved": NoticeEvent.CASE_APPROVED,
    "artifact.issued": NoticeEvent.ARTIFACT_ISSUED,
    "case.executed": NoticeEvent.EXECUTED,
    # The owner bound the new credential in the recovery session.
    "owner.password_set": NoticeEvent.PASSWORD_SET,
    "owner.authenticator_bound": NoticeEvent.AUTHENTICATOR_BOUND,
    # A saved code read back to an agent is used up; the owner hears how many remain (S1).
    "owner.code_used": NoticeEvent.CODE_USED,
}
# Events about the account itself, not a case (owner portal changes, R-38): the notice has no
# case, and its "this wasn't me" freezes the account (`recovery.owner.enrolment.account_repudiate`).
ACCOUNT_EVENT_OF_ACTION = {
    "owner.passkey_added": NoticeEvent.PASSKEY_ADDED,
    "owner.passkey_removed": NoticeEvent.PASSKEY_REMOVED,
    "owner.codes_issued": NoticeEvent.CODES_ISSUED,
}
NOTICE_ACTIONS = frozenset({*EVENT_OF_ACTION, *ACCOUNT_EVENT_OF_ACTION})
OWNER_KINDS = (ContactKind.EMAIL, ContactKind.MOBILE, ContactKind.DESK_PHONE)
_SALT = "vouchsafe.repudiation"
REPUDIATION_MAX_AGE = 30 * 24 * 3600  # a notice's link works for 30 days
SWEEP_AFTER_SECONDS = 30
SWEEP_BATCH = 200


def repudiation_token(notice: OwnerNotice) -> str:
    """The signed reference in a notice's "this wasn't me" link (no secret is stored)."""
    return signing.dumps({"notice": notice.pk}, salt=_SALT, compress=True)


def notice_from_token(token: str) -> OwnerNotice | None:
    """The notice a "this wasn't me" link names, or None for a forged or stale link."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=REPUDIATION_MAX_AGE)
    except signing.BadSignature:
        return None
    with system_scope():
        return (
            OwnerNotice.objects.select_related(
                "tenant", "account", "case", "case__tenant", "case__account"
            )
            .filter(pk=data.get("notice"))
            .first()
        )


Recipient = tuple[str, ContactMethod | None, str]  # (recipient, contact, address)


def _recipients(
    case: RecoveryCase, req: Requirements, at: datetime
) -> tuple[list[Recipient], list[dict]]:
    """Who hears about one event of `case` recorded `at`, and the contacts left out then with
    their reason.

    Every owner address the system of record held before the case opened (R-38), never one
    added during it, and none that R-04 excludes now (in quarantine, or a phone whose SIM
    changed or number was ported recently: the same rule codes and artifacts follow). For
    T1/T2 the manager or the tenant's security contact too (R-40, R-39); for T0 the security
    contact when fewer than two owner addresses remain (R-39).
    """
    held = ContactMethod.objects.for_tenant(case.tenant).filter(
        account=case.account,
        is_notification=True,
        replaced_at__isnull=True,
        registered_at__lt=case.created_at,
        kind__in=[*OWNER_KINDS, ContactKind.MANAGER],
    )
    eligible: list[ContactMethod] = []
    skipped: list[dict] = []
    for contact in held.order_by("pk"):
        problem = channel_problem(case, contact, req.quarantine_seconds, now=at)
        if problem is None:
            eligible.append(contact)
        else:
            skipped.append({"to": contact.masked, "kind": contact.kind, "reason": problem})
    owner = [("owner", c, c.value) for c in eligible if c.kind in OWNER_KINDS]
    managers = [("manager", c, c.value) for c in eligible if c.kind == ContactKind.MANAGER]
    designees: list[Recipient] = managers
    if not designees:
        designees = _security_contacts(case.tenant_id)
    if case.tier in (Tier.T1, Tier.T2) or len(owner) < 2:
        return owner + designees, skipped
    return owner, skipped


def _security_contacts(tenant_id: int) -> list[Recipient]:
    """The tenant's security contacts as designees, where the account has no manager (R-40)."""
    return [("security_contact", None, address) for address in security_contacts(tenant_id)]


def notices_enqueue(ids: list[int]) -> None:
    """Queue one send task per notice (after the transaction that wrote them committed)."""
    from ..tasks import notice_send_task  # tasks import this module

    for notice_id in ids:
        try:
            notice_send_task.delay(notice_id)
        except Exception:
            logger.warning("notice %s not queued; the sweep will send it", notice_id)
            return


def _account_channel_problem(
    account: ProtectedAccount, contact: ContactMethod, quarantine_seconds: int, *, now: datetime
) -> str | None:
    """`channel_problem` for an event with no case: the contact must be the account's, on
    record, past the quarantine and (a phone) without a recent SIM change (R-03, R-04)."""
    if contact.account_id != account.pk or contact.replaced_at:
        return NOT_ON_RECORD
    start = now - timedelta(seconds=quarantine_seconds)
    if contact.registered_at > start:
        return IN_QUARANTINE
    if contact.kind in PHONE_KINDS and contact.sim_changed_at and contact.sim_changed_at > start:
        return SIM_CHANGE_RECENT
    return None


def _account_quarantine(account: ProtectedAccount) -> int:
    from ..owner.enrolment import account_quarantine_seconds  # the owner app imports this one

    return account_quarantine_seconds(account)


def _account_recipients(
    account: ProtectedAccount, before: datetime
) -> tuple[list[Recipient], list[dict]]:
    """Who hears about a change to the account itself, made `before`: every owner address on
    record before it (never a portal credential), R-04 applied then as for a case; for T1/T2,
    or when fewer than two owner addresses remain, the manager or the tenant's security
    contact too (R-39, R-40)."""
    held = ContactMethod.objects.for_tenant(account.tenant).filter(
        account=account,
        is_notification=True,
        replaced_at__isnull=True,
        registered_at__lt=before,
        kind__in=[*OWNER_KINDS, ContactKind.MANAGER],
    )
    quarantine = _account_quarantine(account)
    eligible: list[ContactMethod] = []
    skipped: list[dict] = []
    for contact in held.order_by("pk"):
        problem = _account_channel_problem(account, contact, quarantine, now=before)
        if problem is None:
            eligible.append(contact)
        else:
            skipped.append({"to": contact.masked, "kind": contact.kind, "reason": problem})
    owner = [("owner", c, c.value) for c in eligible if c.kind in OWNER_KINDS]
    designees: list[Recipient] = [
        ("manager", c, c.value) for c in eligible if c.kind == ContactKind.MANAGER
    ]
    if not designees:
        designees = _security_contacts(account.tenant_id)
    if account.tier in (Tier.T1, Tier.T2) or len(owner) < 2:
        return owner + designees, skipped
    return owner, skipped


def _notices_plan(
    *,
    account: ProtectedAccount,
    case: RecoveryCase | None,
    kind: str,
    recipients: list[Recipient],
    skipped: list[dict],
) -> list[int]:
    """Write one pending notice per recipient (and `notice.skipped` for the contacts left
    out); their ids."""
    if skipped:
        record(
            action="notice.skipped",
            actor=Actor.system("notifier"),
            tenant=account.tenant,
            target=case or account,
            data={"event": kind, "skipped": skipped},
        )
    notices = OwnerNotice.objects.bulk_create(
        OwnerNotice(
            tenant=account.tenant,
            case=case,
            account=account,
            event=kind,
            recipient=recipient,
            contact=contact,
            address=address,
        )
        for recipient, contact, address in recipients
    )
    return [notice.pk for notice in notices]


def _account_event_notices(event: AuditEvent, kind: str) -> list[int]:
    """Notices for a change to the account itself (no case)."""
    account = (
        ProtectedAccount.objects.filter(pk=event.target_id, tenant_id=event.tenant_id)
        .select_related("tenant")
        .first()
    )
    if account is None:
        return []
    recipients, skipped = _account_recipients(account, event.created_at)
    return _notices_plan(
        account=account, case=None, kind=kind, recipients=recipients, skipped=skipped
    )


def _event_notices(event: AuditEvent) -> list[int]:
    """The notices one committed owner-facing event calls for; their ids."""
    account_kind = ACCOUNT_EVENT_OF_ACTION.get(event.action)
    if account_kind is not None and event.target_type == ProtectedAccount._meta.label:
        return _account_event_notices(event, account_kind)
    kind = EVENT_OF_ACTION.get(event.action)
    if kind is None or event.target_type != RecoveryCase._meta.label:
        return []
    if event.action == "case.opened" and event.data.get("drafted_by_ai"):
        return []  # an AI assistant's draft: the owner hears of it once a person takes it
    case = (
        RecoveryCase.objects.filter(pk=event.target_id, tenant_id=event.tenant_id)
        .select_related("tenant", "account")
        .first()
    )
    if case is None:
        return []
    req = policy_for_case(case).requirements(case.tier, case.case_type)
    recipients, skipped = _recipients(case, req, event.created_at)
    return _notices_plan(
        account=case.account, case=case, kind=kind, recipients=recipients, skipped=skipped
    )


def notices_derive(*, tenant_id: int) -> list[int]:
    """Plan the notices of the tenant's committed owner-facing events past its cursor
    (`audit.consumers.chain_consume`); the ids of the notices written."""
    return chain_consume(
        cursor_model=NoticeCursor,
        tenant_id=tenant_id,
        actions=NOTICE_ACTIONS,
        consume=lambda events: [pk for event in events for pk in _event_notices(event)],
    )


def notices_derive_lagging() -> list[int]:
    """Derive every tenant whose chain has moved past its notice cursor (what a lost task
    or a crash between commit and worker left); the notices written."""
    return [
        pk
        for tenant_id in chain_lagging(NoticeCursor)
        for pk in notices_derive(tenant_id=tenant_id)
    ]


def on_event_recorded(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Receiver: once an owner-facing event commits, ask a worker to plan its notices (no
    query here; nothing for a rollback)."""
    if event.tenant_id is None or event.action not in NOTICE_ACTIONS:
        return
    tenant_id = event.tenant_id
    transaction.on_commit(lambda: _derive_soon(tenant_id), robust=True)


def _derive_soon(tenant_id: int) -> None:
    from ..tasks import notices_derive_task  # tasks import this module

    try:
        chain_consume_soon(NoticeCursor, tenant_id, notices_derive_task)
    except Exception:  # the broker is down: the sweep derives them
        logger.warning("notices of tenant %s not queued; the sweep will derive them", tenant_id)


def _account_body(notice: OwnerNotice, event: NoticeEvent, link: str) -> tuple[str, str]:
    """A notice about the account itself: what changed, and the way to stop it."""
    subject = f"Security notice: {event.label.lower()}"
    body = (
        f"{event.label} ({notice.account.username}, {timezone.now():%Y-%m-%d %H:%M} UTC).\n\n"
        "If this was you, there is nothing to do.\n"
        f"If it wasn't you, open {link} now: we will freeze the account, remove the passkeys "
        "and saved codes added recently and alert your security team. Nobody from the "
        "service desk will ever ask you for a code, a link or a password."
    )
    return subject, body


def _codes_left(account: ProtectedAccount) -> int:
    from ..owner.codes import code_set_current, codes_remaining  # the owner app imports this one

    code_set = code_set_current(account=account)
    return codes_remaining(code_set) if code_set is not None else 0


def _not_me_link(notice: OwnerNotice) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/not-me/{repudiation_token(notice)}/"


def _body(notice: OwnerNotice) -> tuple[str, str]:
    event = NoticeEvent(notice.event)
    link = _not_me_link(notice)
    if notice.case_id is None:
        return _account_body(notice, event, link)
    account = notice.case.account.username
    subject = f"Security notice: {event.label.lower()}"
    body = (
        f"{event.label} ({account}, case {notice.case_id}, "
        f"{timezone.now():%Y-%m-%d %H:%M} UTC).\n\n"
        "If this was you, there is nothing to do.\n"
        f"If it wasn't you, open {link} now: we will freeze the account, cancel the recovery "
        "and alert your security team. Nobody from the service desk will ever ask you for a "
        "code, a link or a password."
    )
    if event == NoticeEvent.CODE_USED:
        left = _codes_left(notice.case.account)
        body += f"\n\nSaved recovery codes left: {left}. You can make a new set in the portal."
    return subject, body


def _deliver(notice: OwnerNotice, subject: str, body: str) -> Delivery:
    if notice.contact is not None and notice.contact.kind != ContactKind.MANAGER:
        return message_send(notice.contact, subject=subject, body=body)
    return email_send(notice.address, subject=subject, body=body)


def _excluded_now(notice: OwnerNotice) -> str | None:
    """The R-04 reason the notice's contact may no longer carry it, or None."""
    if notice.contact is None:
        return None
    if notice.case_id is None:
        account = notice.account
        quarantine = _account_quarantine(account)
        return _account_channel_problem(account, notice.contact, quarantine, now=timezone.now())
    case = notice.case
    req = policy_for_case(case).requirements(case.tier, case.case_type)
    return channel_problem(case, notice.contact, req.quarantine_seconds)


def notice_send(*, notice_id: int) -> str:
    """Send one pending notice; idempotent (a sent or failed notice is left as it is)."""
    with system_scope():
        notice = (
            OwnerNotice.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("case", "case__account", "account", "contact", "tenant")
            .filter(pk=notice_id, status=NoticeStatus.PENDING)
            .first()
        )
        if notice is None:
            return "skipped"
        excluded = _excluded_now(notice)
        if excluded:
            # R-04 now excludes the contact (a SIM change or port reported since the notice was
            # planned): it is not sent, and fails like an undeliverable one (R-42 holds T1/T2).
            delivery = Delivery(ok=False, provider="", error=f"not sent: {excluded} (R-04)")
        else:
            subject, body = _body(notice)
            delivery = _deliver(notice, subject, body)
        _delivered(notice, delivery)
    return notice.status


def _delivered(notice: OwnerNotice, delivery: Delivery) -> None:
    """Store how one attempt went and record it: `notice.sent`, or `notice.failed` with an
    alert (a failed notice holds T1/T2 execution, R-42)."""
    notice.attempts += 1
    notice.status = NoticeStatus.SENT if delivery.ok else NoticeStatus.FAILED
    notice.sent_at = timezone.now() if delivery.ok else None
    notice.error = delivery.error[:300]
    notice.save(update_fields=["attempts", "status", "sent_at", "error"])
    hint = notice.contact.masked if notice.contact else notice.recipient
    data = {"notice": notice.pk, "event": notice.event, "to": hint, "via": delivery.provider}
    target = notice.case if notice.case_id is not None else notice.account
    if delivery.ok:
        record(
            action="notice.sent",
            actor=Actor.system("notifier"),
            tenant=notice.tenant,
            target=target,
            data=data,
        )
        return
    record(
        action="notice.failed",
        actor=Actor.system("notifier"),
        tenant=notice.tenant,
        target=target,
        data={**data, "error": notice.error},
    )
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=notice.tenant,
        target=target,
        data={"type": "notification_failed", "notice": notice.pk},
    )


def link_notices_send(
    *,
    case: RecoveryCase,
    event: str,
    contacts: list[ContactMethod],
    compose: Callable[[str], tuple[str, str]],
) -> tuple[list[OwnerNotice], list[str]]:
    """Send, now and in the caller's transaction, one owner notice per contact whose message
    carries a one-time link: it cannot wait in the outbox, since the link exists only in the
    message. `compose(not_me_link)` gives the subject and body. Returns the notices sent and
    the masked addresses that failed (each failure recorded with an alert, R-42)."""
    sent: list[OwnerNotice] = []
    failed: list[str] = []
    for contact in contacts:
        notice = OwnerNotice.objects.create(
            tenant=case.tenant,
            case=case,
            account=case.account,
            event=event,
            recipient="owner",
            contact=contact,
            address=contact.value,
        )
        subject, body = compose(_not_me_link(notice))
        delivery = message_send(contact, subject=subject, body=body)
        del body
        _delivered(notice, delivery)
        if delivery.ok:
            sent.append(notice)
        else:
            failed.append(contact.masked)
    return sent, failed


def notice_sweep(*, batch: int = SWEEP_BATCH) -> int:
    """Plan the notices no task derived, then send pending notices older than a few seconds
    (the broker may never have carried them)."""
    notices_enqueue(notices_derive_lagging())
    cutoff = timezone.now() - timedelta(seconds=SWEEP_AFTER_SECONDS)
    with system_scope():
        ids = list(
            OwnerNotice.objects.filter(status=NoticeStatus.PENDING, created_at__lte=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch]
        )
    for notice_id in ids:
        notice_send(notice_id=notice_id)
    return len(ids)


def notices_block_execution(case: RecoveryCase) -> None:
    """R-42 and R-36: a T1/T2 case executes only once every notice so far has been planned
    and has gone out."""
    if case.tier not in (Tier.T1, Tier.T2):
        return
    last_event = (
        AuditEvent.objects.filter(
            tenant_id=case.tenant_id,
            target_type=RecoveryCase._meta.label,
            target_id=str(case.pk),
            action__in=list(EVENT_OF_ACTION),
        )
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if last_event is not None and not chain_consumed(NoticeCursor, case.tenant_id, last_event):
        _derive_soon(case.tenant_id)
        raise DomainError(
            "Notices to the account owner are still being prepared; try again in a minute.",
            code="notice.pending",
        )
    states = set(
        OwnerNotice.objects.for_tenant(case.tenant)
        .filter(case=case)
        .values_list("status", flat=True)
    )
    if NoticeStatus.FAILED in states:
        raise DomainError(
            "A notice to the account owner could not be delivered; a T1/T2 recovery cannot "
            "go ahead until the owner has been told (R-42).",
            code="notice.delivery_failed",
        )
    if NoticeStatus.PENDING in states:
        raise DomainError(
            "Notices to the account owner are still being sent; try again in a minute.",
            code="notice.pending",
        )

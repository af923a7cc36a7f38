"""The re-establishment window after a recovery (R-35, AS-09).

A T1/T2 execution opens the account's window for the policy's `reestablishment_window_seconds`
(`window_open`). Inside it, each of R-35's six kinds of change (`ChangeKind`) that the identity
provider reports, as an ingested event or in the connector's own change log read by the poll,
is acted on once per provider event:

- undone through the tenant's connector when it can (`Capability.CHANGE_UNDO`), recorded as
  `window.change_undone` with the connector's answer; otherwise, or when the connector fails,
  kept as a manual step (`window.change_undo_manual`) that, while the recovery's case is open,
  is one of its pending steps (the case is not closed until a person records it);
- the account is frozen pending review (`frozen_at`, as a repudiation freezes it: no
  execution, no owner enrolment or binding on it), recorded as `window.account_frozen`;
- an `alert.raised` of type `post_recovery_change` goes on the recovery's case.

The owner's own enrolment with the recovery's one-time pass, from the pass until containment
ran, is the recovery itself and is left alone. A change outside the window does nothing.

Reporting (`window_change_report`) only writes, so it runs in the ingest's transaction and the
freeze holds from that commit on. Acting (`window_change_act`) calls the connector before its
own transaction records anything, so the audit chain's lock is never held across a call to the
provider; after an ingest it runs in a task once the event has committed, and the poll finishes
any change whose task was lost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.models import Tenant
from tenants.rls import system_scope, tenant_scope

from ...connectors.base import (
    Capability,
    CloudConnector,
    Connector,
    ExecutionResult,
    capability_missing,
)
from ...connectors.cloud import ChangeKind, ReportedChange
from ...models import ProtectedAccount
from ...policy.rules import Requirements
from ..choices import CaseStatus, ChangeOutcome, ChangeSource
from ..models import CaseExecution, RecoveryCase, ReestablishmentWindow, WindowChange
from ..steps import step_pending
from .roles import role_grant_restored

logger = logging.getLogger(__name__)

POST_RECOVERY_CHANGE = "post_recovery_change"
CHANGE_UNDO = "change_undo"
# The poll reads this far behind its cursor: providers publish audit records minutes late
# (Google's reports most of all), and a change read twice still acts once.
POLL_LOOKBACK = timedelta(minutes=30)
POLL_BATCH = 100
# A claimed window is left to its poll this long; a poll that died frees it by then.
POLL_LEASE = timedelta(minutes=10)
# A change reported this long ago and not acted on lost its task: the poll acts on it.
ACT_GRACE = timedelta(minutes=2)
# How far the provider's clock (its audit record of the owner's new method) and ours (when
# containment ran) may disagree.
CLOCK_SLACK = timedelta(minutes=1)

WINDOW_ACTOR = Actor.system("reestablishment-window")
DETECTION = Actor.system("detection")

# What a person undoes, in words, for each kind (the manual step).
KIND_WORDS: dict[str, str] = {
    ChangeKind.MFA_ENROLLED: "remove the new authenticator",
    ChangeKind.ADDRESS_CHANGED: "put back the recovery or notification address it replaced",
    ChangeKind.MAILBOX_RULE: "remove the new mailbox forwarding, redirect or hiding rule",
    ChangeKind.DELEGATE_GRANTED: "remove the new delegate",
    ChangeKind.OAUTH_CONSENT: "revoke the consent given to the OAuth application",
    ChangeKind.PRIVILEGED_ROLE: "remove the privileged role it granted",
}


def window_open(*, case: RecoveryCase, req: Requirements) -> datetime | None:
    """Open the account's window for `case`, executed now: `restricted_until` and the poll's
    cursor start here. None when the policy gives the case no window (T0 by default)."""
    seconds = req.reestablishment_window_seconds
    if not seconds:
        return None
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    ProtectedAccount.objects.filter(pk=case.account_id).update(restricted_until=until)
    ReestablishmentWindow.objects.update_or_create(
        account_id=case.account_id,
        defaults={
            "tenant": case.tenant,
            "case": case,
            "opened_at": now,
            "polled_until": now,
            "lease_until": None,
        },
    )
    return until


# --- one reported change ---------------------------------------------------------------------


def window_change_report(
    *,
    account: ProtectedAccount,
    change: ReportedChange,
    source: str,
    ingested_event: int | None = None,
) -> WindowChange | None:
    """Keep `change` if it falls inside the account's window, once per provider event id (a
    poll and an ingest of the same change keep one row), and freeze the account at once.

    Calls nothing outside the database, so it may run in the caller's transaction. Returns
    the row to act on (`window_change_act`); None when the change is outside the window, is
    the owner's own enrolment with the recovery's pass, or was reported before.
    """
    with tenant_scope([account.tenant_id]):
        window = _window_for(account, change.at)
        if window is None or _owner_enrolment(account.tenant, window, change):
            return None
        if role_grant_restored(account, change):  # approved by a restore case
            return None
        existing = WindowChange.objects.for_tenant(account.tenant).filter(
            account=account, vendor_id=change.id
        )
        if existing.exists():
            return None
        try:
            with transaction.atomic():  # a savepoint: a concurrent report may win the insert
                row = WindowChange.objects.create(
                    tenant=account.tenant,
                    account=account,
                    case=window.case,
                    vendor_id=change.id,
                    kind=change.kind,
                    occurred_at=change.at,
                    source=source,
                    summary=change.summary[:300],
                    target=change.target,
                    ingested_event=ingested_event,
                )
        except IntegrityError:
            if existing.exists():
                return None
            raise
        _account_freeze(account, row)
    return row


def window_change_act(*, change_id: int, connector: Connector | None = None) -> WindowChange:
    """Undo a kept change through the tenant's connector, or make it a manual step; then raise
    the alert on the recovery's case. Once: a change acted on already is left as it is (two
    callers racing may both ask the connector, whose undo is safe to repeat; one records).

    Call it outside a transaction: the connector is asked before anything is recorded.
    """
    with system_scope():
        change = WindowChange.objects.select_related("tenant", "account", "case").get(pk=change_id)
        if change.outcome != ChangeOutcome.PENDING:
            return change
        if connector is None:
            from ...connectors import connector_for

            connector = connector_for(change.tenant)
    result = _undo(connector, change)
    with tenant_scope([change.tenant_id]):
        locked = (
            WindowChange.objects.for_tenant(change.tenant).select_for_update().get(pk=change.pk)
        )
        if locked.outcome != ChangeOutcome.PENDING:
            return locked
        about = {
            "kind": change.kind,
            "change": change.vendor_id,
            "source": change.source,
            "account": change.account.external_id,
            "connector": result.connector,
            "path": result.path,
            "detail": result.detail,
        }
        locked.answer = {"ok": result.ok, "error": result.error, **about}
        locked.acted_at = timezone.now()
        if result.ok:
            locked.outcome = ChangeOutcome.UNDONE
            record(
                action="window.change_undone",
                actor=WINDOW_ACTOR,
                tenant=change.tenant,
                target=change.case,
                data=about,
            )
        else:
            locked.outcome = ChangeOutcome.MANUAL
            locked.manual_step = _manual_step_words(change, result)
            code = str(result.detail.get("code") or "connector.failed")
            _case_step_add(change, code, locked.manual_step)  # its locks before the chain's
            record(
                action="window.change_undo_manual",
                actor=WINDOW_ACTOR,
                tenant=change.tenant,
                target=change.case,
                data={
                    **about,
                    "code": code,
                    "error": result.error,
                    "manual_step": locked.manual_step,
                },
            )
        locked.save(update_fields=["outcome", "acted_at", "answer", "manual_step"])
        record(
            action="alert.raised",
            actor=DETECTION,
            tenant=change.tenant,
            target=change.case,
            data={
                "type": POST_RECOVERY_CHANGE,
                "kind": change.kind,
                "change": change.vendor_id,
                "source": change.source,
                "ingested_event": change.ingested_event,
                "occurred_at": change.occurred_at,
                "summary": change.summary,
                "undo": locked.outcome,
                "account_frozen": True,
            },
        )
    return locked


def window_change_act_after_commit(change: WindowChange) -> None:
    """Act on `change` in a task once the caller's transaction has committed (the ingest's);
    with the broker down, the poll acts on it after `ACT_GRACE`."""
    transaction.on_commit(lambda: _act_soon(change.pk), robust=True)


def window_change_handle(
    *,
    account: ProtectedAccount,
    change: ReportedChange,
    source: str,
    connector: Connector | None = None,
) -> WindowChange | None:
    """R-35 for one change the provider reported, outside any transaction: kept once if it
    falls inside the window, the account frozen, undone or made a manual step, the alert
    raised. None when there was nothing to do."""
    kept = window_change_report(account=account, change=change, source=source)
    return None if kept is None else window_change_act(change_id=kept.pk, connector=connector)


def _act_soon(change_id: int) -> None:
    from ...tasks import window_change_act_task  # tasks import this module

    try:
        window_change_act_task.delay(change_id)
    except Exception:  # the broker is down: the poll acts on it
        logger.warning("window change %s not queued; the poll will act on it", change_id)


def window_case(account: ProtectedAccount, at: datetime) -> RecoveryCase | None:
    """The recovery whose re-establishment window `at` falls inside, if any."""
    window = _window_for(account, at)
    return None if window is None else window.case


def _window_for(account: ProtectedAccount, at: datetime) -> ReestablishmentWindow | None:
    """The account's window, if `at` falls inside it (from the execution that opened it to
    `restricted_until`)."""
    until = account.restricted_until
    if until is None or at >= until:
        return None
    window = (
        ReestablishmentWindow.objects.for_tenant(account.tenant)
        .select_related("case")
        .filter(account=account)
        .first()
    )
    if window is None or at < window.opened_at:
        return None
    return window


def _owner_enrolment(tenant: Tenant, window: ReestablishmentWindow, change: ReportedChange) -> bool:
    """An authenticator enrolled while the owner held the recovery's one-time pass, before
    containment ran, is the owner binding their new method (R-11), not a change to undo."""
    if change.kind != ChangeKind.MFA_ENROLLED:
        return False
    execution = (
        CaseExecution.objects.for_tenant(tenant)
        .filter(case_id=window.case_id)
        .only("temporary_pass", "containment_done_at")
        .first()
    )
    issued = execution.temporary_pass if execution is not None else None
    if not issued:
        return False
    started = datetime.fromisoformat(issued["started_at"]) - CLOCK_SLACK
    done = execution.containment_done_at
    return change.at >= started and (done is None or change.at <= done + CLOCK_SLACK)


def _account_freeze(account: ProtectedAccount, change: WindowChange) -> None:
    """Freeze the account pending review, unless it is frozen already (a conditional update:
    two reports at once freeze it once)."""
    frozen = ProtectedAccount.objects.filter(pk=account.pk, frozen_at__isnull=True).update(
        frozen_at=timezone.now()
    )
    if frozen:
        record(
            action="window.account_frozen",
            actor=WINDOW_ACTOR,
            tenant=account.tenant,
            target=account,
            data={
                "case": change.case_id,
                "kind": change.kind,
                "change": change.vendor_id,
                "source": change.source,
            },
        )


def _undo(connector: Connector, change: WindowChange) -> ExecutionResult:
    """The connector's answer to undoing `change`; a connector without the capability, or one
    that raised, answers a failure (the account is frozen already: a person undoes it)."""
    operation = f"{CHANGE_UNDO} {change.kind}"
    if Capability.CHANGE_UNDO not in connector.capabilities:
        return capability_missing(connector.kind, operation)
    reported = ReportedChange(
        id=change.vendor_id,
        at=change.occurred_at,
        kind=ChangeKind(change.kind),
        summary=change.summary,
        target=change.target,
    )
    try:
        return cast(CloudConnector, connector).change_undo(account=change.account, change=reported)
    except Exception as error:
        logger.exception("window change %s: the %s connector raised", change.pk, connector.kind)
        return ExecutionResult(
            ok=False,
            connector=connector.kind,
            path=operation,
            detail={"code": "connector.failed"},
            error=f"{type(error).__name__}: {error}"[:300],
        )


def _manual_step_words(change: WindowChange, result: ExecutionResult) -> str:
    what = change.summary or change.vendor_id
    words = (
        f"In the directory's admin console, {KIND_WORDS[change.kind]} for "
        f"{change.account.username} ({what}, {change.occurred_at:%Y-%m-%d %H:%M} UTC)."
    )
    if result.error:
        words += f" The connector answered: {result.error}"
    return words


def _case_step_add(change: WindowChange, code: str, words: str) -> None:
    """While the recovery's case is still open, the manual undo is one of its pending steps
    (`containment_step_record`): the case is not closed before a person has done it."""
    case = RecoveryCase.objects.for_tenant(change.tenant).select_for_update().get(pk=change.case_id)
    if case.status != CaseStatus.EXECUTED:
        return
    execution = CaseExecution.objects.for_tenant(change.tenant).select_for_update().get(case=case)
    step_id = f"{CHANGE_UNDO}:{change.vendor_id}"
    if any(step["id"] == step_id for step in execution.containment_steps):
        return
    execution.containment_steps = [
        *execution.containment_steps,
        step_pending(
            step_id=step_id,
            operation=CHANGE_UNDO,
            target=change.vendor_id,
            code=code,
            words=words,
        ),
    ]
    execution.save(update_fields=["containment_steps"])


# --- the poll --------------------------------------------------------------------------------


def window_poll(*, batch: int = POLL_BATCH) -> int:
    """One round of the window poll (R-35): act on changes whose task was lost, then, tenant
    by tenant where the connector reads changes (`Capability.CHANGES_READ`), read each open
    window's changes since its cursor and act on each one not seen before.

    Windows are claimed a batch at a time with SKIP LOCKED and a lease, so two polls never
    read the same window and no row lock is held across a call to the provider. A tenant
    whose connector fails is recorded (`window.poll_failed`) and left until the next round;
    the other tenants are polled. Returns how many changes were acted on.
    """
    acted = _lost_acts_finish(batch)
    started = timezone.now()
    with system_scope():
        tenant_ids = sorted(
            set(
                ReestablishmentWindow.objects.filter(
                    account__restricted_until__gt=Now()
                ).values_list("tenant_id", flat=True)
            )
        )
        tenants = Tenant.objects.in_bulk(tenant_ids)
    for tenant_id in tenant_ids:
        acted += _tenant_poll(tenants[tenant_id], started, batch)
    return acted


def _lost_acts_finish(batch: int) -> int:
    with system_scope():
        lost = list(
            WindowChange.objects.filter(
                outcome=ChangeOutcome.PENDING, reported_at__lt=Now() - ACT_GRACE
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
    for change_id in lost:
        window_change_act(change_id=change_id)
    return len(lost)


def _tenant_poll(tenant: Tenant, started: datetime, batch: int) -> int:
    from ...connectors import connector_for

    try:
        with tenant_scope([tenant.pk]):
            connector = connector_for(tenant)
    except Exception as error:  # a configuration that no longer builds: the others go on
        _poll_failed(tenant, "", None, error)
        return 0
    if Capability.CHANGES_READ not in connector.capabilities:
        return 0
    acted = 0
    while windows := _windows_claim(tenant, started, batch):
        for position, window in enumerate(windows):
            try:
                acted += _window_read(cast(CloudConnector, connector), window)
            except Exception as error:
                _poll_failed(tenant, connector.kind, window, error)
                _leases_release(windows[position:])
                return acted
        if len(windows) < batch:
            break
    return acted


def _windows_claim(tenant: Tenant, started: datetime, batch: int) -> list[ReestablishmentWindow]:
    """Open windows of `tenant` not read in this round and not leased, leased to this poll."""
    with tenant_scope([tenant.pk]):
        windows = list(
            ReestablishmentWindow.objects.for_tenant(tenant)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "account")
            .filter(account__restricted_until__gt=Now(), polled_until__lt=started)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=Now()))
            .order_by("polled_until", "pk")[:batch]
        )
        ReestablishmentWindow.objects.filter(pk__in=[w.pk for w in windows]).update(
            lease_until=Now() + POLL_LEASE
        )
    return windows


def _window_read(connector: CloudConnector, window: ReestablishmentWindow) -> int:
    """Read one window's changes since its cursor (looking back `POLL_LOOKBACK`, never before
    it opened), act on each, then move the cursor to when this read began."""
    since = max(window.opened_at, window.polled_until - POLL_LOOKBACK)
    read_at = timezone.now()
    acted = 0
    for change in connector.changes_since(account=window.account, since=since):
        handled = window_change_handle(
            account=window.account, change=change, source=ChangeSource.POLL, connector=connector
        )
        acted += handled is not None
    with tenant_scope([window.tenant_id]):
        ReestablishmentWindow.objects.filter(pk=window.pk).update(
            polled_until=read_at, lease_until=None
        )
    return acted


def _leases_release(windows: list[ReestablishmentWindow]) -> None:
    with tenant_scope([windows[0].tenant_id]):
        ReestablishmentWindow.objects.filter(pk__in=[w.pk for w in windows]).update(
            lease_until=None
        )


def _poll_failed(
    tenant: Tenant, kind: str, window: ReestablishmentWindow | None, error: Exception
) -> None:
    logger.warning("window poll of tenant %s failed: %s", tenant.pk, error)
    with tenant_scope([tenant.pk]):
        record(
            action="window.poll_failed",
            actor=WINDOW_ACTOR,
            tenant=tenant,
            target=window.account if window is not None else None,
            data={
                "connector": kind,
                "case": window.case_id if window is not None else None,
                "error_kind": getattr(error, "kind", type(error).__name__),
                "error": str(error)[:300],
            },
        )

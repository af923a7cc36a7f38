from celery import shared_task
from django.db.models.functions import Now

from tenants.rls import system_scope

from .artifacts.services import artifact_sweep
from .cases.choices import CaseStatus
from .cases.models import RecoveryCase
from .cases.services import case_expire_sweep, case_release_cooled
from .cases.services.repudiation import account_revert_sweep
from .cases.services.roles import roles_regrant_expire_sweep
from .cases.services.window import window_change_act, window_poll
from .delegation.services import delegations_expire_sweep
from .notifications.approvers import approvers_notify_all
from .notifications.services import notice_send, notice_sweep, notices_derive, notices_enqueue

SWEEP_BATCH = 200


@shared_task(acks_late=True)
def case_release_cooled_task() -> int:
    """Sweep: cases whose cooling-off has passed (by database time) become ready.

    Claims a batch with SKIP LOCKED, so two workers never take the same case; each release is
    its own audited transition and a case released already is left as it is.
    """
    with system_scope():
        due = list(
            RecoveryCase.objects.select_for_update(skip_locked=True)
            .select_related("tenant")
            .filter(status=CaseStatus.COOLING_OFF, cooling_off_until__lte=Now())
            .order_by("cooling_off_until", "pk")[:SWEEP_BATCH]
        )
        due.sort(key=lambda case: (case.tenant_id, case.pk))  # one lock order for chain heads
        for case in due:
            case_release_cooled(case=case)
    return len(due)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def case_expire_sweep_task() -> int:
    """Sweep: open cases idle past their policy's `case_idle_limit_seconds` become expired,
    one audited expiry each (SKIP LOCKED batches; a case expired already is left as it is)."""
    return case_expire_sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def artifact_sweep_task() -> int:
    """Sweep: revoke every artifact past expiry, one audited revocation each (R-33)."""
    return artifact_sweep()


# Sent on the request path: no result to store, so a stalled result backend cannot stall it.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def notice_send_task(notice_id: int) -> str:
    """Send one owner notice; a second delivery of the task finds it sent and does nothing."""
    return notice_send(notice_id=notice_id)


# Queued on the request path (after commit): no result to store.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def notices_derive_task(tenant_id: int) -> int:
    """Plan the notices of the tenant's committed owner-facing events (queued on commit), then
    queue each one's sending; a second delivery finds nothing left to plan."""
    notice_ids = notices_derive(tenant_id=tenant_id)
    notices_enqueue(notice_ids)
    return len(notice_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def notice_sweep_task() -> int:
    """Sweep: plan what no task planned, then send owner notices the broker never carried."""
    return notice_sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def account_revert_sweep_task() -> int:
    """Sweep (R-37, R-41): revert each repudiated execution whose revert the owner's request
    did not finish; the recording transaction records each once, whoever runs it."""
    return account_revert_sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def window_poll_task() -> int:
    """Sweep (R-35): read the changes the connectors report on accounts in their
    re-establishment window and act on each new one (undo, freeze, alert); also act on
    ingested changes whose task was lost. SKIP LOCKED batches with a lease per window."""
    return window_poll()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def delegations_expire_sweep_task() -> int:
    """Sweep: remove each mailbox delegation past its expiry through the connector that
    granted it (or leave the removal as a manual step), one audited step each; a row another
    sweep holds is skipped, and one removed already is left as it is."""
    return delegations_expire_sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def roles_regrant_expire_sweep_task() -> int:
    """Sweep (R-19): remove again, through the connector, the privileged roles of each
    re-grant whose time box has ended and suspend the account again (or leave a person a
    tracked step); a failure stays due for the next sweep. SKIP LOCKED with a lease per row."""
    return roles_regrant_expire_sweep()


# Queued after an ingest commits: no result to store.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def window_change_act_task(change_id: int) -> str:
    """Undo one change reported inside a window, or make it a manual step, and raise the
    alert; a second delivery finds it acted on and does nothing."""
    return window_change_act(change_id=change_id).outcome


@shared_task(acks_late=True, reject_on_worker_lost=True)
def approvers_notify_task() -> int:
    """Beat, every minute: tell approvers of the cases waiting for them (one message a minute
    at most) and escalate the overdue ones (recovery.notifications.approvers)."""
    return approvers_notify_all()

"""Revocation and owner notices on real Celery workers over a private Redis (AS-07, R-30, R-33).

Every test here runs on committed data (`committed`), with its own uniquely named tenants, and
the worker processes read the test database. The broker is a `redis-server` this module starts
on a free port (`private_broker`): one test SIGKILLs workers and another stops the broker for
30 s, which must disturb nothing else on the machine. The sweep is global (it revokes every
due artifact of every tenant), so assertions are per tenant.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection, connections, transaction
from django.db.models import Q
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.models import AuditChainHead, AuditEvent
from audit.verify import verify_chain
from recovery.artifacts.models import RecoveryArtifact
from recovery.artifacts.services import SWEEP_BATCH, ArtifactRefused, artifact_consume
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notices_derive
from recovery.tasks import artifact_sweep_task, notice_send_task, notice_sweep_task
from tenants.choices import Role
from tenants.models import Tenant

from ..factories import make_account_with, make_tenant, notices_sent, security_contact, staff
from ..recovery.casework import contact
from ..recovery.execution.helpers import last_recovery_mail, link_token
from .artifact_rows import artifacts_expiring, template_case
from .private_broker import RedisServer, Worker, celery_app_on, running_worker


@pytest.fixture(scope="module")
def broker(django_db_setup) -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    with celery_app_on(server.url):
        yield server
    server.close()


@pytest.fixture(scope="module")
def outbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("worker-outbox")


@pytest.fixture(scope="module")
def worker(broker, outbox) -> Iterator[Worker]:
    """The module's worker on the default queue (where on_commit enqueues go): two threads,
    so two deliveries of one task really run at the same time."""
    with running_worker(broker.url, pool="threads", concurrency=2, outbox=outbox) as w:
        yield w


def _revocations(tenant: Tenant) -> Counter:
    """artifact id -> number of `artifact.revoked` events for it in the tenant's trail."""
    return Counter(
        event.data["artifact"]
        for event in AuditEvent.objects.filter(tenant=tenant, action="artifact.revoked")
    )


def _statuses(ids: list[int]) -> Counter:
    return Counter(RecoveryArtifact.objects.filter(pk__in=ids).values_list("status", flat=True))


def _wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


def _expired(n: int, seconds_ago: int = 60) -> list:
    now = timezone.now()
    return [now - timedelta(seconds=seconds_ago, milliseconds=i) for i in range(n)]


# --- revocation by a real worker ------------------------------------------------------------


def test_a_worker_sweep_revokes_each_due_artifact_once_and_leaves_the_rest(committed, worker):
    tenant = make_tenant()
    template = template_case(tenant)  # its own link is valid for 24 h: must stay active
    due = artifacts_expiring(tenant, _expired(450), template=template)
    later = artifacts_expiring(tenant, [timezone.now() + timedelta(hours=1)] * 3, template=template)

    swept = artifact_sweep_task.apply_async().get(timeout=90)

    assert swept >= len(due)  # the sweep is global; other tenants' leftovers count too
    assert _statuses(due) == {"revoked": len(due)}
    assert _statuses(later) == {"active": 3}
    assert RecoveryArtifact.objects.get(case=template).status == "active"
    events = AuditEvent.objects.filter(tenant=tenant, action="artifact.revoked")
    assert _revocations(tenant) == Counter(due)
    assert {e.data["reason"] for e in events} == {"expired"}
    assert {e.actor_label for e in events} == {"artifact-sweep"}
    taps = set(
        RecoveryArtifact.objects.filter(pk__in=due, kind="temporary_access_pass").values_list(
            "pk", flat=True
        )
    )
    ended = {e.data["artifact"] for e in events if e.data["temporary_access_ended"]}
    assert taps and ended == taps  # a pass's revocation also ends it through the connector
    artifact_sweep_task.apply_async().get(timeout=30)  # a second sweep finds nothing of ours
    assert _revocations(tenant) == Counter(due)
    assert verify_chain(tenant.pk, tenant.slug).intact


# --- kill -9 in the middle of a sweep -------------------------------------------------------


def test_a_sweep_killed_mid_batch_rolls_back_and_the_next_sweep_revokes_each_once(
    committed, broker
):
    """SIGKILL the worker while it sweeps thousands of due artifacts: the batch in flight
    rolls back with the dead connection (no revocation without its event, no event without
    its revocation); a new worker finishes the job, and the killed delivery, redelivered by
    Redis because it was never acknowledged (acks_late), revokes nothing twice."""
    tenant = make_tenant()
    template = template_case(tenant)
    due = artifacts_expiring(tenant, _expired(3000), template=template)
    queue = f"sweep-kill-{tenant.pk}"
    alone = not _due_elsewhere_than([tenant])

    first = Worker(broker.url, queues=queue, name="doomed")
    try:
        killed = artifact_sweep_task.apply_async(queue=queue)
        _wait_for(
            lambda: (
                RecoveryArtifact.objects.filter(pk__in=due, status="revoked").count() >= SWEEP_BATCH
            ),
            timeout=90,
            what="the first batch of the sweep",
            interval=0.02,
        )
        first.kill()
    finally:
        first.stop()
    time.sleep(1)  # the server notices the closed connection and aborts its transaction
    at_kill = _statuses(due)
    assert 0 < at_kill["revoked"] < len(due), at_kill
    assert _revocations(tenant) == Counter(
        RecoveryArtifact.objects.filter(pk__in=due, status="revoked").values_list("pk", flat=True)
    )
    if alone:  # only our rows were due: what survived the kill is whole committed batches
        assert at_kill["revoked"] % SWEEP_BATCH == 0, at_kill

    with running_worker(broker.url, queues=queue, name="successor", visibility_timeout=2):
        again = artifact_sweep_task.apply_async(queue=queue)
        swept_after = again.get(timeout=90)
        redelivered = killed.get(timeout=60)  # the unacknowledged delivery runs again
    print(
        f"\nkilled with {at_kill['revoked']} of {len(due)} revoked; the new worker's sweep "
        f"revoked {swept_after}, the redelivered one {redelivered}"
    )
    assert _statuses(due) == {"revoked": len(due)}
    assert _revocations(tenant) == Counter(due)  # exactly one event per artifact
    assert RecoveryArtifact.objects.get(case=template).status == "active"
    assert verify_chain(tenant.pk, tenant.slug).intact


# --- a task delivered twice -----------------------------------------------------------------


def _opened(tenant: Tenant, timing: list[float] | None = None) -> RecoveryCase:
    """A T1 case opened through the service on an account with an email and a mobile, in a
    tenant with a security contact: three notices once a worker plans them from the committed
    chain. `timing` gets case_open's seconds."""
    security_contact(tenant, f"soc-{tenant.pk}@example.test")
    account = make_account_with(tenant, groups=["finance"])  # T1: the designee hears too
    contact(account, "email", f"owner-{account.pk}@example.test", age_days=300)
    contact(account, "mobile", f"+1555{account.pk:07d}", age_days=300)
    agent = staff(Role.AGENT, tenant=tenant)
    started = time.monotonic()
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    if timing is not None:
        timing.append(time.monotonic() - started)
    return case


def _opened_with_notices(tenant: Tenant) -> list[OwnerNotice]:
    """`_opened`, once the worker has planned its three notices."""
    case = _opened(tenant)
    _wait_for(
        lambda: OwnerNotice.objects.filter(case=case).count() == 3,
        timeout=60,
        what="the worker plans the notices of the committed opening",
    )
    return list(OwnerNotice.objects.filter(case=case).order_by("pk"))


def _mails_to(outbox: Path, address: str) -> int:
    folder = outbox / "mail"
    if not folder.exists():
        return 0
    return sum(f.read_text().count(f"To: {address}\n") for f in folder.iterdir())


def _sms_to(outbox: Path, number: str) -> int:
    path = outbox / "sms.jsonl"
    return path.read_text().count(f'"to": "{number}"') if path.exists() else 0


def test_a_notice_task_delivered_again_sends_nothing_more(committed, worker, outbox):
    tenant = make_tenant()
    notices = _opened_with_notices(tenant)
    assert len(notices) == 3
    ids = [n.pk for n in notices]
    _wait_for(
        lambda: (
            set(OwnerNotice.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}
        ),
        timeout=60,
        what="the worker sends the notices enqueued on commit",
    )

    again = [notice_send_task.apply_async((i,), ignore_result=False) for i in ids for _ in range(2)]
    assert {r.get(timeout=30) for r in again} == {"skipped"}
    assert {notice_send_task(i) for i in ids} == {"skipped"}  # and run in this process

    assert set(OwnerNotice.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    sent = Counter(
        e.data["notice"] for e in AuditEvent.objects.filter(tenant=tenant, action="notice.sent")
    )
    assert sent == Counter(ids)
    for notice in notices:
        if notice.address.startswith("+"):
            assert _sms_to(outbox, notice.address) == 1
        else:
            assert _mails_to(outbox, notice.address) == 1


def test_two_simultaneous_deliveries_of_one_notice_send_it_once(committed, worker, outbox):
    """The outbox row is claimed with SKIP LOCKED: of two deliveries running at once on the
    worker's two threads, one sends and the other finds nothing to do."""
    tenant = make_tenant()
    case = _opened_with_notices(tenant)[0].case
    _wait_for(
        lambda: not OwnerNotice.objects.filter(case=case, status="pending").exists(),
        timeout=60,
        what="the case's own notices",
    )
    address = f"race-{tenant.pk}@example.test"
    notice = OwnerNotice.objects.create(  # a row as the outbox receiver writes it
        tenant=tenant, case=case, event="case_opened", recipient="owner", address=address
    )
    results = [notice_send_task.apply_async((notice.pk,), ignore_result=False) for _ in range(2)]
    assert sorted(r.get(timeout=30) for r in results) == ["sent", "skipped"]
    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == ("sent", 1)
    assert _mails_to(outbox, address) == 1
    events = AuditEvent.objects.filter(tenant=tenant, action="notice.sent")
    assert [e.data["notice"] for e in events].count(notice.pk) == 1


def test_two_simultaneous_sweeps_revoke_each_artifact_once(committed, worker):
    tenant = make_tenant()
    due = artifacts_expiring(tenant, _expired(3 * SWEEP_BATCH + 7))
    sweeps = [artifact_sweep_task.apply_async() for _ in range(2)]
    counts = [r.get(timeout=90) for r in sweeps]  # both succeed
    assert sum(counts) >= len(due)
    artifact_sweep_task()  # a third delivery, run in this process
    assert _statuses(due) == {"revoked": len(due)}
    assert _revocations(tenant) == Counter(due)
    assert verify_chain(tenant.pk, tenant.slug).intact


def test_two_concurrent_sweeps_over_two_tenants_both_succeed(committed, worker):
    """Two sweeps at once on the worker's two threads, over rows of two tenants.

    By expiry, batch 1 is 190 artifacts of `first` then 10 of `second`, batch 2 the reverse.
    The test holds `first`'s audit chain head until both sweeps wait for a lock, then lets go.
    Revoking in expiry order, sweep 2 would hold `second`'s head while waiting for `first`'s,
    and sweep 1, once it has `first`'s, would wait for `second`'s: a deadlock, which
    PostgreSQL breaks by aborting one sweep. Locking the heads tenant by tenant in one order
    prevents it. Both sweeps must finish without error, each artifact revoked once."""
    first, second = make_tenant(), make_tenant()
    base = timezone.now() - timedelta(minutes=10)

    def at(offsets) -> list:
        return [base + timedelta(milliseconds=10 * i) for i in offsets]

    a = artifacts_expiring(first, at([*range(0, 190), *range(210, 400)]))
    b = artifacts_expiring(second, at(range(190, 210)))
    assert not _due_elsewhere_than([first, second])
    _wait_for(  # the template cases' notices: the worker must be idle before we block it
        lambda: (
            not OwnerNotice.objects.filter(tenant__in=[first, second], status="pending").exists()
        ),
        timeout=60,
        what="the template cases' notices",
    )
    with transaction.atomic():
        AuditChainHead.objects.select_for_update().get(tenant=first)
        sweep_1 = artifact_sweep_task.apply_async()
        _wait_for(lambda: _waiting_on_locks() == 1, timeout=30, what="sweep 1 waits")
        sweep_2 = artifact_sweep_task.apply_async()
        _wait_for(lambda: _waiting_on_locks() == 2, timeout=30, what="sweep 2 waits")
    outcomes = [r.get(timeout=90, propagate=False) for r in (sweep_1, sweep_2)]
    artifact_sweep_task.apply_async().get(timeout=90)  # whatever an aborted one left
    assert _revocations(first) == Counter(a) and _revocations(second) == Counter(b)
    assert all(isinstance(n, int) for n in outcomes), outcomes


def _waiting_on_locks() -> int:
    """Other sessions of this database now waiting for a lock (the worker's sweeps)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else frozen for the transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _due_elsewhere_than(tenants: list[Tenant]) -> bool:
    return (
        RecoveryArtifact.objects.filter(status="active", expires_at__lte=timezone.now())
        .exclude(tenant__in=tenants)
        .exists()
    )


# --- replay and race of consumption ---------------------------------------------------------


def _present_twice_at_once(token: str) -> list[str]:
    """Two threads, each with its own database connection, present `token` together."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def present() -> None:
        try:
            barrier.wait(timeout=10)
            artifact_consume(token=token, purpose="password")
            outcomes.append("won")
        except ArtifactRefused:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=present) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_two_presentations_of_one_token_at_once_exactly_one_wins(committed, broker):
    """R-30: the compare-and-set lets one presentation through; the other gets the same
    refusal as an unknown token and is recorded as a reuse attempt, with an alert."""
    tenant = make_tenant()
    rounds = 4
    for _ in range(rounds):
        case = template_case(tenant)
        assert _present_twice_at_once(link_token(last_recovery_mail().body)) == [
            "refused",
            "won",
        ]
        assert RecoveryArtifact.objects.get(case=case).status == "consumed"
        for action in ("artifact.consumed", "token.reuse_attempt"):
            events = AuditEvent.objects.filter(tenant=tenant, action=action, target_id=case.pk)
            assert events.count() == 1, action
    alerts = AuditEvent.objects.filter(tenant=tenant, action="alert.raised")
    assert sum(e.data.get("type") == "token_reuse" for e in alerts) == rounds
    assert verify_chain(tenant.pk, tenant.slug).intact
    mail.outbox.clear()


# --- the broker down for 30 s ---------------------------------------------------------------

OUTAGE_SECONDS = 30


def test_with_the_broker_down_for_30s_expiry_holds_requests_work_and_one_sweep_catches_up(
    committed, broker, worker
):
    """During the outage, database time still refuses an expired link and requests that
    enqueue tasks after commit still answer (the broker error is caught; the outbox rows wait).
    When Redis is back, the worker that lived through the outage reconnects, one sweep revokes
    everything that fell due, and the notice sweep sends what the broker never carried."""
    tenant = make_tenant()
    api = _api_client(tenant)
    short = template_case(tenant)  # expires 3 s into the outage
    short_token = link_token(last_recovery_mail().body)
    RecoveryArtifact.objects.filter(case=short).update(
        expires_at=timezone.now() + timedelta(seconds=3)
    )
    valid = template_case(tenant)
    valid_token = link_token(last_recovery_mail().body)
    falling_due = artifacts_expiring(
        tenant,
        [timezone.now() + timedelta(seconds=2 + i % 20) for i in range(300)],
        template=valid,
    )
    ready = _ready_t0_case(tenant)
    notices_sent(tenant)  # whatever the worker has not sent yet, sent here
    _wait_for(
        lambda: not OwnerNotice.objects.filter(tenant=tenant, status="pending").exists(),
        timeout=60,
        what="notices from before the outage",
    )

    # The ready case's own earlier notices went out before the outage; only later ones wait.
    sent_before = set(OwnerNotice.objects.filter(case=ready).values_list("pk", flat=True))
    with celery_app_on(broker.url, result_backend=None):  # as production: no result backend
        broker.stop()
        down_at = time.monotonic()
        browser = Client()

        time.sleep(max(0.0, 4 - (time.monotonic() - down_at)))
        assert browser.post(f"/recover/{short_token}/").status_code == 410
        assert AuditEvent.objects.filter(
            tenant=tenant, action="token.expired_presented", target_id=str(short.pk)
        ).exists()
        with pytest.raises(ArtifactRefused):
            artifact_consume(token=short_token, purpose="password")
        assert browser.post(f"/recover/{valid_token}/").status_code == 302  # session opened

        started = time.monotonic()
        response = api.post(f"/api/v1/t/{tenant.slug}/cases/{ready.pk}/execute/")
        execute_seconds = time.monotonic() - started
        assert response.status_code == 200, response.content
        assert execute_seconds < 5, execute_seconds
        timing: list[float] = []
        opened = _opened(make_tenant(), timing)
        assert timing[0] < 5, timing
        # Nothing is planned while no task can be queued: the events wait in the chain.
        assert not OwnerNotice.objects.filter(case=opened).exists()
        assert not OwnerNotice.objects.filter(case=ready).exclude(pk__in=sent_before).exists()
        with pytest.raises(OperationalError):  # a bare .delay() does raise: callers catch
            artifact_sweep_task.delay()
        assert _statuses(falling_due)["active"] == len(falling_due)  # nobody sweeps now

        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        broker.start()
        back_at = time.monotonic()

    swept = artifact_sweep_task.apply_async().get(timeout=90)
    reconnect = time.monotonic() - back_at
    assert swept >= len(falling_due) + 1
    assert _statuses(falling_due) == {"revoked": len(falling_due)}
    assert RecoveryArtifact.objects.get(case=short).status == "revoked"
    assert RecoveryArtifact.objects.get(case=valid).status == "consumed"
    assert _revocations(tenant) == Counter(
        [*falling_due, RecoveryArtifact.objects.get(case=short).pk]
    )
    # Events of the outage: the notice sweep plans their notices and the worker sends them.
    notice_sweep_task.apply_async().get(timeout=60)
    stranded = OwnerNotice.objects.filter(Q(case=opened) | Q(case=ready)).exclude(
        pk__in=sent_before
    )
    _wait_for(
        lambda: (
            stranded.filter(case=opened).count() == 3
            and stranded.filter(case=ready).exists()
            and set(stranded.values_list("status", flat=True)) == {"sent"}
        ),
        timeout=60,
        what="the notices of the outage's events, planned by the sweep and sent",
    )
    print(
        f"\nbroker down {OUTAGE_SECONDS} s: execute answered in {execute_seconds:.2f} s, "
        f"case_open in {timing[0]:.2f} s; the surviving worker swept {reconnect:.1f} s after "
        "Redis came back"
    )


def _api_client(tenant: Tenant):
    from ..api.conftest import key_client

    return key_client(tenant)


def _ready_t0_case(tenant: Tenant):
    from ..recovery.execution.helpers import owner_email, ready_case

    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    return case


# The settings give a send up to two attempts of a few seconds each (socket_timeout 5 s,
# max_retries 1); a request that enqueues once must answer well within gunicorn's 30 s.
FROZEN_BOUND_SECONDS = 20


def test_a_request_answers_while_the_broker_hangs(committed, broker, worker):
    """Redis frozen (SIGSTOP) rather than stopped: connections stay open and nothing answers.
    The request that opens a case must still answer (the send times out, the error is caught
    and the outbox row waits for the notice sweep) instead of hanging on the socket. The app
    runs as production does, without a result backend."""
    tenant = make_tenant()
    timing: list[float] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            _opened(tenant, timing)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    with celery_app_on(broker.url, result_backend=None):
        broker.freeze()
        try:
            thread = threading.Thread(target=request, daemon=True)
            thread.start()
            thread.join(timeout=FROZEN_BOUND_SECONDS + 2)  # + set-up before case_open
            answered = not thread.is_alive()
        finally:
            broker.thaw()
        thread.join(timeout=60)
    assert not errors, errors
    assert answered and timing[0] < FROZEN_BOUND_SECONDS, timing
    # The opening's event is in the chain; the notice sweep plans its notices from there.
    assert len(notices_derive(tenant_id=tenant.pk)) == 3
    print(f"\nbroker frozen: case_open answered in {timing[0]:.1f} s")

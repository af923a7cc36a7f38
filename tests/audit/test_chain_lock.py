"""The chain head is locked as late as possible: after the receivers of `event_recorded`,
and the events a receiver records follow the event that called for them."""

from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, transaction

from audit.context import Actor
from audit.models import AuditChainHead, AuditEvent
from audit.services import record
from audit.signals import event_recorded
from audit.verify import verify_chain

from ..factories import make_tenant

SYSTEM = Actor.system("test")


@pytest.fixture
def on_recorded() -> Iterator[list]:
    """Connect receivers for one test: append a callable(event, target) to the list."""
    receivers: list = []

    def receiver(sender, event, target=None, **kwargs):
        for call in list(receivers):
            call(event, target)

    event_recorded.connect(receiver, dispatch_uid="test-chain-lock")
    try:
        yield receivers
    finally:
        event_recorded.disconnect(dispatch_uid="test-chain-lock")


def _head_is_free(key: str) -> bool:
    """From another connection: can the chain head be locked right now?"""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=False,
    ) as other:
        try:
            other.execute(
                "SELECT 1 FROM audit_auditchainhead WHERE key = %s FOR UPDATE NOWAIT", [key]
            )
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            other.rollback()
    return True


def test_receivers_run_before_the_chain_head_is_locked(committed, on_recorded):
    tenant = make_tenant()
    key = f"tenant:{tenant.pk}"
    seen: list[tuple[int, bool]] = []
    on_recorded.append(lambda event, target: seen.append((event.seq, _head_is_free(key))))
    with transaction.atomic():
        event = record(action="alert.raised", actor=SYSTEM, tenant=tenant, data={})
        assert not _head_is_free(key)  # appended: held until the commit
    assert seen[-1] == (0, True)  # the receiver ran with the event unplaced, the head free
    assert _head_is_free(key)
    assert AuditChainHead.objects.get(key=key).seq == event.seq


def test_an_event_a_receiver_records_follows_the_event_that_called_for_it(acme, on_recorded):
    def follow_up(event, target):
        if event.action == "alert.raised":
            record(action="notice.skipped", actor=SYSTEM, tenant=acme, data={"after": 1})

    on_recorded.append(follow_up)
    with transaction.atomic():
        first = record(action="alert.raised", actor=SYSTEM, tenant=acme, data={})
    later = AuditEvent.objects.filter(tenant_id=acme.pk, seq__gt=first.seq).order_by("seq")
    assert [e.action for e in later] == ["notice.skipped"]
    assert later[0].prev_hash == first.hash and first.pk is not None
    assert verify_chain(acme.pk, acme.slug).intact


def test_the_receivers_get_the_recorded_instance(acme, on_recorded):
    targets: list = []
    on_recorded.append(lambda event, target: targets.append(target))
    with transaction.atomic():
        record(action="alert.raised", actor=SYSTEM, tenant=acme, target=acme, data={})
    assert targets == [acme] and targets[0] is acme


def test_an_event_whose_receiver_fails_is_never_appended(acme, on_recorded):
    def failing(event, target):
        if event.action == "alert.raised":
            raise RuntimeError("receiver failed")

    on_recorded.append(failing)
    before = AuditChainHead.objects.get(tenant_id=acme.pk).seq
    with transaction.atomic():  # the caller catches the failure inside its own transaction
        with pytest.raises(RuntimeError), transaction.atomic():
            record(action="alert.raised", actor=SYSTEM, tenant=acme, data={})
        on_recorded.clear()
        after = record(action="case.note_added", actor=SYSTEM, tenant=acme, data={})
    assert after.seq == before + 1  # the failed event left nothing queued to append
    assert verify_chain(acme.pk, acme.slug).intact

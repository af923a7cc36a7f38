import itertools
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS_HASH
from audit.context import Actor
from audit.exceptions import AuditError
from audit.models import AuditChainHead, AuditEvent
from audit.services import record
from audit.verify import verify_chain
from tenants.choices import Role
from tenants.models import Membership
from tenants.services import membership_create

from ..factories import make_tenant, make_user, operator
from .checkpointing import lines_unconfirmed

SYSTEM = Actor.system("test")


def _events(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("seq"))


@pytest.mark.django_db
def test_events_of_a_tenant_form_one_chain(acme):
    with transaction.atomic():
        for n in range(3):
            record(action="audit.verified", actor=SYSTEM, tenant=acme, data={"n": n})
    events = _events(acme)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    head = AuditChainHead.objects.get(tenant=acme)
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    assert verify_chain(acme.pk, acme.slug).intact


@pytest.mark.django_db
def test_unknown_action_is_refused(acme):
    with pytest.raises(AuditError, match="Unknown audit action"), transaction.atomic():
        record(action="case.teleported", actor=SYSTEM, tenant=acme)


def test_record_outside_a_transaction_is_refused(committed):
    with pytest.raises(AuditError, match="inside the transaction"):
        record(action="audit.verified", actor=SYSTEM)


@pytest.mark.django_db
def test_audit_failure_rolls_back_the_action_it_records(acme):
    user = make_user()
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON audit_auditevent
              FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
        """)
    with pytest.raises(DatabaseError, match="audit store unavailable"):
        membership_create(actor=operator(), user=user, role=Role.AGENT, tenant=acme)
    assert not Membership.objects.filter(user=user).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'tenant.created'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent CASCADE",
        "UPDATE auditlog_logentry SET changes_text = ''",
        "DELETE FROM auditlog_logentry",
        "TRUNCATE auditlog_logentry",
        "DELETE FROM audit_auditchainhead",
    ],
)
def test_audit_tables_refuse_rewrites_even_for_the_owner(acme, statement):
    assert AuditEvent.objects.filter(tenant=acme).exists()
    refused = pytest.raises(DatabaseError, match=r"append-only|Cannot")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(statement)
    assert AuditEvent.objects.filter(tenant=acme).exists()


@pytest.mark.django_db
def test_auditlog_records_field_diffs_with_secrets_masked(acme):
    from auditlog.models import LogEntry

    user = make_user()
    user.set_password("another secret phrase")
    user.save()
    changes = [entry.changes or {} for entry in LogEntry.objects.get_for_object(user)]
    password_changes = [c["password"] for c in changes if "password" in c]
    assert password_changes, "the password change itself is recorded"
    for old, new in password_changes:
        assert user.password not in (old, new) and "*" in new


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**53), 2**53)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=4,
    )
)
def test_any_json_payload_survives_the_database_round_trip_with_its_hash(acme, data):
    with transaction.atomic():
        record(action="audit.verified", actor=SYSTEM, tenant=acme, data=data)
    assert verify_chain(acme.pk, acme.slug).intact
    assert lines_unconfirmed(acme)[0] == []  # the exact path reads every row, no ORM needed


def test_concurrent_writers_never_fork_or_gap_a_chain(committed):
    tenant = make_tenant()
    writers, per_writer, errors = 6, 15, []
    start = threading.Barrier(writers)

    def write(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_writer):
                with transaction.atomic():
                    record(
                        action="audit.verified",
                        actor=SYSTEM,
                        tenant=tenant,
                        data={"worker": worker, "n": n},
                    )
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = _events(tenant)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 1 + writers * per_writer  # tenant.created + ours
    assert len({e.prev_hash for e in events}) == len(events)  # no two rows share a parent
    report = verify_chain(tenant.pk, tenant.slug)
    assert report.intact and report.rows == len(events)


def test_concurrent_first_writers_create_one_chain_head(committed):
    tenants = [make_tenant() for _ in range(3)]
    barrier, errors = threading.Barrier(4), []

    def write() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                record(action="audit.verified", actor=SYSTEM, data={"platform": True})
                for tenant in tenants:
                    record(action="audit.verified", actor=SYSTEM, tenant=tenant)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for tenant in tenants:
        assert verify_chain(tenant.pk, tenant.slug).intact
    assert verify_chain(None, "platform").intact


def test_audit_verify_command_exits_zero_when_intact(committed, capsys):
    tenant = make_tenant()
    call_command("audit_verify", "--tenant", tenant.slug)
    assert f"OK      {tenant.slug}" in capsys.readouterr().out


def test_audit_verify_command_rejects_an_unknown_tenant(committed):
    with pytest.raises(CommandError, match="No tenant with slug") as failed:
        call_command("audit_verify", "--tenant", "no-such-tenant")
    assert failed.value.returncode == 2


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(label=st.text(max_size=30), org=st.text(max_size=10))
def test_any_text_in_actor_fields_verifies_and_tampering_is_still_caught(acme, label, org):
    actor = Actor(id="42", label=label, type=SYSTEM.type, organisation=org)
    with transaction.atomic():
        event = record(action="audit.verified", actor=actor, tenant=acme, data={"l": label})
    assert verify_chain(acme.pk, acme.slug).intact
    assert lines_unconfirmed(acme) == ([], [])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET actor_org = actor_org || 'x' WHERE id = %s", [event.pk]
        )
        report = verify_chain(acme.pk, acme.slug)
        transaction.set_rollback(True)
    assert report.first_bad_seq == event.seq


@pytest.mark.parametrize(
    "text", ["\n", "\r", "\t", "\\", '"', "\x01", "\x7f", "\b", "\f", "\v", "é", "\u2028", "\\N"]
)
def test_every_character_copy_or_json_escapes_is_read_back_exactly(acme, text):
    """The walk reads rows as COPY text: each escape COPY writes is undone exactly."""
    actor = Actor(id="42", label=f"a{text}b", type=SYSTEM.type, organisation=text)
    with transaction.atomic():
        record(action="audit.verified", actor=actor, tenant=acme, data={text: f"x{text}"})
    assert lines_unconfirmed(acme) == ([], [])
    assert verify_chain(acme.pk, acme.slug).intact


def test_the_audit_guide_lists_every_registered_action():
    """docs/audit.md's table is the one place an operator looks up an action: keep it whole."""
    import re
    from pathlib import Path

    from django.conf import settings

    from audit.registry import ACTIONS

    guide = (Path(settings.BASE_DIR) / "docs" / "audit.md").read_text()
    guide = guide[guide.index("## Registered actions") :]
    listed = set(re.findall(r"^\| `([a-z_.]+)` \|", guide, flags=re.MULTILINE))
    assert listed == set(ACTIONS), {
        "missing": sorted(set(ACTIONS) - listed),
        "stale": sorted(listed - set(ACTIONS)),
    }


@pytest.mark.django_db
def test_what_the_chain_records_write_by_write_has_no_auditlog_diff(acme):
    from auditlog.models import LogEntry

    from tests.recovery.execution.helpers import ready_case

    ready_case(acme, groups=["Finance"])  # T1: two verified signals, then an approval
    actions = set(AuditEvent.objects.filter(tenant=acme).values_list("action", flat=True))
    assert {"verification.challenge_sent", "verification.signal_accepted"} <= actions
    assert "approval.approved" in actions
    logged = set(LogEntry.objects.values_list("content_type__model", flat=True))
    assert "recoverycase" in logged  # the case's later changes still have their diffs
    assert not logged & {"evidence", "approval", "verificationchallenge"}

"""Retention, legal holds and dual-authorised purges (R-48, R-51; audit.retention).

Real PostgreSQL (the purge function, its trigger and the app role), real checkpoint stores on
disk, real soft passkeys answering the purge's own challenge. Events are made old by recording
them under a patched clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.checkpoints import trusted_keys
from audit.models import AuditChainHead, AuditEvent, AuditPurge, PurgeStatus
from audit.retention import (
    legal_hold_place,
    legal_hold_release,
    purge_approve,
    purge_challenge,
    purge_execute,
    purge_plan,
    purge_request,
    retention_days,
    retention_set,
)
from audit.services import record
from audit.verify import CheckpointSource, verify_chain
from integrations.models import WebhookDelivery, WebhookSubscription
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant, User
from tenants.stepup import StepUpProof, step_up_passkey_verify

from ..api.conftest import api, key_client
from ..approle import as_app_role
from ..conftest import signed_in_client
from ..factories import make_tenant, passkey_of, staff, step_up
from ..staffkey import staff_sign
from .checkpointing import SYSTEM
from .test_checkpoints import rewrite_consistently
from .test_export_rehash import run_guide_script
from .test_tampering import tamper

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(days=500)


@contextmanager
def clock_at(moment: datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def old_events(tenant: Tenant, count: int, *, case: int | None = None) -> list[int]:
    """`count` events recorded 500 days ago (naming `case` when given); their seqs."""
    data = {} if case is None else {"case": case}
    with clock_at(timezone.now() - LONG_AGO), transaction.atomic():
        return [
            record(action="audit.verified", actor=SYSTEM, tenant=tenant, data=data).seq
            for _ in range(count)
        ]


def new_events(tenant: Tenant, count: int, *, case: int | None = None) -> list[int]:
    data = {} if case is None else {"case": case}
    with transaction.atomic():
        return [
            record(action="audit.verified", actor=SYSTEM, tenant=tenant, data=data).seq
            for _ in range(count)
        ]


@pytest.fixture
def acme(db) -> Tenant:
    """A tenant made long ago: its first events are older than any retention."""
    with clock_at(timezone.now() - LONG_AGO - timedelta(days=1)):
        return make_tenant()


@pytest.fixture
def admins(acme) -> tuple[User, User]:
    """Two audit admins of the tenant, made long ago too."""
    with clock_at(timezone.now() - LONG_AGO - timedelta(days=1)):
        return staff(Role.AUDIT_ADMIN, tenant=acme), staff(Role.AUDIT_ADMIN, tenant=acme)


def approval_step_up(user: User, purge: AuditPurge) -> StepUpProof:
    """The approver's soft passkey answering the purge's own challenge, verified as the console
    verifies it."""
    challenge = purge_challenge(purge)
    return step_up_passkey_verify(
        user=user,
        challenge=challenge,
        credential_json=staff_sign(passkey_of(user), challenge),
        inputs={"action": "audit.purge_approve", "purge": purge.pk},
    )


def check(tenant: Tenant, stores, trusted, *, incremental: bool = False):
    source = CheckpointSource(stores, trusted_keys([trusted]), True)
    return verify_chain(tenant.pk, tenant.slug, checkpoints=source, incremental=incremental)


def seqs_of(tenant: Tenant) -> list[int]:
    return list(
        AuditEvent.objects.filter(tenant=tenant).order_by("seq").values_list("seq", flat=True)
    )


def purged(acme, admins, reason: str = "contract ended") -> AuditPurge:
    asker, approver = admins
    purge = purge_request(actor=asker, tenant=acme, reason=reason)
    return purge_approve(
        actor=approver,
        tenant=acme,
        purge_id=purge.pk,
        step_up=approval_step_up(approver, purge),
    )


def refused(code: str, act) -> DomainError:
    with pytest.raises(DomainError) as error:
        act()
    assert error.value.code == code, error.value.message
    return error.value


# retention


def test_retention_stays_at_least_six_months_and_is_recorded(acme, admins):
    admin = admins[0]
    assert retention_days(acme) == 400  # the deployment's default
    refused(
        "audit.retention_out_of_range", lambda: retention_set(actor=admin, tenant=acme, days=182)
    )
    retention_set(actor=admin, tenant=acme, days=183)
    assert retention_days(acme) == 183
    event = AuditEvent.objects.filter(tenant=acme, action="audit.retention_set").get()
    assert event.data == {"days": 183, "before": 400}


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.AUDITOR, Role.SECURITY_OFFICER])
def test_only_the_tenants_audit_admins_administer_its_trail(acme, role):
    other = staff(role, tenant=acme)
    old_events(acme, 3)
    refused("audit.admin_required", lambda: retention_set(actor=other, tenant=acme, days=999))
    refused(
        "audit.admin_required",
        lambda: legal_hold_place(actor=other, tenant=acme, reason="litigation"),
    )
    refused("audit.admin_required", lambda: purge_request(actor=other, tenant=acme, reason="x"))
    assert not AuditPurge.objects.exists()


# what a purge may remove


def test_the_plan_is_the_prefix_older_than_the_retention(acme):
    old = old_events(acme, 4)
    new_events(acme, 2)
    plan = purge_plan(acme)
    assert plan.through_seq == old[-1]
    assert plan.events == old[-1]  # tenant.created and the four old events


def test_a_case_with_newer_events_keeps_all_of_them(acme):
    before = old_events(acme, 2)
    case_start = old_events(acme, 1, case=42)[0]
    old_events(acme, 2)
    new_events(acme, 1, case=42)
    plan = purge_plan(acme)
    assert plan.through_seq == case_start - 1 == before[-1]
    assert plan.held_back


def test_a_held_case_stops_the_purge_before_its_first_event(acme, admins):
    old_events(acme, 2)
    held = old_events(acme, 1, case=7)[0]
    last = old_events(acme, 2)[-1]
    assert purge_plan(acme).through_seq == last
    hold = legal_hold_place(actor=admins[0], tenant=acme, reason="matter 2026-114", case_id=7)
    plan = purge_plan(acme)
    assert plan.through_seq == held - 1
    assert "Case 7" in plan.held_back
    legal_hold_release(actor=admins[1], tenant=acme, hold_id=hold.pk)
    assert purge_plan(acme).through_seq == last


def test_a_hold_on_the_whole_trail_stops_every_purge(acme, admins):
    old_events(acme, 3)
    legal_hold_place(actor=admins[0], tenant=acme, reason="regulator inquiry")
    assert purge_plan(acme).through_seq == 0
    refused("audit.purge_nothing", lambda: purge_request(actor=admins[0], tenant=acme, reason="x"))


def test_a_hold_names_a_case_the_trail_holds(acme, admins):
    refused(
        "audit.hold_unknown_case",
        lambda: legal_hold_place(actor=admins[0], tenant=acme, reason="m", case_id=99999),
    )


def test_a_hold_placed_after_the_request_still_keeps_its_case(acme, admins, configured):
    old_events(acme, 2)
    held = old_events(acme, 1, case=8)[0]
    old_events(acme, 2)
    asker, approver = admins
    purge = purge_request(actor=asker, tenant=acme, reason="yearly")
    legal_hold_place(actor=asker, tenant=acme, reason="late matter", case_id=8)
    done = purge_approve(
        actor=approver, tenant=acme, purge_id=purge.pk, step_up=approval_step_up(approver, purge)
    )
    assert done.through_seq == held - 1
    assert seqs_of(acme)[0] == held


# dual authorisation


def test_the_asker_cannot_approve_their_own_purge(acme, admins, configured):
    old_events(acme, 3)
    asker = admins[0]
    purge = purge_request(actor=asker, tenant=acme, reason="yearly")
    refused(
        "audit.purge_same_person",
        lambda: purge_approve(
            actor=asker, tenant=acme, purge_id=purge.pk, step_up=approval_step_up(asker, purge)
        ),
    )
    second_account = staff(Role.AUDIT_ADMIN, tenant=acme)  # the asker's other account
    User.objects.filter(pk=second_account.pk).update(person_id=asker.person_id)
    second_account.refresh_from_db()
    refused(
        "audit.purge_same_person",
        lambda: purge_approve(
            actor=second_account,
            tenant=acme,
            purge_id=purge.pk,
            step_up=approval_step_up(second_account, purge),
        ),
    )
    assert seqs_of(acme)[0] == 1
    assert AuditPurge.objects.get().status == PurgeStatus.REQUESTED


def test_approval_needs_a_fresh_passkey(acme, admins, configured):
    old_events(acme, 3)
    asker, approver = admins
    purge = purge_request(actor=asker, tenant=acme, reason="yearly")
    refused(
        "stepup.required",
        lambda: purge_approve(actor=approver, tenant=acme, purge_id=purge.pk, step_up=None),
    )
    refused(
        "stepup.kind_refused",
        lambda: purge_approve(
            actor=approver, tenant=acme, purge_id=purge.pk, step_up=step_up(approver)
        ),
    )
    assert seqs_of(acme)[0] == 1


def test_a_trail_that_does_not_verify_is_not_purged(acme, admins, configured):
    old_events(acme, 4)
    asker, approver = admins
    purge = purge_request(actor=asker, tenant=acme, reason="yearly")
    tamper(acme, "UPDATE audit_auditevent SET data = '{{}}' WHERE tenant_id = {t} AND seq = 3")
    refused(
        "audit.purge_chain_broken",
        lambda: purge_approve(
            actor=approver,
            tenant=acme,
            purge_id=purge.pk,
            step_up=approval_step_up(approver, purge),
        ),
    )
    assert seqs_of(acme)[0] == 1


# the purge, and verification after it


def test_an_approved_purge_removes_the_prefix_and_the_chain_still_verifies(
    acme, admins, configured, stores, trusted
):
    old = old_events(acme, 5)
    new_events(acme, 3)
    purge = purged(acme, admins)
    assert purge.status == PurgeStatus.EXECUTED
    assert (purge.through_seq, purge.removed) == (old[-1], old[-1])
    assert seqs_of(acme)[0] == old[-1] + 1
    signed = [
        stores[0].get(f"tenant:{acme.pk}", seq) for seq in stores[0].seqs(f"tenant:{acme.pk}")
    ]
    assert [c.purge["through_seq"] for c in signed if c.purge] == [old[-1]]
    actions = list(
        AuditEvent.objects.filter(tenant=acme, action__startswith="audit.purge").values_list(
            "action", flat=True
        )
    )
    assert actions == ["audit.purge_requested", "audit.purge_approved", "audit.purged"]
    assert check(acme, stores, trusted).intact
    new_events(acme, 2)
    assert check(acme, stores, trusted, incremental=True).intact


def test_the_guides_script_checks_an_export_of_a_purged_chain(acme, admins, configured, tmp_path):
    old_events(acme, 4)
    purge = purged(acme, admins)
    response = key_client(acme).get(api(acme, "audit/export/"))
    export = b"".join(response.streaming_content)
    start = (str(purge.through_seq + 1), purge.through_hash)
    lines = run_guide_script(tmp_path, export, *start)
    head = AuditChainHead.objects.get(tenant=acme)
    first = purge.through_seq + 1
    assert lines[:-1] == [f"seq {seq}: ok" for seq in range(first, head.seq + 1)]
    assert lines[-1].startswith(f"last seq {head.seq}, last hash {head.hash}")
    unstarted = run_guide_script(tmp_path, export)
    assert (
        unstarted[0] == f"seq {first}: expected seq 1; prev_hash does not link to the previous row"
    )


def test_rows_deleted_without_a_signed_purge_are_found(acme, stores, trusted, configured):
    old_events(acme, 5)
    tamper(acme, "DELETE FROM audit_auditevent WHERE tenant_id = {t} AND seq <= 3")
    report = check(acme, stores, trusted)
    assert (report.first_bad_seq, report.reason) == (1, "expected seq 1, found 4")


def test_rows_deleted_past_the_signed_purge_are_found(acme, admins, configured, stores, trusted):
    old_events(acme, 5)
    new_events(acme, 2)
    purge = purged(acme, admins)
    first = purge.through_seq + 1
    tamper(acme, f"DELETE FROM audit_auditevent WHERE tenant_id = {{t}} AND seq <= {first + 1}")
    report = check(acme, stores, trusted)
    assert report.first_bad_seq == first
    assert report.reason == f"expected seq {first}, found {first + 2}"


def test_a_purged_chain_relinked_to_another_start_is_found(
    acme, admins, configured, stores, trusted
):
    old_events(acme, 4)
    purge = purged(acme, admins)
    first = purge.through_seq + 1
    rewrite_consistently(acme, first, prev="f" * 64)  # every later hash recomputed
    report = check(acme, stores, trusted)
    assert (report.first_bad_seq, report.reason) == (
        first,
        "prev_hash does not match the previous row",
    )


def test_a_purge_checkpoint_signed_with_another_key_is_not_trusted(
    acme, admins, configured, stores, tmp_path
):
    old_events(acme, 4)
    purged(acme, admins)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    report = check(acme, stores, stranger)  # as if the rows had been deleted
    assert (report.first_bad_seq, report.reason) == (1, "expected seq 1, found 8")


def test_no_store_keeps_the_checkpoint_then_nothing_is_removed_until_run_again(
    acme, admins, configured, stores, tmp_path
):
    old = old_events(acme, 4)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    configured.AUDIT_CHECKPOINT_STORES = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(blocker / "x")}}
    ]
    with pytest.raises(DomainError) as failed:
        purged(acme, admins)
    assert failed.value.code == "audit.purge_not_signed"
    purge = AuditPurge.objects.get()
    assert purge.status == PurgeStatus.APPROVED
    assert seqs_of(acme)[0] == 1
    configured.AUDIT_CHECKPOINT_STORES = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(stores[0].path)}}
    ]
    done = purge_execute(actor=admins[0], tenant=acme, purge_id=purge.pk)
    assert done.status == PurgeStatus.EXECUTED
    assert seqs_of(acme)[0] == old[-1] + 1


def test_no_role_deletes_audit_rows_outside_a_signed_purge(acme, admins, app_role):
    old_events(acme, 3)
    with (
        pytest.raises(DatabaseError, match="outside an approved purge"),
        transaction.atomic(),
        connection.cursor() as cursor,  # the owner, triggers on
    ):
        cursor.execute("DELETE FROM audit_auditevent WHERE tenant_id = %s", [acme.pk])
    purge = purge_request(actor=admins[0], tenant=acme, reason="yearly")
    AuditPurge.objects.filter(pk=purge.pk).update(
        status=PurgeStatus.SIGNED, decided_by=admins[1], checkpoint_digest="f" * 64
    )  # what the app role can write: no approval event in the chain
    with as_app_role([acme.pk]):
        with (
            pytest.raises(DatabaseError, match="not an approved and signed purge"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT audit_purge_through(%s)", [purge.pk])
        with (
            pytest.raises(DatabaseError, match="permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("DELETE FROM audit_auditevent WHERE tenant_id = %s", [acme.pk])
    assert seqs_of(acme)[0] == 1


# the console


def test_the_retention_page_gives_forms_to_audit_admins_only(acme, admins):
    old_events(acme, 3)
    auditor = staff(Role.AUDITOR, tenant=acme)
    page = signed_in_client(auditor).get(f"/t/{acme.slug}/audit/retention/")
    assert page.status_code == 200
    assert b'id="purge-plan"' in page.content and b'id="purge-request-form"' not in page.content
    page = signed_in_client(admins[0]).get(f"/t/{acme.slug}/audit/retention/")
    assert b'id="purge-request-form"' in page.content and b'id="hold-form"' in page.content
    agent = staff(Role.AGENT, tenant=acme)
    assert signed_in_client(agent).get(f"/t/{acme.slug}/audit/retention/").status_code == 403


def test_a_purge_asked_and_approved_in_the_console(acme, admins, configured):
    old = old_events(acme, 4)
    asker, approver = admins
    response = signed_in_client(asker).post(
        f"/t/{acme.slug}/audit/retention/purges/", {"reason": "contract ended"}
    )
    assert response.status_code == 302
    purge = AuditPurge.objects.get()
    client, passkey = signed_in_client(approver), passkey_of(approver)
    options = client.get(f"/t/{acme.slug}/audit/retention/purges/{purge.pk}/step-up/")
    assert options.status_code == 200 and options.json()["allowCredentials"]
    assertion = staff_sign(passkey, purge_challenge(purge))
    response = client.post(
        f"/t/{acme.slug}/audit/retention/purges/{purge.pk}/approve/",
        {"step_up_assertion": assertion},
        follow=True,
    )
    assert f"up to entry #{old[-1]}".encode() in response.content
    assert seqs_of(acme)[0] == old[-1] + 1


# rows of other parts that point at purged events


def delivery_of(tenant: Tenant, seq: int, status: str, admin: User):
    """A webhook delivery of the tenant's event at `seq` (as the outbox writes one)."""
    subscription = WebhookSubscription.objects.create(
        tenant=tenant, url="http://127.0.0.1:9/", secret="s", created_by=admin
    )
    event = AuditEvent.objects.get(tenant=tenant, seq=seq)
    with connection.cursor() as cursor:  # foreign keys checked as a commit would check them
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return WebhookDelivery.objects.create(
        tenant=tenant,
        subscription=subscription,
        event_type="alert.raised",
        audit_event=event,
        audit_seq=seq,
        payload={},
        status=status,
        next_attempt_at=timezone.now(),
    )


def test_the_webhook_deliveries_of_purged_events_go_with_them(acme, admins, configured):
    seqs = old_events(acme, 4)
    done = delivery_of(acme, seqs[1], "delivered", admins[0])
    purge = purged(acme, admins)
    assert purge.status == PurgeStatus.EXECUTED
    assert not WebhookDelivery.objects.filter(pk=done.pk).exists()


def test_a_pending_delivery_of_an_event_to_purge_holds_the_purge_back(acme, admins, configured):
    seqs = old_events(acme, 4)
    pending = delivery_of(acme, seqs[1], "pending", admins[0])
    refused("audit.purge_deliveries_pending", lambda: purged(acme, admins))
    assert seqs_of(acme)[0] == 1
    purge = AuditPurge.objects.get()
    assert purge.status == PurgeStatus.SIGNED  # finished once the delivery is done
    WebhookDelivery.objects.filter(pk=pending.pk).update(status="dead")
    done = purge_execute(actor=admins[1], tenant=acme, purge_id=purge.pk)
    assert done.status == PurgeStatus.EXECUTED and seqs_of(acme)[0] == purge.through_seq + 1

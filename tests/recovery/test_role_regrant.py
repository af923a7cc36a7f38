"""R-19: "standing privileged roles stay suspended until a separate, approved re-grant
(time-boxed)". A `privileged_role_restore` case grants the roles back for the length it asked
for at opening (within the policy's `role_regrant_max_seconds`); when the time box ends, the
expiry sweep removes them again through the connector and the account is suspended again.

The identity provider is the Graph fake (the tenant's Entra ID connector) unless a test says
otherwise: what is asserted is the fake's role assignments and the requests it received, the
`RoleSuspension` rows, the case's pending steps and the audit trail. Every case goes through the
real workflow (evidence by its verifiers, two officers' approvals with passkey step-ups, an
executor who is none of them, with a passkey of their own).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.models import CaseExecution, RecoveryCase, RoleSuspension
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.containment import containment_step_record
from recovery.cases.services.execution import case_close
from recovery.cases.services.roles import regrant_box, roles_regrant_expire_sweep
from recovery.models import ProtectedAccount
from recovery.tasks import roles_regrant_expire_sweep_task
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import Tenant
from tests.fakes.graph import FakeGraph, graph_error

from ..api.conftest import api, staff_api_client
from ..conftest import signed_in_client
from ..factories import execute, notices_sent, staff, step_up
from .casework import approved, signal
from .test_role_suspension import (
    DIRECTORY_READERS,
    GLOBAL_ADMIN,
    ROLE_ASSIGNMENTS,
    USER_ADMIN,
    entra_at,
    held,
    subject,
)

pytestmark = pytest.mark.django_db

HOUR, DAY = 3600, 86_400


@pytest.fixture(autouse=True)
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_role_definition(DIRECTORY_READERS, "Directory Readers")
        yield fake


@pytest.fixture
def entra(acme: Tenant, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    return entra_at(acme, graph, monkeypatch)


def opened(account: ProtectedAccount, case_type: str, **extra: Any) -> RecoveryCase:
    opener = staff(Role.SECURITY_OFFICER, tenant=account.tenant)
    return case_open(actor=opener, account=account, case_type=case_type, channel="phone", **extra)


def ready(case: RecoveryCase) -> RecoveryCase:
    """`case` brought to ready: verified evidence, two officers' approvals (T2), the
    cooling-off over, the owner's notices sent."""
    tenant = case.tenant
    opener = case.opened_by
    signal(case, opener, "S2")
    signal(case, opener, "S3")
    case = case_submit(actor=opener, case=case)
    approver_role = Role.SECURITY_OFFICER if case.tier == "T2" else Role.SUPERVISOR
    for _ in range(2):
        if case.status == "pending_approval":
            case = approved(case, staff(approver_role, tenant=tenant))
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case = case_release_cooled(case=case)
    assert case.status == "ready", case.status
    assert set(notices_sent(tenant)) <= {"sent"}
    return case


def executed(case: RecoveryCase) -> RecoveryCase:
    return execute(ready(case), staff(Role.SECURITY_OFFICER, tenant=case.tenant))


def suspended(account: ProtectedAccount) -> RecoveryCase:
    """A T2 MFA recovery of `account`, executed: its standing roles are suspended."""
    return executed(opened(account, "mfa_reset"))


def restored(account: ProtectedAccount, **extra: Any) -> RecoveryCase:
    return executed(opened(account, "privileged_role_restore", **extra))


def box_over(restore: RecoveryCase) -> RoleSuspension:
    """Move the restore's time box into the past (the database's clock decides the sweep)."""
    RoleSuspension.objects.filter(restore_case=restore).update(
        regrant_until=timezone.now() - timedelta(seconds=1)
    )
    return RoleSuspension.objects.get(restore_case=restore)


def events(tenant: Tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        found = found.filter(target_id=str(case.pk))
    return list(found.order_by("seq"))


def pending(case: RecoveryCase) -> list[dict[str, Any]]:
    execution = CaseExecution.objects.get(case=case)
    return [step for step in execution.containment_steps if step["state"] == "pending"]


def active(account: ProtectedAccount) -> RoleSuspension | None:
    return RoleSuspension.objects.filter(account=account, restored_at__isnull=True).first()


# --- the length, asked at opening ---------------------------------------------------------------


def test_a_restore_grants_the_roles_back_until_the_time_box_it_asked_for(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN)
    suspended(account)
    restore = opened(account, "privileged_role_restore", regrant_seconds=4 * HOUR)
    assert restore.regrant_seconds == 4 * HOUR
    [opening] = events(acme, "case.opened", restore)
    assert opening.data["regrant_seconds"] == 4 * HOUR
    restore = executed(restore)
    assert held(entra, user_id) == sorted([GLOBAL_ADMIN, USER_ADMIN])

    suspension = RoleSuspension.objects.get(restore_case=restore)
    execution = CaseExecution.objects.get(case=restore)
    assert abs(suspension.regrant_until - (execution.executed_at + timedelta(hours=4))) < timedelta(
        seconds=5
    )
    [granted] = events(acme, "roles.restored", restore)
    recorded = datetime.fromisoformat(granted.data["regrant_until"])
    assert abs(recorded - suspension.regrant_until) < timedelta(milliseconds=1)


def test_a_restore_that_names_no_length_gets_the_policys_maximum(acme, entra):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    restore = opened(account, "privileged_role_restore")
    assert restore.regrant_seconds == 7 * DAY  # the platform default's role_regrant_max_seconds
    restore = executed(restore)
    until = RoleSuspension.objects.get(restore_case=restore).regrant_until
    assert timedelta(days=7) - timedelta(minutes=1) < until - timezone.now() <= timedelta(days=7)


def test_a_length_beyond_the_policy_or_under_an_hour_or_on_another_case_type_is_refused(
    acme, entra
):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    before = RecoveryCase.objects.filter(account=account).count()
    with pytest.raises(PolicyDenied) as above:
        opened(account, "privileged_role_restore", regrant_seconds=7 * DAY + HOUR)
    assert above.value.code == "roles.regrant_above_policy"
    assert "168 hours" in above.value.message
    with pytest.raises(InvalidInput) as short:
        opened(account, "privileged_role_restore", regrant_seconds=HOUR - 1)
    assert short.value.code == "roles.regrant_length_invalid"
    assert short.value.field_errors == {"regrant_hours": ["At least 1 hour."]}
    with pytest.raises(InvalidInput) as elsewhere:
        opened(account, "unlock", regrant_seconds=2 * HOUR)
    assert elsewhere.value.code == "roles.regrant_only_for_restore"
    assert RecoveryCase.objects.filter(account=account).count() == before


def test_the_database_refuses_a_restore_without_a_time_box(acme, entra):
    from django.db import IntegrityError

    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    restore = opened(account, "privileged_role_restore")
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleSuspension.objects.filter(account=account).update(
            restored_at=timezone.now(), restore_case=restore
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        RecoveryCase.objects.filter(pk=suspended(subject(acme, entra)[0]).pk).update(
            regrant_seconds=4 * HOUR
        )


def test_the_policy_bounds_the_maximum_at_90_days_and_a_tightening_shortens_the_box(acme, entra):
    from recovery.policy.errors import PolicyInvalid
    from recovery.policy.rules import DEFAULT_POLICY_FILE
    from recovery.policy.validation import validate

    from .test_delegation import _activate

    text = DEFAULT_POLICY_FILE.read_text()
    [line] = [row for row in text.splitlines(True) if "role_regrant_max_seconds" in row]
    assert line.startswith("  role_regrant_max_seconds: 604800 ")
    with pytest.raises(PolicyInvalid) as refused:
        validate(text.replace(line, f"  role_regrant_max_seconds: {90 * DAY + 1}\n"))
    assert [error.rule for error in refused.value.errors] == ["R-19.role_regrant_max_seconds"]
    assert refused.value.errors[0].path == "$.defaults.role_regrant_max_seconds"
    assert validate(text.replace(line, f"  role_regrant_max_seconds: {90 * DAY}\n"))

    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    restore = opened(account, "privileged_role_restore", regrant_seconds=3 * DAY)
    assert regrant_box(restore) == 3 * DAY
    _activate(acme, text.replace(line, f"  role_regrant_max_seconds: {DAY}\n"))
    assert regrant_box(restore) == DAY  # a tightening since the case opened applies


# --- the console and the API ask for it -----------------------------------------------------------


def test_the_console_form_asks_for_the_hours_and_opens_the_restore_with_them(acme, entra):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    agent = staff(Role.SECURITY_OFFICER, tenant=acme)
    client = signed_in_client(agent)
    page = client.get(f"/t/{acme.slug}/workspace/accounts/{account.pk}/")
    assert page.status_code == 200
    assert "regrant_hours" in page.context["form"].fields
    assert b'name="open-regrant_hours"' in page.content
    answer = client.post(
        f"/t/{acme.slug}/workspace/accounts/{account.pk}/open/",
        {
            "open-case_type": "privileged_role_restore",
            "open-channel": "phone",
            "open-regrant_hours": "6",
        },
    )
    assert answer.status_code == 302, answer.content
    case = RecoveryCase.objects.get(account=account, case_type="privileged_role_restore")
    assert case.regrant_seconds == 6 * HOUR
    too_long = client.post(
        f"/t/{acme.slug}/workspace/accounts/{account.pk}/open/",
        {
            "open-case_type": "privileged_role_restore",
            "open-channel": "phone",
            "open-regrant_hours": str(24 * 8),
        },
    )
    assert too_long.status_code == 400
    assert b"roles.regrant_above_policy" in too_long.content


def test_the_api_takes_regrant_hours(acme, entra):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    client = staff_api_client(staff(Role.SECURITY_OFFICER, tenant=acme))
    answer = client.post(
        api(acme, "cases/"),
        {"account_id": account.pk, "case_type": "privileged_role_restore", "regrant_hours": 12},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert RecoveryCase.objects.get(pk=answer.json()["id"]).regrant_seconds == 12 * HOUR
    answer = client.post(
        api(acme, "cases/"),
        {"account_id": account.pk, "case_type": "privileged_role_restore", "regrant_hours": 200},
        format="json",
    )
    assert answer.status_code == 403, answer.content
    assert answer.json()["code"] == "roles.regrant_above_policy"


# --- the time box ends ----------------------------------------------------------------------------


def test_the_sweep_removes_the_roles_when_the_box_ends_and_the_account_is_suspended_again(
    acme, entra
):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN, DIRECTORY_READERS)
    first = suspended(account)
    restore = restored(account, regrant_seconds=2 * HOUR)
    assert held(entra, user_id) == sorted([DIRECTORY_READERS, GLOBAL_ADMIN, USER_ADMIN])
    deletes = len(entra.sent("DELETE", ROLE_ASSIGNMENTS))

    assert roles_regrant_expire_sweep() == 0  # not yet: nothing asked of the provider
    assert len(entra.sent("DELETE", ROLE_ASSIGNMENTS)) == deletes
    with pytest.raises(PolicyDenied) as open_still:
        case_close(actor=staff(Role.SECURITY_OFFICER, tenant=acme), case=restore, reason="x")
    assert open_still.value.code == "case.regrant_active"

    ended = box_over(restore)
    assert roles_regrant_expire_sweep() == 1
    assert held(entra, user_id) == [DIRECTORY_READERS]
    assert len(entra.sent("DELETE", ROLE_ASSIGNMENTS)) == deletes + 2

    ended.refresh_from_db()
    assert ended.regrant_ended_at is not None and ended.regrant_lease_until is None
    again = active(account)
    assert again is not None and again.follows_id == ended.pk and again.case_id == first.pk
    assert sorted(r["role_id"] for r in again.snapshot["roles"]) == [GLOBAL_ADMIN, USER_ADMIN]
    [expired] = events(acme, "roles.regrant_expired", restore)
    assert expired.data["ok"] is True and expired.data["by"] == "connector"
    assert expired.data["suspended_again"] == again.pk and len(expired.data["detail"]["done"]) == 2
    assert expired.actor_type == "system"

    # Twice changes nothing: the second sweep finds nothing due.
    assert roles_regrant_expire_sweep() == 0
    assert len(entra.sent("DELETE", ROLE_ASSIGNMENTS)) == deletes + 2
    assert len(events(acme, "roles.regrant_expired")) == 1
    # The restore case may close now; only another restore case grants the roles back.
    closer = staff(Role.SECURITY_OFFICER, tenant=acme)
    assert case_close(actor=closer, case=restore, reason="done").status == "closed"
    second = restored(account, regrant_seconds=HOUR)
    assert held(entra, user_id) == sorted([DIRECTORY_READERS, GLOBAL_ADMIN, USER_ADMIN])
    assert RoleSuspension.objects.get(restore_case=second).pk == again.pk
    assert verify_chain(acme.pk, acme.slug).intact


def test_a_removal_that_fails_stays_due_and_the_next_sweep_finishes_it(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN)
    suspended(account)
    restore = restored(account, regrant_seconds=HOUR)
    box_over(restore)
    entra.fail_next(  # Graph refuses one of the two removals
        "DELETE", ROLE_ASSIGNMENTS, 403, graph_error("Authorization_RequestDenied", "No."), times=1
    )
    assert roles_regrant_expire_sweep() == 0
    assert len(held(entra, user_id)) == 1
    row = RoleSuspension.objects.get(restore_case=restore)
    assert row.regrant_ended_at is None and row.regrant_lease_until is None  # still due
    assert active(account) is None  # still granted: no restore case can open
    [failed] = events(acme, "roles.regrant_expiry_failed", restore)
    assert failed.data["code"].startswith("entra.") and len(failed.data["detail"]["failed"]) == 1
    assert events(acme, "roles.regrant_expired") == []

    assert roles_regrant_expire_sweep() == 1  # the next sweep removes what is left
    assert held(entra, user_id) == []
    again = active(account)
    # Both roles listed for the next restore, though only one was left to remove.
    assert sorted(r["role_id"] for r in again.snapshot["roles"]) == [GLOBAL_ADMIN, USER_ADMIN]


def test_a_connector_that_cannot_remove_roles_leaves_a_tracked_step_and_suspends_again(acme):
    """No connector configured: the manual connector. The suspension, the restore and the
    removal at the end of the box are a person's, each a pending step on its case."""
    account, _ = subject(acme, None)
    suspended(account)
    restore = restored(account, regrant_seconds=HOUR)
    [restore_step] = pending(restore)
    box_over(restore)
    assert roles_regrant_expire_sweep() == 1
    again = active(account)
    assert again is not None and again.connector == "manual"
    steps = {step["operation"]: step for step in pending(restore)}
    assert set(steps) == {"roles_restore", "roles_regrant_expire"}
    assert (
        f"re-grant of case {restore.pk} has ended" in steps["roles_regrant_expire"]["manual_step"]
    )
    [expired] = events(acme, "roles.regrant_expired", restore)
    assert expired.data["by"] == "person" and expired.data["ok"] is False
    assert expired.data["manual_step"] == steps["roles_regrant_expire"]["manual_step"]

    closer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        case_close(actor=closer, case=restore, reason="done")
    assert refused.value.code == "case.containment_pending"
    for step in (restore_step, steps["roles_regrant_expire"]):
        containment_step_record(
            actor=closer,
            case=restore,
            step=step["id"],
            step_up=step_up(closer, case=restore, action="execute"),
        )
    assert case_close(actor=closer, case=restore, reason="done").status == "closed"
    assert roles_regrant_expire_sweep() == 0


def test_a_restore_case_approved_before_the_account_was_suspended_again_is_refused(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    early = ready(opened(account, "privileged_role_restore", regrant_seconds=HOUR))
    restore = restored(account, regrant_seconds=HOUR)
    box_over(restore)
    assert roles_regrant_expire_sweep() == 1
    assert held(entra, user_id) == []
    posts = len(entra.sent("POST", ROLE_ASSIGNMENTS))
    with pytest.raises(PolicyDenied) as refused:
        execute(early, staff(Role.SECURITY_OFFICER, tenant=acme))
    assert refused.value.code == "roles.restore_case_stale"
    assert len(entra.sent("POST", ROLE_ASSIGNMENTS)) == posts and held(entra, user_id) == []
    assert active(account) is not None


def test_a_t2_recovery_during_the_regrant_keeps_one_active_suspension(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    first = suspended(account)
    restore = restored(account, regrant_seconds=HOUR)
    RecoveryCase.objects.filter(pk=first.pk).update(status="closed", ended_at=timezone.now())
    entra.add_role_assignment(user_id, USER_ADMIN)  # granted at Microsoft meanwhile
    later = executed(opened(account, "temporary_access"))  # suspends both again, a new row
    made = active(account)
    assert made is not None and made.case_id == later.pk
    box_over(restore)
    assert roles_regrant_expire_sweep() == 1
    [still] = RoleSuspension.objects.filter(account=account, restored_at__isnull=True)
    assert still.pk == made.pk
    assert sorted(r["role_id"] for r in still.snapshot["roles"]) == [GLOBAL_ADMIN, USER_ADMIN]


# --- two sweeps at once ------------------------------------------------------------------------


def test_a_row_another_sweep_holds_or_has_leased_is_skipped(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    restore = restored(account, regrant_seconds=HOUR)
    row = box_over(restore)
    RoleSuspension.objects.filter(pk=row.pk).update(
        regrant_lease_until=timezone.now() + timedelta(minutes=5)
    )
    deletes = len(entra.sent("DELETE", ROLE_ASSIGNMENTS))
    assert roles_regrant_expire_sweep() == 0  # leased by a sweep still working on it
    assert len(entra.sent("DELETE", ROLE_ASSIGNMENTS)) == deletes
    RoleSuspension.objects.filter(pk=row.pk).update(
        regrant_lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert roles_regrant_expire_sweep() == 1  # a lease that lapsed frees it
    assert held(entra, user_id) == []


def test_the_sweep_runs_from_beat_as_a_task(acme, entra):
    schedule = django_settings.CELERY_BEAT_SCHEDULE["role-regrant-expire-sweep"]
    assert schedule["task"] == "recovery.tasks.roles_regrant_expire_sweep_task"
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    suspended(account)
    box_over(restored(account, regrant_seconds=HOUR))
    assert roles_regrant_expire_sweep_task.apply().get() == 1
    assert held(entra, user_id) == []


def test_a_repudiated_restore_ends_its_regrant_and_the_sweep_takes_the_roles_back(
    acme, entra, django_capture_on_commit_callbacks
):
    """The owner says "this wasn't me" about the restore: the roles it gave back are due at
    once (R-41), the next sweep removes them at the provider, and nothing else of the
    account's sign-in is touched by the revert (a restore never changed it)."""
    from recovery.cases.services.repudiation import case_repudiate
    from recovery.notifications.models import OwnerNotice

    from ..factories import notices_planned

    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN, DIRECTORY_READERS)
    suspended(account)
    restore = restored(account, regrant_seconds=48 * HOUR)
    methods_deleted = len(entra.sent("DELETE", r"/authentication/"))
    notices_planned(acme)
    with django_capture_on_commit_callbacks(execute=True):
        case_repudiate(notice=OwnerNotice.objects.filter(case=restore).first())

    restore.refresh_from_db()
    assert restore.status == "reverted"
    [repudiated] = events(acme, "case.repudiated", restore)
    assert repudiated.data["regrant_ended"] is True
    assert roles_regrant_expire_sweep() == 1
    assert held(entra, user_id) == [DIRECTORY_READERS]
    assert active(account) is not None  # suspended again: only another restore gives them back
    assert len(entra.sent("DELETE", r"/authentication/")) == methods_deleted

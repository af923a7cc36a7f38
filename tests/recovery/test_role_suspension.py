"""R-19: a T2 recovery suspends the subject's standing privileged roles; only a separate,
approved `privileged_role_restore` case grants them back (recovery/cases/services/roles.py).

The identity provider is the Graph fake (the tenant's Entra ID connector) unless a test says
otherwise: what is asserted is the fake's role assignments and the requests it received, the
`RoleSuspension` rows, the case's pending steps and the audit trail. Every case goes through
the real workflow: evidence by its verifiers, two officers' approvals with passkey step-ups,
an executor who is none of them, with a passkey step-up of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.artifacts.models import RecoveryArtifact
from recovery.cases.models import CaseExecution, RecoveryCase, RoleSuspension, WindowChange
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.containment import containment_step_record
from recovery.cases.services.execution import case_close
from recovery.cases.services.window import window_poll
from recovery.connectors.entra import validate_entra_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.validation import _Errors
from recovery.models import ProtectedAccount
from tenants.choices import Role
from tenants.exceptions import DomainError, PolicyDenied
from tenants.models import Tenant, User
from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.graph import FakeGraph, graph_error

from ..factories import execute, make_account_with, notices_sent, staff, step_up, unique
from .casework import approved, contact, signal

pytestmark = pytest.mark.django_db

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"  # not a privileged role
ROLE_ASSIGNMENTS = r"^/v1\.0/roleManagement/directory/roleAssignments"
HELPDESK = {"groups": ["helpdesk"]}  # a T2 account
FINANCE = {"groups": ["finance"]}  # a T1 account


# --- fixtures and helpers ---------------------------------------------------------------------


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
    """`acme`'s active connector is Entra ID at the Graph fake."""
    return entra_at(acme, graph, monkeypatch)


def entra_at(acme: Tenant, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    variable = f"VS_TEST_ROLES_SECRET_{acme.pk}"
    monkeypatch.setenv(variable, graph.client_secret)
    errors = _Errors()
    settings = validate_entra_settings(
        {
            "tenant_id": graph.tenant_id,
            "client_id": graph.client_id,
            "client_secret_env": variable,
            "authority_host": graph.url,
            "graph_url": graph.url,
            "ca_bundle": graph.ca_path,
        },
        errors,
    )
    assert errors.fields == {}
    ConnectorConfig.objects.create(
        tenant=acme,
        kind="entra",
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=acme),
    )
    return graph


def subject(tenant: Tenant, graph: FakeGraph | None, *roles: str, **attributes: Any):
    """An account (T2 by default) and, at the fake, its user holding `roles`."""
    external_id = unique("ext")
    account = make_account_with(tenant, external_id=external_id, **(attributes or HELPDESK))
    contact(account)  # a mobile on record for years: the pass goes there
    user_id = ""
    if graph is not None:
        user_id = graph.add_user(account.username, "Ada Lovelace")
        for role in roles:
            graph.add_role_assignment(user_id, role)
    return account, user_id


def ready(account: ProtectedAccount, case_type: str, opener: User | None = None) -> RecoveryCase:
    """A case on `account` brought to ready: verified evidence, approvals (two officers at T2,
    a supervisor at T1), cooling-off over, the owner's notices sent."""
    tenant = account.tenant
    opener = opener or staff(Role.SECURITY_OFFICER, tenant=tenant)
    case = case_open(actor=opener, account=account, case_type=case_type, channel="phone")
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


def executed(account: ProtectedAccount, case_type: str = "mfa_reset") -> RecoveryCase:
    case = ready(account, case_type)
    return execute(case, staff(Role.SECURITY_OFFICER, tenant=account.tenant))


def held(graph: FakeGraph, user_id: str) -> list[str]:
    return sorted(
        a["roleDefinitionId"]
        for a in graph.role_assignments.values()
        if a["principalId"] == user_id
    )


def events(tenant: Tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        found = found.filter(target_id=str(case.pk))
    return list(found.order_by("seq"))


def pending(case: RecoveryCase) -> list[dict[str, Any]]:
    execution = CaseExecution.objects.get(case=case)
    return [step for step in execution.containment_steps if step["state"] == "pending"]


# --- suspension at a T2 execution --------------------------------------------------------------


def test_a_t2_recovery_removes_the_standing_privileged_roles_at_the_provider(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN, DIRECTORY_READERS)
    case = executed(account)
    assert case.status == "executed"
    assert held(entra, user_id) == [DIRECTORY_READERS]  # only the privileged ones went
    assert len(entra.sent("DELETE", ROLE_ASSIGNMENTS)) == 2

    suspension = RoleSuspension.objects.get(account=account)
    assert suspension.case_id == case.pk and suspension.restored_at is None
    assert suspension.connector == "entra"
    assert suspension.snapshot["user_id"] == user_id
    assert sorted(r["role_id"] for r in suspension.snapshot["roles"]) == [GLOBAL_ADMIN, USER_ADMIN]
    [suspended] = events(acme, "roles.suspended", case)
    assert suspended.data["ok"] is True and suspended.data["suspension"] == suspension.pk
    assert len(suspended.data["detail"]["done"]) == 2  # the connector's own answer
    assert pending(case) == []
    assert verify_chain(acme.pk, acme.slug).intact


def test_a_t1_recovery_leaves_the_roles_alone(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, **FINANCE)
    case = executed(account)
    assert case.tier == "T1"
    assert held(entra, user_id) == [GLOBAL_ADMIN]
    assert entra.sent("DELETE", ROLE_ASSIGNMENTS) == []
    assert not RoleSuspension.objects.filter(account=account).exists()
    assert events(acme, "roles.suspended") == []


def test_a_t2_subject_without_privileged_roles_gets_no_suspension(acme, entra):
    account, user_id = subject(acme, entra, DIRECTORY_READERS)
    case = executed(account)
    assert held(entra, user_id) == [DIRECTORY_READERS]
    assert not RoleSuspension.objects.filter(account=account).exists()
    [suspended] = events(acme, "roles.suspended", case)
    assert suspended.data["roles"] == [] and suspended.data["suspension"] is None
    with pytest.raises(PolicyDenied) as refused:
        case_open(
            actor=staff(Role.SECURITY_OFFICER, tenant=acme),
            account=account,
            case_type="privileged_role_restore",
            channel="phone",
        )
    assert refused.value.code == "roles.no_active_suspension"


def test_a_removal_failing_mid_sequence_is_a_pending_step_that_blocks_closing(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN)
    entra.fail_next(  # Graph's refusal of one removal (not retried)
        "DELETE", ROLE_ASSIGNMENTS, 403, graph_error("Authorization_RequestDenied", "No."), times=1
    )
    case = executed(account)
    assert case.status == "executed"  # the recovery stands; the role left is a person's step
    assert len(held(entra, user_id)) == 1
    suspension = RoleSuspension.objects.get(account=account)
    assert len(suspension.snapshot["roles"]) == 2  # both, for the restore
    assert events(acme, "roles.suspended", case) == []
    [failed] = [
        e
        for e in events(acme, "containment.step_failed", case)
        if e.data["operation"] == "roles_suspend"
    ]
    assert failed.data["code"].startswith("entra.")
    assert len(failed.data["detail"]["failed"]) == 1 and len(failed.data["detail"]["done"]) == 1
    [step] = pending(case)
    assert step["operation"] == "roles_suspend" and "Global Administrator" in step["manual_step"]

    closer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        case_close(actor=closer, case=case, reason="done")
    assert refused.value.code == "case.containment_pending"
    containment_step_record(
        actor=closer,
        case=case,
        step=step["id"],
        step_up=step_up(closer, case=case, action="execute"),
    )
    assert pending(case) == []
    assert case_close(actor=closer, case=case, reason="done").status == "closed"


class SecondRoleReadFails(FakeGraph):
    """Graph answering 503 to every role listing after the first (the execution's snapshot
    reads the roles; the suspension's own read then fails, retries included)."""

    def __init__(self) -> None:
        super().__init__()
        self.role_reads = 0

    def answer(self, request: FakeRequest) -> FakeResponse | None:
        if request.method == "GET" and request.path.endswith("/roleAssignments"):
            self.role_reads += 1
            if self.role_reads > 1:
                return FakeResponse(503, graph_error("serviceUnavailable", "Try later."))
        return super().answer(request)


def test_a_suspension_that_could_not_read_the_roles_keeps_the_executions_snapshot(
    acme, monkeypatch
):
    with SecondRoleReadFails() as graph:
        entra_at(acme, graph, monkeypatch)
        account, user_id = subject(acme, graph, GLOBAL_ADMIN)
        case = executed(account)
        assert case.status == "executed"
        assert held(graph, user_id) == [GLOBAL_ADMIN]  # nothing removed: a person's step
        suspension = RoleSuspension.objects.get(account=account)
        assert [r["role_id"] for r in suspension.snapshot["roles"]] == [GLOBAL_ADMIN]
        [step] = pending(case)
        assert (
            step["operation"] == "roles_suspend" and "Global Administrator" in step["manual_step"]
        )
        assert step["code"] == "entra.unavailable"


def test_a_connector_that_cannot_suspend_roles_leaves_a_tracked_manual_step(acme):
    """No connector configured: the manual connector. The execution itself is a person's, and
    so is the suspension; the restore case is possible once it is recorded."""
    account, _ = subject(acme, None)
    case = executed(account)
    [step] = [s for s in pending(case) if s["operation"] == "roles_suspend"]
    assert step["code"] == "connector.capability_missing"
    assert "remove every standing admin role" in step["manual_step"]
    suspension = RoleSuspension.objects.get(account=account)
    assert suspension.snapshot is None and suspension.connector == "manual"

    restore = ready(account, "privileged_role_restore")
    restore = execute(restore, staff(Role.SECURITY_OFFICER, tenant=acme))
    assert restore.status == "executed"
    [manual] = pending(restore)
    assert manual["operation"] == "roles_restore"
    assert f"case {case.pk}" in manual["manual_step"]
    suspension.refresh_from_db()
    assert suspension.restore_case_id == restore.pk and suspension.restored_at is not None
    [restored] = events(acme, "roles.restored", restore)
    assert restored.data["ok"] is False and restored.data["manual_step"] == manual["manual_step"]


# --- the restore case --------------------------------------------------------------------------


def test_a_restore_case_opens_only_on_an_account_with_an_active_suspension(acme, entra):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    with pytest.raises(PolicyDenied) as refused:
        case_open(
            actor=staff(Role.SECURITY_OFFICER, tenant=acme),
            account=account,
            case_type="privileged_role_restore",
            channel="phone",
        )
    assert refused.value.code == "roles.no_active_suspension"
    assert "no suspended privileged roles" in refused.value.message
    assert not RecoveryCase.objects.filter(account=account).exists()


def test_an_approved_restore_case_grants_the_roles_back_and_closes_the_suspension(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN, DIRECTORY_READERS)
    executed(account)
    assert held(entra, user_id) == [DIRECTORY_READERS]
    artifacts_before = RecoveryArtifact.objects.filter(case__account=account).count()

    restore = ready(account, "privileged_role_restore")
    assert restore.tier == "T2"  # approved at the account's tier: two officers
    executor = staff(Role.SECURITY_OFFICER, tenant=acme)
    restore = execute(restore, executor)
    assert restore.status == "executed"
    assert held(entra, user_id) == sorted([DIRECTORY_READERS, GLOBAL_ADMIN, USER_ADMIN])
    assert len(entra.sent("POST", ROLE_ASSIGNMENTS)) == 2
    # no credential changes hands: no artifact, no pass
    assert RecoveryArtifact.objects.filter(case__account=account).count() == artifacts_before
    assert CaseExecution.objects.get(case=restore).step_up["assertion"]["inputs"]["action"] == (
        "execute"
    )

    suspension = RoleSuspension.objects.get(account=account)
    assert suspension.restore_case_id == restore.pk and suspension.restored_at is not None
    [restored] = events(acme, "roles.restored", restore)
    assert restored.data["ok"] is True and restored.data["suspension"] == suspension.pk
    assert len(restored.data["detail"]["done"]) == 2
    assert pending(restore) == []
    # the suspension is closed: no second restore
    with pytest.raises(PolicyDenied) as again:
        case_open(
            actor=staff(Role.SECURITY_OFFICER, tenant=acme),
            account=account,
            case_type="privileged_role_restore",
            channel="phone",
        )
    assert again.value.code == "roles.no_active_suspension"
    assert verify_chain(acme.pk, acme.slug).intact


def test_the_restore_follows_the_executor_rules(acme, entra):
    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    executed(account)
    opener = staff(Role.SECURITY_OFFICER, tenant=acme)
    restore = ready(account, "privileged_role_restore", opener)
    with pytest.raises(PolicyDenied) as refused:
        execute(restore, opener)  # the opener of a T2 case does not execute it
    assert refused.value.code == "sod.executor_is_opener"
    assert entra.sent("POST", ROLE_ASSIGNMENTS) == []
    assert RoleSuspension.objects.get(account=account).restored_at is None


def test_roles_are_never_restored_on_a_frozen_account(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    executed(account)
    restore = ready(account, "privileged_role_restore")
    ProtectedAccount.objects.filter(pk=account.pk).update(frozen_at=timezone.now())
    with pytest.raises(PolicyDenied) as refused:
        execute(restore, staff(Role.SECURITY_OFFICER, tenant=acme))
    assert refused.value.code == "account.frozen"
    assert held(entra, user_id) == []
    assert entra.sent("POST", ROLE_ASSIGNMENTS) == []
    assert RoleSuspension.objects.get(account=account).restored_at is None


def test_a_restore_the_provider_refuses_leaves_the_case_ready_and_a_retry_grants_once(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN)
    executed(account)
    restore = ready(account, "privileged_role_restore")
    executor = staff(Role.SECURITY_OFFICER, tenant=acme)
    entra.fail_next(  # both grants refused
        "POST", ROLE_ASSIGNMENTS, 403, graph_error("Authorization_RequestDenied", "No."), times=2
    )
    with pytest.raises(DomainError) as failed:
        execute(restore, executor)
    assert failed.value.code == "roles.restore_failed"
    restore.refresh_from_db()
    assert restore.status == "ready" and held(entra, user_id) == []
    assert RoleSuspension.objects.get(account=account).restored_at is None
    assert events(acme, "case.execution_failed", restore)[-1].data["code"] == (
        "roles.restore_failed"
    )

    # The same case again: the restore converges, nothing is granted twice.
    restore = execute(restore, executor)
    assert restore.status == "executed"
    assert held(entra, user_id) == sorted([GLOBAL_ADMIN, USER_ADMIN])


def test_a_restore_failing_mid_sequence_leaves_the_rest_to_a_person(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN, USER_ADMIN)
    executed(account)
    restore = ready(account, "privileged_role_restore")
    entra.fail_next(
        "POST", ROLE_ASSIGNMENTS, 403, graph_error("Authorization_RequestDenied", "No."), times=1
    )
    restore = execute(restore, staff(Role.SECURITY_OFFICER, tenant=acme))
    assert restore.status == "executed"
    assert len(held(entra, user_id)) == 1
    [step] = pending(restore)
    assert step["operation"] == "roles_restore" and "restored" in step["manual_step"]
    closer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        case_close(actor=closer, case=restore, reason="done")
    assert refused.value.code == "case.containment_pending"


def test_a_second_t2_recovery_adds_to_the_active_suspension(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    first = executed(account)
    entra.add_role_assignment(user_id, USER_ADMIN)  # granted at Microsoft meanwhile
    RecoveryCase.objects.filter(pk=first.pk).update(status="closed", ended_at=timezone.now())
    executed(account, "temporary_access")
    [suspension] = RoleSuspension.objects.filter(account=account)
    assert suspension.case_id == first.pk
    assert sorted(r["role_id"] for r in suspension.snapshot["roles"]) == [GLOBAL_ADMIN, USER_ADMIN]
    assert held(entra, user_id) == []


# --- the re-establishment window (R-35) --------------------------------------------------------


def test_the_window_leaves_the_restore_cases_grant_alone_but_undoes_any_other(acme, entra):
    account, user_id = subject(acme, entra, GLOBAL_ADMIN)
    executed(account)
    restore = execute(
        ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=acme)
    )
    assert ProtectedAccount.objects.get(pk=account.pk).restricted_until > timezone.now()
    target = {"id": user_id, "type": "User", "userPrincipalName": account.username}

    def granted(role_id: str, name: str) -> str:
        modified = [
            {"displayName": "Role.TemplateId", "newValue": f'"{role_id}"'},
            {"displayName": "Role.DisplayName", "newValue": f'"{name}"'},
        ]
        return entra.add_audit(
            "Add member to role",
            "RoleManagement",
            [{**target, "modifiedProperties": modified}],
            at=timezone.now(),
        )

    granted(GLOBAL_ADMIN, "Global Administrator")  # the restore case's own grant
    window_poll()
    assert WindowChange.objects.filter(account=account).count() == 0
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is None
    assert held(entra, user_id) == [GLOBAL_ADMIN]
    assert restore.status == "executed"

    entra.add_role_assignment(user_id, USER_ADMIN)  # nobody approved this one
    granted(USER_ADMIN, "User Administrator")
    window_poll()
    [change] = WindowChange.objects.filter(account=account)
    assert change.outcome == "undone"
    assert held(entra, user_id) == [GLOBAL_ADMIN]
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is not None


def test_a_grant_long_after_the_restore_is_not_covered_by_it(acme, entra):
    from recovery.cases.services.roles import role_grant_restored
    from recovery.connectors.cloud import ChangeKind, ReportedChange

    account, _ = subject(acme, entra, GLOBAL_ADMIN)
    executed(account)
    execute(ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=acme))
    restored_at = RoleSuspension.objects.get(account=account).restored_at

    def change(at, **target) -> ReportedChange:
        return ReportedChange("e1", at, ChangeKind.PRIVILEGED_ROLE, "grant", target)

    assert role_grant_restored(account, change(restored_at, role_id=GLOBAL_ADMIN))
    assert not role_grant_restored(
        account, change(restored_at + timedelta(hours=1), role_id=GLOBAL_ADMIN)
    )
    assert not role_grant_restored(account, change(restored_at, role_id=USER_ADMIN))
    assert not role_grant_restored(account, change(restored_at))  # names no role: undone
    # the vendors' other shapes: Google's ROLE_NAME, Okta's privilegeGranted (every one named)
    assert role_grant_restored(account, change(restored_at, ROLE_NAME="Global Administrator"))
    assert role_grant_restored(account, change(restored_at, privilege="global administrator"))
    both = "Global Administrator, User Administrator"
    assert not role_grant_restored(account, change(restored_at, privilege=both))
    other = subject(acme, entra, GLOBAL_ADMIN)[0]  # another account: not its restore
    assert not role_grant_restored(other, change(restored_at, role_id=GLOBAL_ADMIN))


def test_a_pending_role_step_is_shown_in_the_console_and_over_the_api(acme):
    """A manual connector's suspension is a step left to a person: the case page lists it with
    its words and the API's case detail names it, so someone can do it and record it."""
    from django.utils.html import escape

    from tests.api.conftest import api, key_client
    from tests.conftest import signed_in_client

    account, _ = subject(acme, None)
    case = executed(account)
    [step] = [s for s in pending(case) if s["operation"] == "roles_suspend"]
    page = signed_in_client(staff(Role.SECURITY_OFFICER, tenant=acme)).get(
        f"/t/{acme.slug}/cases/{case.pk}/"
    )
    assert page.status_code == 200
    assert f'data-containment-pending="{escape(step["id"])}"' in page.content.decode()
    detail = key_client(acme).get(api(acme, f"cases/{case.pk}/")).json()
    assert [s["id"] for s in detail["containment"]["pending"]] == [step["id"]]

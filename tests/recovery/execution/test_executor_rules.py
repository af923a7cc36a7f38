"""Execution is privileged (issue 13, item 1; R-21, R-23).

Only a person executes a T1/T2 case, with a fresh step-up spent on that execution; the
executor is none of the case's live approvers, its opener (T2), the subject or the subject's
delegates, by account or by person. A database trigger backs the approver and T2-opener rules.
Keys execute T0 cases only, and only with the `cases:execute_t0` scope.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, transaction

from audit.models import AuditEvent
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.execution import case_execute
from tenants.choices import Role, Scope
from tenants.exceptions import PolicyDenied, StepUpFailed
from tenants.models import Membership, Tenant, User

from ... import factories
from ...api.conftest import api, key_client, staff_api_client
from ...factories import make_account_with, make_user, member, staff, step_up, step_up_assertion
from ..casework import approved, contact, signal
from .helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

FINANCE = {"groups": ["finance"]}  # a T1 account
HELPDESK = {"groups": ["helpdesk"]}  # a T2 account: security queue, two officer approvals


def _refusals(case: RecoveryCase) -> list[str]:
    return [
        e.data["code"]
        for e in AuditEvent.objects.filter(
            tenant=case.tenant, action="case.execution_refused", target_id=str(case.pk)
        ).order_by("seq")
    ]


def _ready_t1(tenant: Tenant, agent: User | None = None, approver: User | None = None):
    """A T1 temporary-access case at `ready`, approved by `approver`, its notices sent."""
    agent = agent or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, **FINANCE)
    contact(account)
    case = case_open(actor=agent, account=account, case_type="temporary_access", channel="phone")
    assert case.tier == "T1"
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    case = approved(case_submit(actor=agent, case=case), approver)
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case = case_release_cooled(case=case)
    assert case.status == "ready", case.status
    assert set(factories.notices_sent(case.tenant)) <= {"sent"}  # the workers, meanwhile
    return case


def _ready_t2(tenant: Tenant, opener: User, **attributes) -> RecoveryCase:
    """A T2 case opened and worked by `opener`, approved by two other officers."""
    account = make_account_with(tenant, **(attributes or HELPDESK))
    contact(account)
    case = case_open(actor=opener, account=account, case_type="temporary_access", channel="phone")
    assert case.tier == "T2"
    signal(case, opener, "S2")
    signal(case, opener, "S3")
    case = case_submit(actor=opener, case=case)
    for _ in range(2):
        if case.status == "pending_approval":
            case = approved(case, staff(Role.SECURITY_OFFICER, tenant=tenant))
    RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
    case = case_release_cooled(case=case)
    assert case.status == "ready", case.status
    assert set(factories.notices_sent(case.tenant)) <= {"sent"}  # the workers, meanwhile
    return case


def _other_account_of(user: User, role: str, tenant: Tenant) -> User:
    twin = make_user(person_id=str(user.person_id))
    member(twin, role, tenant=tenant)
    return twin


# --- who may execute ------------------------------------------------------------------------


def test_the_approver_cannot_execute_the_case_they_approved(acme):
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, approver=supervisor)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(
            actor=supervisor, case=case, step_up=step_up(supervisor, case=case, action="execute")
        )
    assert refused.value.code == "sod.executor_is_approver"
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"
    assert _refusals(case) == ["sod.executor_is_approver"]
    assert not CaseExecution.objects.filter(case=case).exists()


def test_another_account_of_the_approver_cannot_execute(acme):
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, approver=supervisor)
    twin = _other_account_of(supervisor, Role.AGENT, acme)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=twin, case=case, step_up=step_up(twin, case=case, action="execute"))
    assert refused.value.code == "sod.executor_is_approver"


def test_the_opener_cannot_execute_a_t2_case(acme):
    opener = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = _ready_t2(acme, opener)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=opener, case=case, step_up=step_up(opener, case=case, action="execute"))
    assert refused.value.code == "sod.executor_is_opener"
    twin = _other_account_of(opener, Role.SECURITY_OFFICER, acme)
    with pytest.raises(PolicyDenied) as again:
        case_execute(actor=twin, case=case, step_up=step_up(twin, case=case, action="execute"))
    assert again.value.code == "sod.executor_is_opener"
    assert _refusals(case) == ["sod.executor_is_opener", "sod.executor_is_opener"]

    third = staff(Role.SECURITY_OFFICER, tenant=acme)
    owner_email(case)
    done = case_execute(actor=third, case=case, step_up=step_up(third, case=case, action="execute"))
    assert done.status == "executed"


def test_the_opener_of_a_t1_case_executes_it_with_a_fresh_step_up(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = _ready_t1(acme, agent)
    done = case_execute(actor=agent, case=case, step_up=step_up(agent, case=case, action="execute"))
    assert done.status == "executed"
    execution = CaseExecution.objects.get(case=case)
    assert execution.executed_by_person == agent.person_id
    executed = AuditEvent.objects.filter(tenant=acme, action="case.executed").last()
    assert executed.data["step_up"]["device_type"] == "passkey"
    assert execution.step_up["assertion"]["inputs"]["action"] == "execute"


def test_the_subject_cannot_execute_their_own_recovery(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    opener = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = _ready_t2(acme, opener, person_id=str(officer.person_id))  # own account: T2
    owner_email(case)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(
            actor=officer, case=case, step_up=step_up(officer, case=case, action="execute")
        )
    assert refused.value.code == "sod.executor_is_subject"
    assert _refusals(case) == ["sod.executor_is_subject"]


def test_a_delegate_of_the_subject_cannot_execute(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = ready_case(acme, case_type="password_reset")
    owner_email(case)
    # the agent's own account acts for the subject (the subject delegates to it)
    make_account_with(acme, person_id=str(agent.person_id), delegations=[case.account.external_id])
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=agent, case=case)
    assert refused.value.code == "sod.executor_is_subject"


def test_t1_execution_needs_a_fresh_step_up_spent_once(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = _ready_t1(acme, agent)
    with pytest.raises(StepUpFailed) as missing:
        case_execute(actor=agent, case=case)
    assert missing.value.code == "stepup.required"
    assert _refusals(case) == ["stepup.required"]
    other = staff(Role.AGENT, tenant=acme)
    with pytest.raises(StepUpFailed) as borrowed:
        case_execute(actor=agent, case=case, step_up=step_up(other, case=case, action="execute"))
    assert borrowed.value.code == "stepup.invalid_proof"
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"


def test_a_step_up_spent_on_an_approval_does_not_execute(acme):
    agent, supervisor = staff(Role.AGENT, tenant=acme), staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, agent)
    proof = step_up(agent, case=case, action="execute")
    case_execute(actor=agent, case=case, step_up=proof)
    second = _ready_t1(acme, agent, approver=supervisor)
    with pytest.raises(StepUpFailed) as reused:
        case_execute(actor=agent, case=second, step_up=proof)
    assert reused.value.code == "stepup.proof_reused"


def test_an_integration_key_cannot_execute_a_t1_case(acme):
    case = _ready_t1(acme)
    principal = factories.api_key(acme).key.principal
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=principal, case=case)
    assert refused.value.code == "execution.human_required"
    assert _refusals(case) == ["execution.human_required"]


def test_a_key_executes_a_t0_case_only_with_the_execute_t0_scope(acme):
    case = ready_case(acme, case_type="password_reset")
    owner_email(case)
    without = [s for s in Scope.values if s != Scope.CASES_EXECUTE_T0]
    principal = factories.api_key(acme, without).key.principal
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=principal, case=case)
    assert refused.value.code == "auth.scope_missing"
    assert _refusals(case) == ["auth.scope_missing"]

    holder = factories.api_key(acme, [Scope.CASES_WRITE, Scope.CASES_EXECUTE_T0]).key.principal
    assert case_execute(actor=holder, case=case).status == "executed"
    assert CaseExecution.objects.get(case=case).executed_by_person == holder.person_id


# --- the database backs the service ---------------------------------------------------------


def _insert(case: RecoveryCase, user: User, person: uuid.UUID) -> None:
    with transaction.atomic():
        CaseExecution.objects.create(
            tenant=case.tenant,
            case=case,
            connector="manual",
            path="-",
            executed_by=user,
            executed_by_person=person,
        )


def test_the_database_refuses_an_execution_by_a_live_approver(acme):
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, approver=supervisor)
    twin = _other_account_of(supervisor, Role.AGENT, acme)
    with pytest.raises(DatabaseError, match="executor_is_approver"):
        _insert(case, twin, supervisor.person_id)
    _insert(case, staff(Role.AGENT, tenant=acme), uuid.uuid4())  # anyone else: accepted


def test_the_database_refuses_an_execution_by_the_opener_of_a_t2_case(acme):
    opener = staff(Role.SECURITY_OFFICER, tenant=acme)
    case = _ready_t2(acme, opener)
    with pytest.raises(DatabaseError, match="executor_is_opener"):
        _insert(case, opener, opener.person_id)


def test_when_the_trigger_refuses_the_connector_change_is_undone(acme, monkeypatch):
    """Were the service check ever skipped, the trigger refuses the row and the change the
    connector already made is reverted before the error leaves."""
    from unittest import mock

    from recovery.cases.services import execution
    from recovery.connectors.base import ExecutionResult, Snapshot

    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, approver=supervisor)
    owner_email(case)
    monkeypatch.setattr(execution, "executor_refusal", lambda case, actor: None)
    connector = mock.Mock()
    snapshot = Snapshot(case.account.external_id, {"before": True})
    connector.execute.return_value = ExecutionResult(True, "fake", "-", snapshot=snapshot)
    with (
        mock.patch("recovery.connectors.connector_for", return_value=connector),
        pytest.raises(DatabaseError, match="executor_is_approver"),
    ):
        case_execute(
            actor=supervisor, case=case, step_up=step_up(supervisor, case=case, action="execute")
        )
    connector.revert.assert_called_once()
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"


# --- the API and the console ----------------------------------------------------------------


def test_the_api_executes_a_t1_case_with_the_executors_passkey(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = _ready_t1(acme, agent)
    client = staff_api_client(agent)
    bare = client.post(api(acme, f"cases/{case.pk}/execute/"), {}, format="json")
    assert bare.status_code == 403 and bare.json()["code"] == "stepup.required"
    answer = step_up_assertion(agent, case=case, action="execute")
    done = client.post(
        api(acme, f"cases/{case.pk}/execute/"), {"step_up_assertion": answer}, format="json"
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "executed"


def test_the_api_refuses_a_key_without_the_execute_t0_scope(acme):
    case = ready_case(acme, case_type="password_reset")
    owner_email(case)
    without = [s for s in Scope.values if s != Scope.CASES_EXECUTE_T0]
    refused = key_client(acme, without).post(api(acme, f"cases/{case.pk}/execute/"))
    assert refused.status_code == 403 and refused.json()["code"] == "auth.scope_missing"
    done = key_client(acme, [Scope.CASES_EXECUTE_T0]).post(api(acme, f"cases/{case.pk}/execute/"))
    assert done.status_code == 200, done.content


def test_the_console_execute_form_takes_the_passkey_answer(acme):
    from ...conftest import signed_in_client

    agent = staff(Role.AGENT, tenant=acme)
    case = _ready_t1(acme, agent)
    client = signed_in_client(agent)
    page = client.get(f"/t/{acme.slug}/cases/{case.pk}/").content.decode()
    assert 'name="execute-step_up_assertion"' in page and "data-passkey-step-up" in page
    bare = client.post(f"/t/{acme.slug}/cases/{case.pk}/execute/", {})
    assert bare.status_code == 400 and "(stepup.required)" in bare.content.decode()
    answer = step_up_assertion(agent, case=case, action="execute")
    client.post(f"/t/{acme.slug}/cases/{case.pk}/execute/", {"execute-step_up_assertion": answer})
    assert RecoveryCase.objects.get(pk=case.pk).status == "executed"


def test_execute_t0_is_granted_only_by_name_and_the_demo_keys_lack_it():
    from tenants.choices import EXPLICIT_GRANT_SCOPES
    from tenants.management.commands.seed_demo import API_KEYS

    assert Scope.CASES_EXECUTE_T0 in EXPLICIT_GRANT_SCOPES
    for _tenant, _kind, scopes in API_KEYS.values():
        assert Scope.CASES_EXECUTE_T0 not in scopes


# --- the migration --------------------------------------------------------------------------


def test_the_migration_backfills_the_executors_person(acme):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    agent = staff(Role.AGENT, tenant=acme)
    case = ready_case(acme, case_type="password_reset")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending checks before ALTER TABLE
    executor = MigrationExecutor(connection)
    executor.migrate([("recovery", "0017_owner_portal")])
    old = MigrationExecutor(connection).loader.project_state(("recovery", "0017_owner_portal"))
    OldExecution = old.apps.get_model("recovery", "CaseExecution")
    OldExecution.objects.create(
        tenant_id=acme.pk, case_id=case.pk, connector="manual", path="-", executed_by_id=agent.pk
    )
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert CaseExecution.objects.get(case=case).executed_by_person == agent.person_id


def test_an_approver_who_lost_the_role_is_caught_again_at_execution(acme):
    """R-62 at execution: a role ended outside the services (no receiver ran) still voids the
    approval here, and the case goes back to approval instead of executing."""
    agent, supervisor = staff(Role.AGENT, tenant=acme), staff(Role.SUPERVISOR, tenant=acme)
    case = _ready_t1(acme, agent, approver=supervisor)
    Membership.objects.filter(user=supervisor, tenant=acme).update(is_active=False)

    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=agent, case=case, step_up=step_up(agent, case=case, action="execute"))

    assert refused.value.code == "approval.approver_lost_role"
    case = RecoveryCase.objects.get(pk=case.pk)
    assert case.status == "pending_approval"
    assert not CaseExecution.objects.filter(case=case).exists()
    assert AuditEvent.objects.filter(action="approval.invalidated", target_id=str(case.pk))

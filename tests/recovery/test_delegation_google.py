"""Mailbox delegation through the Google Workspace connector and the Workspace fake's Gmail
delegates API: the connector's two operations (each safe to repeat, each failure a result),
then a mailbox access case whose execution makes the delegate at Google, and the sweep that
removes it at the expiry, retried after a failure. What is asserted is the fake's state."""

from __future__ import annotations

import json
from types import SimpleNamespace

import googleapiclient.http
import pytest

from recovery.cases.models import CaseExecution
from recovery.connectors.base import CAPABILITY_MISSING, Capability
from recovery.connectors.google_client import SCOPES, GoogleClient
from recovery.connectors.google_workspace import GoogleWorkspaceConnector
from recovery.delegation.services import delegations_expire_sweep
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant
from tests.fakes.google import GMAIL_SHARING, FakeGoogle

from ..connector_helpers import connector_set
from ..factories import execute, staff
from .delegation_helpers import (
    actions,
    delegation_of,
    expire_now,
    owner_approves,
    person,
    requested,
    shared_mailbox,
    verified_and_approved,
)

KEY_ENV = "VOUCHSAFE_TEST_GOOGLE_DELEGATION_KEY"
DELEGATES = r"^/gmail/v1/users/[^/]+/settings/delegates"


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """googleapiclient's pauses between retries, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(googleapiclient.http, "time", SimpleNamespace(sleep=pauses.append))
    return pauses


@pytest.fixture
def google(slept):
    with FakeGoogle() as fake:
        fake.key = fake.add_service_account()
        fake.delegate(fake.key["client_id"], *SCOPES)
        fake.add_user("admin@example.test", "Ada Admin", is_admin=True)
        fake.add_user("payroll@example.test", "Payroll")
        fake.add_user("alice@example.test", "Alice Able")
        yield fake


def _connector(google: FakeGoogle, **settings) -> GoogleWorkspaceConnector:
    client = GoogleClient(
        google.key,
        "admin@example.test",
        api_endpoint=google.url,
        gmail_endpoint=google.url,
        timeout=2.0,
        num_retries=1,
    )
    return GoogleWorkspaceConnector(
        tenant=Tenant(pk=9, slug="initech", name="Initech"),
        settings={"admin_email": "admin@example.test", **settings},
        client=client,
    )


def _account(username: str):
    from recovery.models import ProtectedAccount

    return ProtectedAccount(external_id=username, username=username, display_name=username)


def _writes(google: FakeGoogle) -> list[str]:
    return [f"{r.method} {r.path}" for r in google.requests if r.path.startswith("/gmail/")]


# --- the connector's operations -------------------------------------------------------------


def test_add_makes_the_delegate_as_the_mailbox_s_user_and_a_repeat_changes_nothing(google):
    connector = _connector(google)
    assert Capability.MAILBOX_DELEGATE in connector.capabilities
    mailbox, alice = _account("payroll@example.test"), _account("alice@example.test")
    result = connector.mailbox_delegate_add(mailbox=mailbox, delegate=alice)
    assert result.ok, result.error
    assert result.detail["mailbox_address"] == "payroll@example.test"
    assert result.detail["delegate_address"] == "alice@example.test"
    assert result.detail["already_there"] is False
    assert google.delegates_of("payroll@example.test") == ["alice@example.test"]
    again = connector.mailbox_delegate_add(mailbox=mailbox, delegate=alice)
    assert again.ok and again.detail["already_there"] is True  # the 409 reads as done
    assert google.delegates_of("payroll@example.test") == ["alice@example.test"]


def test_remove_takes_it_back_and_one_already_gone_counts_as_removed(google):
    connector = _connector(google)
    google.delegates[google.user("payroll@example.test").id] = {"alice@example.test": "accepted"}
    for _ in range(2):
        result = connector.mailbox_delegate_remove(
            mailbox_address="payroll@example.test", delegate_address="alice@example.test"
        )
        assert result.ok, result.error
    assert google.delegates_of("payroll@example.test") == []
    path = "/gmail/v1/users/payroll%40example.test/settings/delegates/alice%40example.test"
    assert _writes(google) == [f"DELETE {path}"] * 2


def test_a_scope_not_delegated_is_a_forbidden_result_and_nothing_changes(google):
    google.delegation[google.key["client_id"]].discard(GMAIL_SHARING)
    result = _connector(google).mailbox_delegate_add(
        mailbox=_account("payroll@example.test"), delegate=_account("alice@example.test")
    )
    assert not result.ok
    assert result.detail["code"] == "google_workspace.forbidden"
    assert google.delegates_of("payroll@example.test") == []


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (503, "backendError", "google_workspace.unavailable"),
        (429, "rateLimitExceeded", "google_workspace.throttled"),
    ],
)
def test_vendor_failures_are_results_after_the_library_s_retries(
    google, slept, status, reason, code
):
    google.fail_with("DELETE", DELEGATES, status, reason, times=5)
    result = _connector(google).mailbox_delegate_remove(
        mailbox_address="payroll@example.test", delegate_address="alice@example.test"
    )
    assert not result.ok and result.detail["code"] == code
    assert len(slept) == 1  # num_retries=1: one pause, one repeat


def test_an_unknown_delegate_is_a_not_found_result(google):
    result = _connector(google).mailbox_delegate_add(
        mailbox=_account("payroll@example.test"), delegate=_account("nobody@example.test")
    )
    assert not result.ok and result.detail["code"] == "google_workspace.not_found"


def test_with_manage_delegates_off_it_is_a_manual_step(google):
    connector = _connector(google, manage_delegates=False)
    assert Capability.MAILBOX_DELEGATE not in connector.capabilities
    result = connector.mailbox_delegate_add(
        mailbox=_account("payroll@example.test"), delegate=_account("alice@example.test")
    )
    assert result.detail["code"] == CAPABILITY_MISSING and not _writes(google)


# --- the workflow with the tenant's Google connector -----------------------------------------


@pytest.fixture
def workspace(acme, google, monkeypatch):
    """acme's active connector is Google Workspace at the fake; the mailbox and the requester
    are users there under the names the system of record gives them."""
    monkeypatch.setenv(KEY_ENV, json.dumps(google.key))
    connector_set(
        acme,
        kind="google_workspace",
        settings={
            "admin_email": "admin@example.test",
            "service_account_key_env": KEY_ENV,
            "token_uri": f"{google.url}/token",
            "api_endpoint": google.url,
            "gmail_endpoint": google.url,
        },
    )
    owner = person(acme)
    mailbox = shared_mailbox(acme, owner)
    alice = person(acme)
    google.add_user(mailbox.username, "Payroll mailbox")
    google.add_user(alice.username, "Alice")
    return {"owner": owner, "mailbox": mailbox, "alice": alice}


def _ready(acme, workspace):
    agent = staff(Role.AGENT, tenant=acme)
    case = verified_and_approved(
        requested(workspace["mailbox"], workspace["alice"], agent, hours=2), agent
    )
    owner_approves(case, workspace["owner"])
    return case


def test_execution_makes_the_delegate_at_google_and_the_sweep_removes_it_once(
    acme, google, workspace
):
    case = _ready(acme, workspace)
    case = execute(case, staff(Role.AGENT, tenant=acme))
    mailbox, alice = workspace["mailbox"].username, workspace["alice"].username
    assert case.status == "executed"
    assert google.delegates_of(mailbox) == [alice]
    delegation = delegation_of(case)
    assert delegation.status == "active" and delegation.connector == "google_workspace"
    assert (delegation.expires_at - delegation.granted_at).total_seconds() == 2 * 3600
    assert delegation.grant_answer["delegate_address"] == alice

    assert delegations_expire_sweep() == 0  # not yet expired: nothing happens
    assert google.delegates_of(mailbox) == [alice]
    expire_now(case)
    assert delegations_expire_sweep() == 1
    assert google.delegates_of(mailbox) == []
    assert delegation_of(case).status == "removed"
    assert delegations_expire_sweep() == 0  # a second sweep does nothing more
    assert actions(case) == [
        "access.delegation_requested",
        "access.delegation_owner_approved",
        "access.delegation_granted",
        "access.delegation_expired",
        "access.delegation_removed",
    ]


def test_a_failed_grant_leaves_the_case_ready_and_a_retry_grants_it(acme, google, workspace):
    case = _ready(acme, workspace)
    google.delegation[google.key["client_id"]].discard(GMAIL_SHARING)
    executor = staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as failed:
        execute(case, executor)
    assert failed.value.code == "case.execution_failed"
    case.refresh_from_db()
    assert case.status == "ready" and not CaseExecution.objects.filter(case=case).exists()
    assert delegation_of(case).status == "requested"
    google.delegate(google.key["client_id"], GMAIL_SHARING)
    assert execute(case, executor).status == "executed"
    assert google.delegates_of(workspace["mailbox"].username) == [workspace["alice"].username]


def test_a_failed_removal_is_recorded_and_the_next_sweep_removes_it(acme, google, workspace):
    case = execute(_ready(acme, workspace), staff(Role.AGENT, tenant=acme))
    expire_now(case)
    # the connector's client repeats a 503 three times (its default): four answers, all failed
    google.fail_with("DELETE", DELEGATES, 503, "backendError", times=4)
    assert delegations_expire_sweep() == 0
    delegation = delegation_of(case)
    assert delegation.status == "removal_pending"
    assert delegation.removal_answer["code"] == "google_workspace.unavailable"
    assert google.delegates_of(workspace["mailbox"].username) == [workspace["alice"].username]
    assert delegations_expire_sweep() == 1
    assert google.delegates_of(workspace["mailbox"].username) == []
    assert actions(case)[-3:] == [
        "access.delegation_expired",
        "access.delegation_removal_failed",
        "access.delegation_removed",
    ]


def test_a_delegation_ended_early_is_removed_by_the_next_sweep(acme, google, workspace):
    from django.db import transaction

    from audit.context import Actor
    from recovery.delegation.services import delegation_end_early

    case = execute(_ready(acme, workspace), staff(Role.AGENT, tenant=acme))
    with transaction.atomic():
        assert delegation_end_early(case=case, actor=Actor.system("tests"), reason="repudiated")
    with transaction.atomic():  # a second call changes nothing
        assert not delegation_end_early(case=case, actor=Actor.system("tests"), reason="again")
    assert delegation_of(case).status == "removal_pending"
    assert delegations_expire_sweep() == 1
    assert google.delegates_of(workspace["mailbox"].username) == []
    assert actions(case)[-2:] == ["access.delegation_expired", "access.delegation_removed"]


def test_a_repudiated_mailbox_access_ends_its_delegation_and_touches_nothing_else(
    acme, google, workspace, django_capture_on_commit_callbacks
):
    """The requester's owner says "this wasn't me": the case is frozen, its delegation ends
    and the sweep removes it; the requester's own sign-in methods are left alone (the case
    never changed them), and with nothing else to put back the case is reverted."""
    from recovery.cases.services.repudiation import case_repudiate
    from recovery.notifications.models import OwnerNotice

    from ..factories import notices_planned

    case = execute(_ready(acme, workspace), staff(Role.AGENT, tenant=acme))
    alice = workspace["alice"].username
    account_writes = len(_account_writes(google))
    notices_planned(acme)
    with django_capture_on_commit_callbacks(execute=True):
        case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())

    case.refresh_from_db()
    assert case.status == "reverted"
    assert delegation_of(case).status == "removal_pending"
    assert delegations_expire_sweep() == 1
    assert google.delegates_of(workspace["mailbox"].username) == []
    assert len(_account_writes(google)) == account_writes  # nothing else at the provider
    assert alice not in str(google.sent("POST", r"/signOut$"))


def _account_writes(google: FakeGoogle) -> list:
    """Every write at the provider but the delegates' (a sign-out, a removal, a reset)."""
    return [
        request
        for method in ("POST", "PUT", "PATCH", "DELETE")
        for request in google.sent(method, r"/")
        if "/settings/delegates" not in request.path and not request.path.endswith("/token")
    ]

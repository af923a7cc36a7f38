"""Mailbox delegation under the Entra ID connector: Microsoft Graph has no mailbox-permission
API, so the grant and the removal are manual steps naming Exchange Online PowerShell's
Add-MailboxPermission / Remove-MailboxPermission, recorded by a person with a passkey step-up;
nothing is asked of Graph. The sweep runs as the beat's task does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from recovery.connectors.base import Capability
from recovery.connectors.entra import validate_entra_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.selectors import connector_for
from recovery.connectors.validation import _Errors
from recovery.delegation.services import delegation_step_record
from recovery.tasks import delegations_expire_sweep_task
from tenants.choices import Role
from tests.fakes.graph import FakeGraph

from ..factories import execute, staff, step_up
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

pytestmark = pytest.mark.django_db
SECRET_ENV = "VS_TEST_ENTRA_DELEGATION_SECRET"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def entra(acme, graph, monkeypatch) -> FakeGraph:
    monkeypatch.setenv(SECRET_ENV, graph.client_secret)
    errors = _Errors()
    settings = validate_entra_settings(
        {
            "tenant_id": graph.tenant_id,
            "client_id": graph.client_id,
            "client_secret_env": SECRET_ENV,
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


def test_entra_grants_and_removes_through_tracked_exchange_powershell_steps(acme, entra):
    assert Capability.MAILBOX_DELEGATE not in connector_for(acme).capabilities
    owner = person(acme)
    mailbox, alice = shared_mailbox(acme, owner), person(acme)
    agent = staff(Role.AGENT, tenant=acme)
    case = verified_and_approved(requested(mailbox, alice, agent), agent)
    owner_approves(case, owner)
    executor = staff(Role.AGENT, tenant=acme)
    seen = len(entra.requests)
    case = execute(case, executor)
    assert len(entra.requests) == seen  # Graph was asked nothing
    (grant,) = delegation_of(case).steps
    assert grant["manual_step"].startswith("In Exchange Online PowerShell: Add-MailboxPermission")
    assert f"-Identity '{mailbox.username}' -User '{alice.username}'" in grant["manual_step"]
    delegation_step_record(
        actor=executor,
        case=case,
        step="grant",
        step_up=step_up(executor, case=case, action="execute"),
    )
    expire_now(case)
    assert delegations_expire_sweep_task() == 0
    delegation = delegation_of(case)
    removal = next(step for step in delegation.steps if step["id"] == "remove")
    assert removal["manual_step"].startswith(
        "In Exchange Online PowerShell: Remove-MailboxPermission"
    )
    assert delegation.status == "removal_pending"
    delegation_step_record(
        actor=executor,
        case=case,
        step="remove",
        step_up=step_up(executor, case=case, action="execute"),
    )
    assert delegation_of(case).status == "removed"
    assert actions(case)[-3:] == [
        "access.delegation_step_pending",
        "access.delegation_step_recorded",
        "access.delegation_removed",
    ]


def test_the_beat_runs_the_sweep_every_minute_by_default():
    entry = django_settings.CELERY_BEAT_SCHEDULE["delegation-expire-sweep"]
    assert entry["task"] == "recovery.tasks.delegations_expire_sweep_task"
    assert entry["schedule"] == 60.0

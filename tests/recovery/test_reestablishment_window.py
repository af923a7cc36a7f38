"""R-35: the re-establishment window after a recovery (recovery/cases/services/window.py).

The window's length comes from the tenant's policy. Inside it, each of the six kinds of change
the identity provider reports, ingested (`POST events/`) or read by the poll from the
connector's change log, is undone through the connector when it can (a manual step when it
cannot), freezes the account pending review and raises an alert: once per provider event,
however often and however it is reported. The connector side is the Graph fake: a T1 account
recovered through the tenant's Entra ID connector, and changes made at "Microsoft" (a method
registered in the fake, with the audit record Entra writes for it). Asserted: the fake's state
and the requests it received, the account, the case's pending steps and the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent
from audit.verify import verify_chain
from config.celery import app as celery_app
from integrations.models import IngestedEvent
from integrations.services import event_ingest
from recovery import connectors
from recovery.cases.models import CaseExecution, RecoveryCase, ReestablishmentWindow, WindowChange
from recovery.cases.services.base import requirements_for
from recovery.cases.services.execution import case_close
from recovery.cases.services.window import ACT_GRACE, window_open
from recovery.connectors.base import Capability, Connector
from recovery.connectors.entra import validate_entra_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.validation import _Errors
from recovery.models import PolicyVersion, ProtectedAccount
from recovery.policy.errors import PolicyInvalid
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from recovery.policy.validation import validate
from recovery.tasks import window_poll_task
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant
from tests.fakes.graph import FakeGraph, graph_error

from ..approle import as_app_role
from ..factories import execute, make_tenant, notices_sent, staff, step_up, unique
from .execution.helpers import ready_case

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
WINDOW_LINE = (
    "    reestablishment_window_seconds: 259200  # R-35: 72 h after a recovery; floor 24 h\n"
)
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
REGISTERED = "User registered security info"  # Entra's audit activity for a new method


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def entra(acme: Tenant, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> FakeGraph:
    entra_for(acme, graph, monkeypatch)
    return graph


@pytest.fixture
def worker() -> Iterator[None]:
    """Queued tasks run in-process, as a worker would run them."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def entra_for(tenant: Tenant, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tenant`'s active connector is Entra ID at `graph` (its secret in a variable of its own)."""
    variable = f"VS_TEST_WINDOW_SECRET_{tenant.pk}"
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
        tenant=tenant,
        kind="entra",
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=tenant),
    )


def recovered(tenant: Tenant, graph: FakeGraph | None = None) -> tuple[RecoveryCase, str]:
    """A T1 MFA reset executed through the tenant's connector: the account's window is open.
    With `graph`, the account's user exists there; returns the case and the user's id."""
    external_id = unique("ext")
    user_id = graph.add_user(f"{external_id}@example.test", "Ada Lovelace") if graph else ""
    case = ready_case(tenant, case_type="mfa_reset", groups=["finance"], external_id=external_id)
    assert case.tier == "T1"
    notices_sent(tenant)  # a T1 execution waits for every notice
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    if graph is not None:
        graph.advance(2)  # what happens at Microsoft from here on is after the execution
    return case, user_id


def account_of(case: RecoveryCase) -> ProtectedAccount:
    return ProtectedAccount.objects.get(pk=case.account_id)


def events(tenant: Tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def alerts(tenant: Tenant, case: RecoveryCase) -> list[AuditEvent]:
    return [
        e
        for e in events(tenant, "alert.raised")
        if e.target_id == str(case.pk) and e.data["type"] == "post_recovery_change"
    ]


def ingest(
    tenant: Tenant,
    account: ProtectedAccount,
    event_type: str,
    data: dict,
    capture,
    *,
    external_id: str = "",
) -> IngestedEvent:
    """An integration's event, committed; then the task it queued runs."""
    with capture(execute=True):
        event, _ = event_ingest(
            actor=staff(Role.SECURITY_OFFICER, tenant=tenant),
            tenant=tenant,
            event_type=event_type,
            account_external_id=account.external_id,
            occurred_at=timezone.now(),
            source="entra",
            external_id=external_id,
            data=data,
        )
    return event


def registered_at_microsoft(graph: FakeGraph, user_id: str) -> tuple[str, str]:
    """Someone registers an authenticator app on the user at Microsoft: the method, and the
    directory audit record Entra writes for it."""
    method = graph.add_method(user_id, "microsoftAuthenticator", displayName="Unknown phone")
    record = graph.add_audit(REGISTERED, "UserManagement", [{"id": user_id}], initiated_by=user_id)
    return method, record


def with_window(tier: str, seconds: int) -> str:
    """The default policy with `tier`'s re-establishment window set to `seconds`."""
    t1, t2 = DEFAULT.split("  T2:\n")
    line = f"    reestablishment_window_seconds: {seconds}\n"
    if tier == "T1":
        t1 = t1.replace(WINDOW_LINE, line)
    else:
        t2 = t2.replace(WINDOW_LINE, line)
    return f"{t1}  T2:\n{t2}"


class WithoutUndo:
    """The tenant's connector, reading changes as before but unable to undo any (as a provider
    that reports changes it offers no way to reverse)."""

    def __init__(self, inner: Connector) -> None:
        self._inner = inner
        self.capabilities = inner.capabilities - {Capability.CHANGE_UNDO}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def deletes(graph: FakeGraph) -> list[str]:
    return [r.path for r in graph.requests if r.method == "DELETE"]


def activate(tenant: Tenant, text: str) -> PolicyVersion:
    author, approver = (
        staff(Role.TENANT_ADMIN, tenant=tenant),
        staff(Role.TENANT_ADMIN, tenant=tenant),
    )
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    version = policy_activation_request(actor=author, version=version)
    return policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


# --- the window comes from the policy ---------------------------------------------------------


def test_the_window_is_the_tenants_policy_value_and_a_t0_recovery_opens_none(acme):
    activate(acme, with_window("T1", 2 * 86_400))
    case, _ = recovered(acme)

    account = account_of(case)
    window = ReestablishmentWindow.objects.get(account=account)
    assert (window.case_id, window.polled_until) == (case.pk, window.opened_at)
    assert account.restricted_until - window.opened_at == timedelta(hours=48)
    [executed] = [e for e in events(acme, "case.executed") if e.target_id == str(case.pk)]
    recorded = parse_datetime(executed.data["restricted_until"])
    assert abs(recorded - account.restricted_until) < timedelta(milliseconds=1)

    t0 = execute(ready_case(acme), staff(Role.AGENT, tenant=acme))  # an unlock, T0
    assert t0.tier == "T0"
    assert account_of(t0).restricted_until is None
    assert not ReestablishmentWindow.objects.filter(account_id=t0.account_id).exists()


def test_a_window_below_the_floor_is_refused_for_t1_and_t2_not_for_t0():
    for tier in ("T1", "T2"):
        with pytest.raises(PolicyInvalid) as refused:
            validate(with_window(tier, 86_399))
        assert {e.rule for e in refused.value.errors} == {
            f"R-35.{tier}.reestablishment_window_seconds"
        }
        assert refused.value.errors[0].path == f"$.tiers.{tier}.reestablishment_window_seconds"
    t0_hour = DEFAULT.replace(
        "  max_failed_attempts: 5 ",
        "  reestablishment_window_seconds: 3600\n  max_failed_attempts: 5 ",
    )
    assert validate(t0_hour).data["defaults"]["reestablishment_window_seconds"] == 3600


def test_a_longer_window_activated_mid_case_applies_and_a_shorter_one_does_not(acme):
    case = ready_case(acme, case_type="mfa_reset", groups=["finance"])
    activate(acme, with_window("T1", 4 * 86_400))
    assert requirements_for(case).reestablishment_window_seconds == 4 * 86_400
    until = window_open(case=case, req=requirements_for(case))
    assert until - ReestablishmentWindow.objects.get(account=case.account).opened_at == timedelta(
        days=4
    )
    activate(acme, with_window("T1", 86_400))
    assert requirements_for(case).reestablishment_window_seconds == 3 * 86_400  # opened under 72 h


# --- ingested changes ---------------------------------------------------------------------------


MANUAL_KINDS = [
    ("recovery_address_changed", {"address_type": "email"}, "address_changed"),
    ("mailbox_rule_created", {"rule_name": "x", "forwards_to": "a@evil.example"}, "mailbox_rule"),
    ("delegate_granted", {"delegate": "mallory@example.test"}, "delegate_granted"),
    ("oauth_consent_granted", {"app_id": "3f1c-app", "app_name": "Mail Sync"}, "oauth_consent"),
]


def test_an_ingested_new_mfa_device_is_deleted_at_microsoft_the_account_frozen_and_alerted(
    acme, entra, worker, django_capture_on_commit_callbacks
):
    case, user_id = recovered(acme, entra)
    kept = entra.add_method(
        user_id, "fido2", displayName="Owner key", createdDateTime="2020-01-01T00:00:00.0000000Z"
    )
    thief = entra.add_method(user_id, "microsoftAuthenticator", displayName="Unknown phone")

    event = ingest(
        acme,
        account_of(case),
        "mfa_device_added",
        {"device_type": "authenticator_app"},
        django_capture_on_commit_callbacks,
    )

    assert thief not in entra.method_ids(user_id) and kept in entra.method_ids(user_id)
    [deleted] = deletes(entra)
    assert deleted.endswith(f"/authentication/microsoftAuthenticatorMethods/{thief}")
    assert account_of(case).frozen_at is not None
    [frozen] = events(acme, "window.account_frozen")
    assert frozen.target_id == str(case.account_id) and frozen.data["kind"] == "mfa_enrolled"
    [undone] = events(acme, "window.change_undone")
    assert undone.target_id == str(case.pk) and undone.data["change"] == f"ingested-{event.pk}"
    assert undone.data["connector"] == "entra" and undone.data["detail"]["done"]
    [alert] = alerts(acme, case)
    assert (alert.data["kind"], alert.data["undo"], alert.data["source"]) == (
        "mfa_enrolled",
        "undone",
        "ingest",
    )
    assert alert.data["ingested_event"] == event.pk and alert.data["account_frozen"] is True
    assert verify_chain(acme.pk, acme.slug).intact


def test_an_ingested_role_grant_is_removed_at_microsoft(
    acme, entra, worker, django_capture_on_commit_callbacks
):
    case, user_id = recovered(acme, entra)
    entra.add_role_assignment(user_id, GLOBAL_ADMIN)

    ingest(
        acme,
        account_of(case),
        "admin_role_granted",
        {"role": "Global Administrator", "role_id": GLOBAL_ADMIN},
        django_capture_on_commit_callbacks,
    )

    assert [a for a in entra.role_assignments.values() if a["principalId"] == user_id] == []
    assert account_of(case).frozen_at is not None
    [alert] = alerts(acme, case)
    assert (alert.data["kind"], alert.data["undo"]) == ("privileged_role", "undone")


@pytest.mark.parametrize(
    ("event_type", "data", "kind"), MANUAL_KINDS, ids=[k[2] for k in MANUAL_KINDS]
)
def test_an_ingested_change_entra_cannot_undo_is_a_pending_manual_step(
    acme, entra, worker, django_capture_on_commit_callbacks, event_type, data, kind
):
    case, _ = recovered(acme, entra)

    ingest(acme, account_of(case), event_type, data, django_capture_on_commit_callbacks)

    assert [r for r in entra.requests if r.method != "GET" and "/token" not in r.path] == []
    assert account_of(case).frozen_at is not None
    [manual] = events(acme, "window.change_undo_manual")
    assert manual.data["kind"] == kind and manual.data["code"] == "connector.capability_missing"
    assert (
        "admin" in manual.data["manual_step"] and manual.data["error"] in manual.data["manual_step"]
    )
    [alert] = alerts(acme, case)
    assert (alert.data["kind"], alert.data["undo"]) == (kind, "manual")
    [step] = CaseExecution.objects.get(case=case).containment_steps
    assert (step["operation"], step["state"]) == ("change_undo", "pending")


def test_other_event_types_and_changes_after_the_window_leave_only_the_stored_event(
    acme, entra, worker, django_capture_on_commit_callbacks
):
    case, user_id = recovered(acme, entra)
    account = account_of(case)
    ingest(acme, account, "sign_in_new_asn", {"asn": 64500}, django_capture_on_commit_callbacks)
    assert account_of(case).frozen_at is None and alerts(acme, case) == []

    ProtectedAccount.objects.filter(pk=account.pk).update(
        restricted_until=timezone.now() - timedelta(seconds=1)
    )
    method, _ = registered_at_microsoft(entra, user_id)
    event = ingest(
        acme,
        account_of(case),
        "mfa_device_added",
        {"device_type": "authenticator_app"},
        django_capture_on_commit_callbacks,
    )
    assert window_poll_task() == 0

    assert IngestedEvent.objects.filter(pk=event.pk).exists()
    assert method in entra.method_ids(user_id) and deletes(entra) == []
    assert entra.sent("GET", r"/directoryAudits$") == []  # a closed window is not read
    assert account_of(case).frozen_at is None and alerts(acme, case) == []
    assert not WindowChange.objects.filter(account=account).exists()


# --- the poll -----------------------------------------------------------------------------------


def test_the_poll_deletes_a_new_method_once_though_polled_twice_and_ingested_too(
    acme, entra, worker, django_capture_on_commit_callbacks
):
    case, user_id = recovered(acme, entra)
    method, record = registered_at_microsoft(entra, user_id)

    assert window_poll_task() == 1

    assert method not in entra.method_ids(user_id)
    assert account_of(case).frozen_at is not None
    [alert] = alerts(acme, case)
    assert (alert.data["source"], alert.data["change"], alert.data["undo"]) == (
        "poll",
        record,
        "undone",
    )
    window = ReestablishmentWindow.objects.get(account_id=case.account_id)
    assert window.polled_until > window.opened_at and window.lease_until is None

    entra.advance(60)
    assert window_poll_task() == 0  # read again (the look-back), acted on already
    ingest(
        acme,
        account_of(case),
        "mfa_device_added",
        {"device_type": "microsoftAuthenticator"},
        django_capture_on_commit_callbacks,
        external_id=record,  # the same change, forwarded by the tenant's SIEM
    )

    assert len(entra.sent("GET", r"/directoryAudits$")) >= 4  # two reads per poll
    assert len(deletes(entra)) == 1
    assert len(alerts(acme, case)) == 1
    assert len(events(acme, "window.change_undone")) == 1
    assert len(events(acme, "window.account_frozen")) == 1
    assert WindowChange.objects.get(account_id=case.account_id).vendor_id == record


def test_a_connector_without_change_undo_leaves_a_manual_step_and_the_case_open(
    acme, entra, monkeypatch
):
    case, user_id = recovered(acme, entra)
    real = connectors.connector_for
    monkeypatch.setattr(connectors, "connector_for", lambda tenant: WithoutUndo(real(tenant)))
    method, record = registered_at_microsoft(entra, user_id)

    window_poll_task()

    assert method in entra.method_ids(user_id) and deletes(entra) == []
    assert account_of(case).frozen_at is not None
    change = WindowChange.objects.get(account_id=case.account_id)
    assert change.outcome == "manual" and "remove the new authenticator" in change.manual_step
    [manual] = events(acme, "window.change_undo_manual")
    assert manual.data["code"] == "connector.capability_missing"
    [step] = CaseExecution.objects.get(case=case).containment_steps
    assert (step["id"], step["state"]) == (f"change_undo:{record}", "pending")
    with pytest.raises(DomainError) as refused:
        case_close(actor=staff(Role.AGENT, tenant=acme), case=case, reason="done")
    assert refused.value.code == "case.containment_pending"
    [alert] = alerts(acme, case)
    assert alert.data["undo"] == "manual"


def test_one_tenants_failing_connector_does_not_stop_the_others(acme, entra, monkeypatch):
    globex = make_tenant()
    with FakeGraph() as other:
        entra_for(globex, other, monkeypatch)
        failing, _ = recovered(acme, entra)
        case, user_id = recovered(globex, other)
        method, _ = registered_at_microsoft(other, user_id)
        before = ReestablishmentWindow.objects.get(account_id=failing.account_id).polled_until
        entra.fail_next(
            "GET",
            r"/directoryAudits$",
            403,
            graph_error("Authorization_RequestDenied", "Insufficient privileges."),
        )

        window_poll_task()

        assert method not in other.method_ids(user_id)
        assert len(alerts(globex, case)) == 1
    [failed] = events(acme, "window.poll_failed")
    assert failed.target_id == str(failing.account_id)
    assert (failed.data["connector"], failed.data["error_kind"]) == ("entra", "forbidden")
    window = ReestablishmentWindow.objects.get(account_id=failing.account_id)
    assert (window.polled_until, window.lease_until) == (before, None)  # read again next round
    assert account_of(failing).frozen_at is None


def test_the_owners_own_enrolment_with_the_pass_is_left_alone_until_containment_ran(acme, entra):
    case, user_id = recovered(acme, entra)
    started = entra.now_datetime()
    CaseExecution.objects.filter(case=case).update(
        temporary_pass={"session": 1, "id": "tap", "started_at": started.isoformat()}
    )
    owners, _ = registered_at_microsoft(entra, user_id)  # the owner, with the pass

    assert window_poll_task() == 0
    assert owners in entra.method_ids(user_id) and account_of(case).frozen_at is None

    CaseExecution.objects.filter(case=case).update(containment_done_at=timezone.now())
    entra.advance(120)
    later, _ = registered_at_microsoft(entra, user_id)  # after containment: not the owner's

    assert window_poll_task() == 1
    assert later not in entra.method_ids(user_id) and owners in entra.method_ids(user_id)
    assert account_of(case).frozen_at is not None


def test_the_poll_acts_on_an_ingested_change_whose_task_was_lost(
    acme, entra, django_capture_on_commit_callbacks
):
    case, user_id = recovered(acme, entra)
    thief = entra.add_method(user_id, "microsoftAuthenticator", displayName="Unknown phone")
    with django_capture_on_commit_callbacks(execute=False):  # the broker never took the task
        event_ingest(
            actor=staff(Role.SECURITY_OFFICER, tenant=acme),
            tenant=acme,
            event_type="mfa_device_added",
            account_external_id=account_of(case).external_id,
            occurred_at=timezone.now(),
            data={"device_type": "authenticator_app"},
        )
    assert account_of(case).frozen_at is not None  # frozen with the ingest already
    assert thief in entra.method_ids(user_id) and alerts(acme, case) == []

    WindowChange.objects.filter(account_id=case.account_id).update(
        reported_at=timezone.now() - ACT_GRACE - timedelta(seconds=1)
    )
    window_poll_task()

    assert thief not in entra.method_ids(user_id)
    assert WindowChange.objects.get(account_id=case.account_id).outcome == "undone"
    assert len(alerts(acme, case)) == 1


def test_the_poll_sets_its_own_tenant_scopes_under_row_level_security(app_role, acme, entra):
    case, user_id = recovered(acme, entra)
    method, _ = registered_at_microsoft(entra, user_id)

    with as_app_role(None):  # the restricted role, no tenant visible until the sweep says
        assert window_poll_task() == 1

    assert method not in entra.method_ids(user_id)
    assert account_of(case).frozen_at is not None and len(alerts(acme, case)) == 1

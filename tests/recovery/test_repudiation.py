"""A revert that reverts (R-37, R-41, issue 14 item 5): "this wasn't me" covers the whole
account, reverts each executed recovery through the connector that made it, one recorded
step at a time, and tracks what a person must do (the manual connector, a failed step).

Connectors are real: the manual one, the LDAP one against a real slapd, Entra ID against the
Graph fake (an HTTPS server of our own). The revert runs once the freeze has committed: the
tests run the on-commit callbacks as the request's commit would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from recovery.artifacts.models import RecoveryArtifact
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services import case_open
from recovery.cases.services.execution import case_close
from recovery.cases.services.repudiation import (
    account_revert,
    account_revert_sweep,
    case_repudiate,
    revert_pending,
    revert_record,
    revert_run,
    revert_step_record,
)
from recovery.connectors import connector_for
from recovery.connectors.entra import validate_entra_settings
from recovery.connectors.manual import ManualConnector
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.validation import _Errors
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notice_send
from recovery.tasks import account_revert_sweep_task
from tenants.choices import Role
from tenants.exceptions import DomainError, StepUpFailed
from tenants.models import Tenant
from tests.fakes.graph import PASSWORD_METHOD_ID, FakeGraph, graph_error, iso

from ..approle import as_app_role
from ..factories import (
    alerts_routed,
    execute,
    notices_planned,
    security_contact,
    staff,
    step_up,
    unique,
)
from ..ldap_server import OLD_PASSWORD
from ..owner.binding_helpers import (
    ldap_connector_for,
    mfa_session,
    password_session,
    slapd,  # noqa: F401 - the module's slapd
)
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

SECRET_ENV = "VS_TEST_ENTRA_REPUDIATION_SECRET"
PASS_URL, CONFIRM_URL = "/owner/recovery/pass/", "/owner/recovery/confirm/"
DAY = 86_400


def events(tenant: Tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    rows = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        rows = rows.filter(target_id=str(case.pk))
    return list(rows.order_by("seq"))


def not_me_path(case: RecoveryCase) -> str:
    """The "this wasn't me" link of the case's first email notice, as the owner got it."""
    notices_planned(case.tenant)
    notice = OwnerNotice.objects.filter(case=case, contact__kind="email").first()
    mail.outbox.clear()
    notice_send(notice_id=notice.pk)
    body = mail.outbox[0].body
    start = body.index("/not-me/")
    return body[start : body.index("/", start + 8) + 1]


def repudiate(case: RecoveryCase, capture) -> RecoveryCase:
    """The owner posts "this wasn't me"; the request commits (its callbacks run)."""
    path = not_me_path(case)
    with capture(execute=True):
        assert Client().post(path).status_code == 200
    return RecoveryCase.objects.get(pk=case.pk)


def executed_manual(tenant: Tenant) -> RecoveryCase:
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    return execute(case, staff(Role.AGENT, tenant=tenant))


def execution_of(case: RecoveryCase) -> CaseExecution:
    return CaseExecution.objects.get(case=case)


# --- the manual connector: listed, tracked, recorded -----------------------------------------


def test_under_the_manual_connector_the_revert_steps_are_tracked_until_each_is_recorded(
    acme, django_capture_on_commit_callbacks
):
    case = executed_manual(acme)

    case = repudiate(case, django_capture_on_commit_callbacks)

    assert case.status == "frozen"
    expected = ManualConnector().steps_for("revert") + ManualConnector().steps_for(
        "revoke_temporary_access"
    )
    username = case.account.username
    pending = revert_pending(execution_of(case))
    assert [step["manual_step"] for step in pending] == [
        step.format(username=username, external_id="", display_name="") for step in expected
    ]
    assert [e.data["manual_step"] for e in events(acme, "revert.step_pending", case)] == [
        step["manual_step"] for step in pending
    ]
    assert events(acme, "change.reverted", case) == []  # nobody has done anything yet
    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as closing:  # a frozen case is not closed
        case_close(actor=agent, case=case, reason="done")
    assert closing.value.code == "case.wrong_state"
    with pytest.raises(StepUpFailed) as bare:
        revert_step_record(actor=agent, case=case, step=pending[0]["id"], step_up=None)
    assert bare.value.code == "stepup.required"
    with pytest.raises(DomainError) as unknown:
        revert_step_record(
            actor=agent,
            case=case,
            step="manual_step:99",
            step_up=step_up(agent, case=case, action="execute"),
        )
    assert unknown.value.code == "revert.step_unknown"

    for number, step in enumerate(pending, start=1):
        revert_step_record(
            actor=agent,
            case=case,
            step=step["id"],
            step_up=step_up(agent, case=case, action="execute"),
        )
        case.refresh_from_db()
        assert case.status == ("reverted" if number == len(pending) else "frozen")

    recorded = events(acme, "revert.step_recorded", case)
    assert [e.data["still_pending"] for e in recorded] == list(range(len(pending) - 1, -1, -1))
    assert all(e.data["step_up"] for e in recorded)
    [reverted] = events(acme, "case.reverted", case)
    assert reverted.data["steps_recorded_by_hand"] == len(pending)
    assert execution_of(case).reverted_at is not None


def test_a_repudiation_freezes_every_active_recovery_of_the_account(
    acme, django_capture_on_commit_callbacks
):
    executed = executed_manual(acme)
    account = executed.account
    agent = staff(Role.AGENT, tenant=acme)
    other = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    unrelated = executed_manual(acme)  # another account: untouched

    repudiate(executed, django_capture_on_commit_callbacks)

    other.refresh_from_db()
    assert other.status == "frozen" and other.ended_at is not None
    [via] = events(acme, "case.repudiated", other)
    assert via.data["via_case"] == executed.pk and via.data["revert"] is None
    [own] = events(acme, "case.repudiated", executed)
    assert own.data["revert"] == "pending" and "passkeys_removed" in own.data
    [alert] = [e for e in events(acme, "alert.raised") if e.data.get("type") == "repudiation"]
    assert alert.data["cases_frozen"] == [executed.pk, other.pk]
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is not None
    assert RecoveryArtifact.objects.get(case=executed).revoke_reason == "repudiated"
    unrelated.refresh_from_db()
    assert unrelated.status == "executed"
    assert ProtectedAccount.objects.get(pk=unrelated.account_id).frozen_at is None


def test_a_closed_recovery_of_the_account_stays_closed_but_the_repudiated_one_is_reverted(
    acme, django_capture_on_commit_callbacks
):
    first = executed_manual(acme)
    agent = staff(Role.AGENT, tenant=acme)
    case_close(actor=agent, case=first, reason="done")
    second = ready_case(acme, case_type="unlock")
    RecoveryCase.objects.filter(pk=second.pk).update(account=first.account)
    second.refresh_from_db()
    owner_email(second)
    second = execute(second, agent)

    repudiate(first, django_capture_on_commit_callbacks)  # a closed case's own notice

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "frozen" and revert_pending(execution_of(first))
    assert second.status == "frozen" and revert_pending(execution_of(second))


def test_a_second_click_changes_nothing_more(acme, django_capture_on_commit_callbacks):
    case = executed_manual(acme)
    path = not_me_path(case)
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(path)
    before = AuditEvent.objects.filter(tenant=acme).count()
    steps = execution_of(case).revert_steps

    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post(path).status_code == 200

    assert AuditEvent.objects.filter(tenant=acme).count() == before
    assert execution_of(case).revert_steps == steps
    assert account_revert(tenant=acme, account_id=case.account_id) == 0


def test_a_revert_the_request_did_not_finish_is_done_by_the_sweep_once(
    acme, django_capture_on_commit_callbacks
):
    case = executed_manual(acme)
    notices_planned(acme)
    notice = OwnerNotice.objects.filter(case=case).first()
    with django_capture_on_commit_callbacks(execute=False):  # the request died after commit
        case_repudiate(notice=notice)
    assert execution_of(case).revert_ran_at is None
    assert account_revert_sweep() == 0  # within the grace period: the request's own
    RecoveryCase.objects.filter(pk=case.pk).update(ended_at=timezone.now() - timedelta(minutes=3))

    assert account_revert_sweep_task() == 1  # the beat's task, as a worker runs it
    assert account_revert_sweep() == 0
    entry = settings.CELERY_BEAT_SCHEDULE["account-revert-sweep"]
    assert entry["task"] == "recovery.tasks.account_revert_sweep_task"
    assert execution_of(case).revert_ran_at is not None
    assert len(events(acme, "revert.step_pending", case)) == len(execution_of(case).revert_steps)


def test_a_revert_through_another_connector_than_the_one_that_made_it_is_left_to_a_person(
    acme, graph, monkeypatch, django_capture_on_commit_callbacks
):
    case = executed_manual(acme)  # made through the manual connector
    entra_connector(acme, graph, monkeypatch)  # the tenant switched to Entra since

    case = repudiate(case, django_capture_on_commit_callbacks)

    [step] = revert_pending(execution_of(case))
    assert step["operation"] == "connector_changed"
    assert "manual connector" in step["manual_step"] and "now entra" in step["manual_step"]
    assert [r for r in graph.requests if r.method == "DELETE"] == []


def test_two_reverts_racing_record_once(acme, django_capture_on_commit_callbacks):
    """Two callers (the request and the sweep) both asked the connector: the recording
    transaction, under the case's lock, records the first and leaves the second."""
    case = executed_manual(acme)
    notices_planned(acme)
    with django_capture_on_commit_callbacks(execute=False):
        case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())
    execution = CaseExecution.objects.select_related("case__account").get(case=case)
    first = revert_run(connector=connector_for(acme), execution=execution)
    second = revert_run(connector=connector_for(acme), execution=execution)

    assert revert_record(execution_id=execution.pk, tenant=acme, outcomes=first) == 1
    assert revert_record(execution_id=execution.pk, tenant=acme, outcomes=second) == 0

    assert len(execution_of(case).revert_steps) == len(first)
    assert len(events(acme, "revert.step_pending", case)) == len(first)


# --- LDAP: the snapshot restored -------------------------------------------------------------


@pytest.fixture
def ldap_acme(acme, slapd, monkeypatch):  # noqa: F811
    ldap_connector_for(acme, slapd, monkeypatch)
    return acme


def test_an_ldap_recovery_is_put_back_from_its_snapshot(
    ldap_acme,
    slapd,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    recovery = password_session(ldap_acme, slapd)
    before = slapd.read(recovery.dn)
    assert not slapd.can_bind(recovery.dn, OLD_PASSWORD)  # the recovery's change

    case = repudiate(recovery.case, django_capture_on_commit_callbacks)

    assert case.status == "reverted"
    assert slapd.can_bind(recovery.dn, OLD_PASSWORD)  # the snapshot's password is back
    after = slapd.read(recovery.dn)
    assert after["userpassword"] != before["userpassword"]
    assert after.get("shadowlastchange") != [b"0"]  # no longer "must change"
    [step] = events(ldap_acme, "change.reverted", case)
    assert step.data["operation"] == "snapshot_restore" and step.data["connector"] == "ldap"
    assert step.data["detail"]["changed"] is True
    assert execution_of(case).reverted_at is not None
    assert events(ldap_acme, "revert.step_pending", case) == []


# --- Entra ID: pass, bound methods, sessions -------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def entra_connector(tenant: Tenant, graph: FakeGraph, monkeypatch) -> None:
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
    ConnectorConfig.objects.filter(tenant=tenant, is_active=True).update(is_active=False)
    ConnectorConfig.objects.create(
        tenant=tenant,
        kind="entra",
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=tenant),
    )


@pytest.fixture
def entra(acme, graph, monkeypatch) -> FakeGraph:
    entra_connector(acme, graph, monkeypatch)
    return graph


def entra_user(graph: FakeGraph) -> tuple[str, str, list[str]]:
    """A user with two methods from a day ago: external id, user id, the method ids."""
    external_id = unique("ext")
    user_id = graph.add_user(f"{external_id}@example.test", "Ada Lovelace")
    a_day_ago = iso(graph.now() - DAY)
    before = [
        graph.add_method(user_id, "microsoftAuthenticator", createdDateTime=a_day_ago),
        graph.add_method(user_id, "fido2", displayName="Old key", createdDateTime=a_day_ago),
    ]
    return external_id, user_id, before


def passes(graph: FakeGraph, user_id: str) -> list[str]:
    return [
        m["id"]
        for m in graph.methods[user_id]
        if m["@odata.type"].endswith("temporaryAccessPassAuthenticationMethod")
    ]


def bound_recovery(acme, entra, sms_outbox):
    """The recoverer was shown the pass, bound a key at Microsoft, and containment removed the
    owner's methods; then added one more."""
    external_id, user_id, before = entra_user(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=external_id)
    recovery.client.post(PASS_URL)
    entra.advance(60)
    bound = entra.add_method(user_id, "fido2", displayName="New key")
    assert recovery.client.post(CONFIRM_URL).status_code == 302
    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID, bound]  # containment ran
    entra.advance(60)
    later = entra.add_method(user_id, "microsoftAuthenticator", displayName="Their phone")
    return recovery, user_id, before, [bound, later]


def test_a_repudiated_entra_recovery_loses_what_the_recoverer_bound_and_every_session(
    acme, entra, sms_outbox, django_capture_on_commit_callbacks
):
    recovery, user_id, _before, theirs = bound_recovery(acme, entra, sms_outbox)
    revoked = len(entra.sent("POST", r"/revokeSignInSessions$"))
    valid_from = entra.users[user_id]["signInSessionsValidFromDateTime"]
    entra.advance(60)

    case = repudiate(recovery.case, django_capture_on_commit_callbacks)

    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID]  # theirs gone, the password kept
    assert passes(entra, user_id) == []
    assert len(entra.sent("POST", r"/revokeSignInSessions$")) == revoked + 1
    assert entra.users[user_id]["signInSessionsValidFromDateTime"] > valid_from
    # The sessions end last: no session opened while the revert ran survives it.
    assert entra.requests[-1].path.endswith("/revokeSignInSessions")
    done = [(e.data["operation"], e.data["target"]) for e in events(acme, "change.reverted", case)]
    upn = case.account.username
    pass_id = execution_of(case).temporary_pass["id"]
    assert done == [
        ("revoke_temporary_access", pass_id),
        ("method_remove", theirs[0]),
        ("method_remove", theirs[1]),
        ("sessions_revoke", upn),
    ]
    removal = events(acme, "change.reverted", case)[1]
    assert removal.data["path"].startswith(f"DELETE /users/{upn}/authentication/")
    assert removal.data["detail"]["registered_since_execution"] is True
    assert case.status == "reverted" and execution_of(case).reverted_at is not None
    assert events(acme, "revert.step_pending", case) == []


def test_a_step_the_provider_refuses_is_tracked_and_the_others_still_run(
    acme, entra, sms_outbox, django_capture_on_commit_callbacks
):
    recovery, user_id, _before, theirs = bound_recovery(acme, entra, sms_outbox)
    entra.fail_next(
        "DELETE",
        rf"/fido2Methods/{theirs[0]}$",
        403,
        graph_error(
            "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        ),
    )

    case = repudiate(recovery.case, django_capture_on_commit_callbacks)

    assert case.status == "frozen"
    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID, theirs[0]]  # only it is left
    [pending] = revert_pending(execution_of(case))
    assert pending["id"] == f"method_remove:{theirs[0]}" and pending["code"] == "entra.forbidden"
    assert (
        theirs[0] in pending["manual_step"]
        and "Insufficient privileges" in (pending["manual_step"])
    )
    [failed] = events(acme, "revert.step_pending", case)
    assert failed.data["path"].endswith(f"/fido2Methods/{theirs[0]}")
    operations = [e.data["operation"] for e in events(acme, "change.reverted", case)]
    assert operations == ["revoke_temporary_access", "method_remove", "sessions_revoke"]

    agent = staff(Role.AGENT, tenant=acme)
    revert_step_record(
        actor=agent,
        case=case,
        step=pending["id"],
        step_up=step_up(agent, case=case, action="execute"),
    )
    case.refresh_from_db()
    assert case.status == "reverted"


def test_repudiated_before_the_owner_opened_anything_the_revert_ends_sessions_only(
    acme, entra, sms_outbox, django_capture_on_commit_callbacks
):
    external_id, user_id, before = entra_user(entra)
    recovery = mfa_session(acme, sms_outbox, external_id=external_id)

    case = repudiate(recovery.case, django_capture_on_commit_callbacks)

    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID, *before]  # the owner's, kept
    assert [r for r in entra.requests if r.method == "DELETE"] == []
    done = [e.data["operation"] for e in events(acme, "change.reverted", case)]
    assert done == ["revoke_temporary_access", "sessions_revoke"]
    assert case.status == "reverted"


def test_the_provider_is_asked_only_after_the_freeze_has_committed(
    acme, entra, sms_outbox, django_capture_on_commit_callbacks
):
    """The owner's click inside a caller's transaction (the confirmation page's): nothing
    reaches the provider until that transaction commits, and the audit chain's lock is
    never held across a call to it."""
    recovery, user_id, _before, _theirs = bound_recovery(acme, entra, sms_outbox)
    notices_planned(acme)
    notice = OwnerNotice.objects.filter(case=recovery.case).first()
    asked = len(entra.requests)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        frozen = case_repudiate(notice=notice)
        assert frozen.status == "frozen"
        assert len(entra.requests) == asked  # not yet
    assert len(entra.requests) == asked
    for callback in callbacks:
        callback()
    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID]
    assert RecoveryCase.objects.get(pk=recovery.case.pk).status == "reverted"


def test_a_worker_that_died_after_the_provider_answered_reverts_nothing_twice(
    acme, entra, sms_outbox, django_capture_on_commit_callbacks
):
    recovery, user_id, _before, _theirs = bound_recovery(acme, entra, sms_outbox)
    notices_planned(acme)
    with django_capture_on_commit_callbacks(execute=False):
        case_repudiate(notice=OwnerNotice.objects.filter(case=recovery.case).first())
    execution = CaseExecution.objects.select_related("case__account").get(case=recovery.case)
    revert_run(connector=connector_for(acme), execution=execution)  # asked, then it died
    deletes = len([r for r in entra.requests if r.method == "DELETE"])
    assert entra.method_ids(user_id) == [PASSWORD_METHOD_ID]

    assert account_revert(tenant=acme, account_id=recovery.case.account_id) == 1

    # The second run finds the methods gone: nothing is deleted twice, all recorded once.
    assert len([r for r in entra.requests if r.method == "DELETE"]) == deletes
    assert account_revert(tenant=acme, account_id=recovery.case.account_id) == 0
    case = RecoveryCase.objects.get(pk=recovery.case.pk)
    assert case.status == "reverted"
    assert len(events(acme, "case.reverted", case)) == 1


def test_not_me_on_an_account_notice_freezes_and_reverts_every_active_recovery_too(
    acme, django_capture_on_commit_callbacks
):
    """A passkey added through the portal that the owner did not add: the account's own notice
    covers the whole account, so the recoveries in flight on it are frozen and reverted as a
    case's repudiation does (R-41)."""
    from recovery.notifications.models import NoticeEvent
    from recovery.owner.enrolment import account_repudiate

    executed = executed_manual(acme)
    account = executed.account
    other = case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    contact = account.contact_methods.filter(kind="email").first()
    notice = OwnerNotice.objects.create(
        tenant=acme,
        account=account,
        event=NoticeEvent.PASSKEY_ADDED,
        contact=contact,
        recipient="owner",
        address=contact.value,
    )

    with django_capture_on_commit_callbacks(execute=True):
        account_repudiate(notice=notice)

    for case in (executed, other):
        case.refresh_from_db()
        assert case.status == "frozen"
        [frozen] = events(acme, "case.repudiated", case)
        assert frozen.data["via_account_notice"] == NoticeEvent.PASSKEY_ADDED
    [repudiated] = events(acme, "owner.account_repudiated")
    assert repudiated.data["cases_frozen"] == [executed.pk, other.pk]
    assert revert_pending(execution_of(executed))  # the manual connector's revert steps
    assert execution_of(executed).revert_ran_at is not None
    assert RecoveryArtifact.objects.get(case=executed).revoke_reason == "repudiated"


def test_a_repudiation_as_the_app_role_pages_the_security_contact(
    acme, app_role, django_capture_on_commit_callbacks
):
    """Issue 16: "this wasn't me" pages the tenant's security contact when the request runs as
    the restricted database role under row-level security (the page once read the account
    after the commit, outside the tenant's scope, and was lost)."""
    security_contact(acme, "soc@acme.test")
    case = executed_manual(acme)
    notices_planned(acme)
    notice = OwnerNotice.objects.filter(case=case, contact__kind="email").first()
    mail.outbox.clear()
    with as_app_role(None):
        with django_capture_on_commit_callbacks() as after_commit:
            case_repudiate(notice=OwnerNotice.objects.get(pk=notice.pk))
        for callback in after_commit:  # each as after the commit: no tenant in scope
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('vouchsafe.tenant_ids', '', true)")
            callback()
        assert alerts_routed(acme) >= 1  # what the worker does next
    [page] = [message for message in mail.outbox if message.to == ["soc@acme.test"]]
    assert page.subject == f"URGENT: Vouchsafe alert in {acme.name}: repudiation"
    assert f"On: case {case.pk}" in page.body
    assert f"/review/{case.pk}/" in page.body
    assert case.account.username not in page.body  # the console names the account

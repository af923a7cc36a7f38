"""Execution, artifacts, owner notices and "this wasn't me" (R-29 to R-42, AS-07, AS-09)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from audit.models import AuditEvent
from config.celery import app as celery_app
from recovery.artifacts.models import RecoveryArtifact
from recovery.artifacts.services import ArtifactRefused, artifact_consume, artifact_sweep
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services import case_open
from recovery.cases.services.execution import case_close, case_execute
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notice_send
from tenants.choices import Role
from tenants.exceptions import DomainError, PolicyDenied

from ... import factories
from ..casework import contact
from .helpers import last_recovery_mail, link_token, owner_email, ready_case

pytestmark = pytest.mark.django_db


def _events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def _executed(tenant, **attributes) -> tuple[RecoveryCase, str]:
    """An executed T0 password reset and the token the owner received by email."""
    case = ready_case(tenant, case_type="password_reset", **attributes)
    owner_email(case)
    agent = factories.staff(Role.AGENT, tenant=tenant)
    case = factories.execute(case, agent)
    factories.notices_planned(tenant)  # what a worker does once the execution has committed
    return case, link_token(last_recovery_mail().body)


def test_execution_sends_the_link_to_the_owner_and_keeps_only_a_hash(acme):
    case, token = _executed(acme)
    assert case.status == "executed"
    artifact = RecoveryArtifact.objects.get(case=case)
    assert artifact.status == "active" and token not in artifact.secret_hash
    assert len(token) >= 22  # 128 bits, URL-safe base64
    issued = _events(acme, "artifact.issued")[-1]
    assert token not in json.dumps(issued.data) and issued.data["sent_to"].startswith("o***@")
    executed = _events(acme, "case.executed")[-1]
    assert executed.data["connector"] == CaseExecution.objects.get(case=case).connector
    assert executed.data["path"]


def test_the_artifact_works_once_and_a_second_use_is_recorded_and_alerted(acme):
    _case, token = _executed(acme)
    artifact_consume(token=token, purpose="password")
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="password")
    assert _events(acme, "token.reuse_attempt")
    assert any(e.data.get("type") == "token_reuse" for e in _events(acme, "alert.raised"))


def test_an_unknown_token_gets_the_same_answer_as_a_used_one(acme):
    with pytest.raises(ArtifactRefused) as unknown:
        artifact_consume(token="not-a-token", purpose="password")
    _case, token = _executed(acme)
    artifact_consume(token=token, purpose="password")
    with pytest.raises(ArtifactRefused) as used:
        artifact_consume(token=token, purpose="password")
    assert unknown.value.message == used.value.message and unknown.value.code == used.value.code


def test_expiry_is_checked_at_use_by_database_time_even_with_no_sweep(acme):
    """AS-07 step 2: the pass presented after its hour is refused whatever the workers do."""
    case, token = _executed(acme)
    RecoveryArtifact.objects.filter(case=case).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="password")
    assert _events(acme, "token.expired_presented")
    assert RecoveryArtifact.objects.get(case=case).status == "active"  # the sweep revokes it


def test_an_artifact_for_another_purpose_is_refused_and_logged(acme):
    _case, token = _executed(acme)
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="mfa")
    assert _events(acme, "token.purpose_mismatch")
    artifact_consume(token=token, purpose="password")  # still usable for its own purpose


def test_the_sweep_revokes_each_expired_artifact_once(acme):
    first, _ = _executed(acme)
    second, _ = _executed(acme)
    RecoveryArtifact.objects.filter(case__in=[first, second]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert artifact_sweep() == 2
    assert artifact_sweep() == 0
    revoked = [e for e in _events(acme, "artifact.revoked") if e.data["reason"] == "expired"]
    assert len(revoked) == 2
    assert set(RecoveryArtifact.objects.filter(tenant=acme).values_list("status", flat=True)) == {
        "revoked"
    }


def test_a_newer_artifact_for_the_account_revokes_the_older(acme):
    case, old_token = _executed(acme)
    account = case.account
    again = ready_case(acme, case_type="password_reset")
    RecoveryCase.objects.filter(pk=again.pk).update(account=account)
    again.refresh_from_db()
    factories.execute(again, factories.staff(Role.AGENT, tenant=acme))
    statuses = dict(RecoveryArtifact.objects.filter(account=account).values_list("case", "status"))
    assert statuses == {case.pk: "revoked", again.pk: "active"}
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=old_token, purpose="password")


def test_closing_the_case_revokes_its_artifact(acme):
    case, token = _executed(acme)
    agent = factories.staff(Role.AGENT, tenant=acme)
    case_close(actor=agent, case=case, reason="owner reset the password")
    assert RecoveryArtifact.objects.get(case=case).revoke_reason == "case_closed"
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="password")


def test_only_a_ready_case_executes(acme):
    case = ready_case(acme)
    agent = factories.staff(Role.AGENT, tenant=acme)
    owner_email(case)
    factories.execute(case, agent)
    with pytest.raises(DomainError) as twice:
        case_execute(actor=agent, case=case)
    assert twice.value.code == "case.wrong_state"


def test_an_ai_assistant_cannot_execute(acme):
    case = ready_case(acme)
    principal = factories.api_key(acme, kind="ai_assistant").key.principal
    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=principal, case=case)
    assert refused.value.code == "ai.action_blocked"


# --- owner notices (R-38 to R-42) -----------------------------------------------------------


def test_notices_go_to_every_address_held_before_the_case_and_never_a_new_one(acme):
    agent = factories.staff(Role.AGENT, tenant=acme)
    account = factories.make_account(acme)
    contact(account, "email", "old@example.test", age_days=300)
    contact(account, "mobile", "+15550001111", age_days=300)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    contact(account, "email", "attacker@example.test", age_days=0)  # added during the case
    factories.notices_planned(acme)  # the worker runs after it was added: still not told
    addresses = set(OwnerNotice.objects.filter(case=case).values_list("address", flat=True))
    assert addresses == {"old@example.test", "+15550001111"}


def test_a_notice_is_sent_once_and_carries_no_secret_but_a_this_wasnt_me_link(acme):
    case, token = _executed(acme)
    notices = OwnerNotice.objects.filter(case=case, event="artifact_issued", contact__kind="email")
    notice = notices.get()
    mail.outbox.clear()
    assert notice_send(notice_id=notice.pk) == "sent"
    assert notice_send(notice_id=notice.pk) == "skipped"
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "/not-me/" in body and token not in body


def test_a_failed_notice_blocks_t1_execution_and_raises_an_alert(acme):
    """R-42: nothing listens on port 1, so the delivery really fails."""
    case = ready_case(acme, groups=["finance"])
    owner_email(case)
    OwnerNotice.objects.filter(case=case).delete()
    OwnerNotice.objects.create(
        tenant=acme, case=case, event="case_opened", recipient="owner", address="o@example.test"
    )
    notice = OwnerNotice.objects.get(case=case)
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    with override_settings(EMAIL_BACKEND=smtp, EMAIL_PORT=1):  # the case's codes went earlier
        assert notice_send(notice_id=notice.pk) == "failed"
    assert any(e.data.get("type") == "notification_failed" for e in _events(acme, "alert.raised"))
    executor = factories.staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as blocked:  # a T1 execution: the executor's step-up
        case_execute(
            actor=executor,
            case=case,
            step_up=factories.step_up(executor, case=case, action="execute"),
        )
    assert blocked.value.code == "notice.delivery_failed"


def test_t1_notices_also_reach_the_security_contact(acme):
    factories.security_contact(acme, "soc@acme.example")
    account = factories.make_account_with(acme, groups=["finance"])  # T1, no manager on record
    contact(account, "email", "owner@acme.example")
    agent = factories.staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    factories.notices_planned(acme)
    recipients = set(OwnerNotice.objects.filter(case=case).values_list("recipient", flat=True))
    assert recipients == {"owner", "security_contact"}


# --- "this wasn't me" (R-41) ----------------------------------------------------------------


def _not_me_link(case: RecoveryCase) -> str:
    notice = OwnerNotice.objects.filter(case=case, contact__kind="email").first()
    mail.outbox.clear()
    notice_send(notice_id=notice.pk)
    body = mail.outbox[0].body
    return body[body.index("/not-me/") : body.index("/", body.index("/not-me/") + 8) + 1]


def test_this_wasnt_me_freezes_revokes_and_alerts_and_a_get_changes_nothing(acme):
    factories.security_contact(acme, "soc@acme.example")
    case, token = _executed(acme)
    path = _not_me_link(case)
    browser = Client()
    assert browser.get(path).status_code == 200
    assert RecoveryCase.objects.get(pk=case.pk).status == "executed"
    assert browser.post(path).status_code == 200
    case.refresh_from_db()
    assert case.status in {"frozen", "reverted"}
    assert ProtectedAccount.objects.get(pk=case.account_id).frozen_at is not None
    assert RecoveryArtifact.objects.get(case=case).revoke_reason == "repudiated"
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="password")
    assert any(e.data.get("type") == "repudiation" for e in _events(acme, "alert.raised"))
    assert len(_events(acme, "case.repudiated")) == 1
    browser.post(path)  # a second click changes nothing more
    assert len(_events(acme, "case.repudiated")) == 1


def test_a_forged_not_me_link_is_refused(acme):
    response = Client().post("/not-me/forged-token/")
    assert response.status_code == 404


def test_a_recovery_link_page_needs_a_post_to_use_the_token(acme):
    case, token = _executed(acme)
    browser = Client()
    assert browser.get(f"/recover/{token}/").status_code == 200
    assert RecoveryArtifact.objects.get(case=case).status == "active"
    opened = browser.post(f"/recover/{token}/")  # used once: the owner portal's session
    assert opened.status_code == 302 and opened.url == "/owner/recovery/"
    assert RecoveryArtifact.objects.get(case=case).status == "consumed"
    assert browser.post(f"/recover/{token}/").status_code == 410


# --- re-establishment window (R-35, AS-09) --------------------------------------------------


def test_a_new_mfa_device_inside_the_window_raises_an_alert(
    acme, django_capture_on_commit_callbacks
):
    """AS-09: after a T1 recovery, a second MFA device within minutes is flagged, and (R-35)
    the account frozen; the manual connector leaves the undo to a person."""
    from integrations.services import event_ingest

    case = ready_case(acme, groups=["finance"])
    owner_email(case)
    OwnerNotice.objects.filter(case=case).update(status="sent")
    executor = factories.staff(Role.AGENT, tenant=acme)  # T1: executes with a fresh step-up
    case = case_execute(
        actor=executor, case=case, step_up=factories.step_up(executor, case=case, action="execute")
    )
    account = ProtectedAccount.objects.get(pk=case.account_id)
    assert account.restricted_until > timezone.now() + timedelta(hours=71)
    admin = factories.staff(Role.SECURITY_OFFICER, tenant=acme)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # the worker's task, in-process after the commit
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event_ingest(
                actor=admin,
                tenant=acme,
                event_type="mfa_device_added",
                account_external_id=account.external_id,
                occurred_at=timezone.now(),
                data={"device_type": "authenticator_app"},
            )
    finally:
        celery_app.conf.task_always_eager = eager
    alerts = [
        e for e in _events(acme, "alert.raised") if e.data.get("type") == "post_recovery_change"
    ]
    assert len(alerts) == 1 and alerts[0].target_id == str(case.pk)
    assert alerts[0].data["undo"] == "manual"
    assert ProtectedAccount.objects.get(pk=account.pk).frozen_at is not None


def test_with_the_manual_connector_the_agent_records_the_path_followed(acme):
    case, _ = _executed(acme)
    execution = CaseExecution.objects.get(case=case)
    assert execution.connector == "manual" and execution.detail["requires_confirmation"]
    from recovery.cases.services.execution import case_manual_step_record

    agent = factories.staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as short:
        case_manual_step_record(actor=agent, case=case, path_used="done")
    assert short.value.code == "execution.path_invalid"
    case_manual_step_record(
        actor=agent, case=case, path_used="Entra admin center > Users > jdoe > Reset password"
    )
    execution.refresh_from_db()
    assert execution.detail["path_used"].endswith("Reset password")
    assert _events(acme, "case.manual_step_recorded")[-1].data["expected"] == execution.path


def test_repudiation_works_as_the_restricted_app_role(acme, app_role):
    """The owner has no session: the service itself must open the notice's tenant scope."""
    from django.db import connection

    from recovery.cases.services.repudiation import case_repudiate
    from recovery.notifications.services import notice_from_token, repudiation_token

    from ...approle import as_app_role

    case, _ = _executed(acme)
    notice = notice_from_token(repudiation_token(OwnerNotice.objects.filter(case=case).first()))
    with connection.cursor() as cursor:  # forget the scope the lookup above left behind
        cursor.execute("SELECT set_config('vouchsafe.tenant_ids', '', true)")
    with as_app_role(None):
        assert case_repudiate(notice=notice).status in {"frozen", "reverted"}

"""THREATS AS-02 (owner notices), AS-07 and AS-09, end to end through the services and the API.

Each scenario follows the threat's steps on one tenant, with cases brought to `ready` through
the real services, executed through `POST /api/v1/t/<tenant>/cases/<id>/execute/` where the
threat has an agent act, and artifacts read from the owner's mailbox or SMS outbox as the
owner would. Where the implementation names things differently from THREATS.md (the audit
action `artifact.revoked` for `token.revoked`, the alert type `post_recovery_change` for
`post_recovery_persistence`) the tests use the implementation's names.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core import mail
from django.db.models.functions import Now
from django.test import Client, TestCase
from django.utils import timezone

from audit.models import AuditEvent
from audit.verify import verify_chain
from config.celery import app as celery_app
from integrations.services import event_ingest
from recovery.artifacts.models import RecoveryArtifact
from recovery.artifacts.services import ArtifactRefused, artifact_consume, artifact_sweep
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_cancel, case_open, case_release_cooled, case_submit
from recovery.cases.services.execution import case_close
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notice_send
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import Tenant

from ... import factories
from ...api.conftest import api, key_client, staff_api_client
from ..casework import approved, contact, signal
from .helpers import link_token, ready_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    """Where the file SMS provider writes this test's texts (the owner's phone)."""
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def _texts(outbox: Path, to: str | None = None) -> list[dict]:
    if not outbox.exists():
        return []
    lines = [json.loads(line) for line in outbox.read_text().splitlines()]
    return [line for line in lines if to is None or line["to"] == to]


def _last_pass(outbox: Path) -> str:
    texts = [t["body"] for t in _texts(outbox) if "temporary access pass is" in t["body"]]
    match = re.search(r"temporary access pass is ([A-Za-z0-9_\-]+)\.", texts[-1])
    assert match, texts[-1]
    return match.group(1)


def _events(tenant: Tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        events = events.filter(target_id=str(case.pk))
    return list(events.order_by("seq"))


def _ready_t1(tenant: Tenant, case_type: str, account: ProtectedAccount | None = None):
    """A T1 (finance) case at `ready` with its owner notices sent (R-42 holds T1 until then).

    A second case on the same account within 24 h is a repeat attempt (R-52) and goes to the
    security queue, so security officers work and approve it.
    """
    if account is None:
        case = ready_case(tenant, case_type=case_type, groups=["finance"])
    else:
        officer = factories.staff(Role.SECURITY_OFFICER, tenant=tenant)
        case = case_open(actor=officer, account=account, case_type=case_type, channel="phone")
        assert case.tier == "T1" and case.repeat_attempt
        signal(case, officer, "S2")
        signal(case, officer, "S3")
        case = approved(
            case_submit(actor=officer, case=case),
            factories.staff(Role.SECURITY_OFFICER, tenant=tenant),
        )
        RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
        case = case_release_cooled(case=case)
        assert case.status == "ready", case.status
    assert set(factories.notices_sent(case.tenant)) <= {"sent"}  # the workers, meanwhile
    return case


def _execute_over_api(tenant: Tenant, case: RecoveryCase) -> RecoveryCase:
    """Execute on a person's signed-in session with a fresh passkey answer (a T1 case needs a
    person's step-up; no key executes it): an agent, or, for a case in the security
    queue (only security officers work it), a security officer. Neither approved the case."""
    role = Role.SECURITY_OFFICER if case.route == "security" else Role.AGENT
    executor = factories.staff(role, tenant=tenant)
    client = staff_api_client(executor)
    response = client.post(
        api(tenant, f"cases/{case.pk}/execute/"),
        {"step_up_assertion": factories.step_up_assertion(executor, case=case, action="execute")},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "executed"
    return RecoveryCase.objects.get(pk=case.pk)


# --- AS-02: owner notices when a case opens ------------------------------------------------


def test_as02_opening_a_case_notifies_the_owners_preexisting_addresses_and_manager(
    acme, sms_outbox
):
    """AS-02 (notification lines): the victim's other notification addresses, the email and
    the manager held for years, hear that a recovery was attempted, each with a 'this wasn't
    me' link and no secret; an address the attacker got added after the case opened does not."""
    cfo = factories.make_account_with(acme, groups=["finance"])  # T1
    contact(cfo, "mobile", "+15550101010", age_days=3 * 365, sim_days=2)  # ported 2 days ago
    contact(cfo, "email", "cfo@acme.example", age_days=3 * 365)
    contact(cfo, "manager", "ceo@acme.example", age_days=3 * 365)
    agent = factories.staff(Role.AGENT, tenant=acme)

    case = case_open(actor=agent, account=cfo, case_type="mfa_reset", channel="phone")
    contact(cfo, "email", "cfo.personal@gmail.example", age_days=0)  # dictated, added now
    factories.notices_planned(acme)  # the worker runs after it was added: it is not told

    opened = OwnerNotice.objects.filter(case=case, event="case_opened")
    by_address = {n.address: n for n in opened}
    assert {"cfo@acme.example", "ceo@acme.example"} <= set(by_address)
    assert by_address["ceo@acme.example"].recipient == "manager"
    assert "cfo.personal@gmail.example" not in by_address
    mail.outbox.clear()
    assert set(factories.notices_sent(case.tenant)) <= {"sent"}  # the workers, meanwhile
    sent_to = {m.to[0]: m for m in mail.outbox}
    assert {"cfo@acme.example", "ceo@acme.example"} <= set(sent_to)
    assert "cfo.personal@gmail.example" not in sent_to
    for message in (sent_to["cfo@acme.example"], sent_to["ceo@acme.example"]):
        assert "recovery case was opened" in message.subject
        assert "/not-me/" in message.body
        assert "temporary access pass is" not in message.body
    assert len(_events(acme, "case.opened", case)) == 1
    sent = {e.data["notice"] for e in _events(acme, "notice.sent", case)}
    assert sent == {n.pk for n in opened}
    # the case-opened notice sends nothing the attacker could use, whatever the phone is
    assert all("pass is" not in t["body"] for t in _texts(sms_outbox))


def test_as02_without_a_manager_the_tenants_security_contact_is_the_designee(acme):
    factories.security_contact(acme, "soc@acme.example")
    cfo = factories.make_account_with(acme, groups=["finance"])
    contact(cfo, "email", "cfo@acme.example", age_days=3 * 365)
    agent = factories.staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=cfo, case_type="mfa_reset", channel="phone")
    factories.notices_planned(acme)
    recipients = dict(OwnerNotice.objects.filter(case=case).values_list("address", "recipient"))
    assert recipients == {"cfo@acme.example": "owner", "soc@acme.example": "security_contact"}


# --- AS-07: token not revoked after expiry, cancellation or supersession --------------------


def test_as07_a_pass_presented_61_minutes_later_is_refused_without_any_sweep(acme, sms_outbox):
    """Steps 1-2: the agent's 1-hour pass, presented at +61 min, is refused at use; the row is
    still `active` (no sweep ran), so the refusal comes from the expiry check itself."""
    case = _execute_over_api(acme, _ready_t1(acme, "temporary_access"))
    token = _last_pass(sms_outbox)
    artifact = RecoveryArtifact.objects.get(case=case)
    assert artifact.kind == "temporary_access_pass"
    assert artifact.expires_at - artifact.issued_at <= timedelta(hours=1)
    RecoveryArtifact.objects.filter(pk=artifact.pk).update(  # the clock moves on 61 min
        issued_at=artifact.issued_at - timedelta(minutes=61),
        expires_at=artifact.expires_at - timedelta(minutes=61),
    )
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="mfa")
    assert RecoveryArtifact.objects.get(pk=artifact.pk).status == "active"
    assert len(_events(acme, "token.expired_presented", case)) == 1
    assert not _events(acme, "artifact.consumed", case)


def test_as07_with_the_application_clock_frozen_database_time_still_decides(acme, sms_outbox):
    """The MUST's frozen clock: the app's clock is stuck half an hour before expiry, the
    database's is a minute past it; the pass is refused."""
    case = _execute_over_api(acme, _ready_t1(acme, "temporary_access"))
    token = _last_pass(sms_outbox)
    RecoveryArtifact.objects.filter(case=case).update(expires_at=Now() - timedelta(minutes=1))
    expires_at = RecoveryArtifact.objects.get(case=case).expires_at
    frozen = expires_at - timedelta(minutes=30)
    with mock.patch("django.utils.timezone.now", return_value=frozen):
        assert timezone.now() < expires_at
        with pytest.raises(ArtifactRefused):
            artifact_consume(token=token, purpose="mfa")
    assert RecoveryArtifact.objects.get(case=case).status == "active"


def test_as07_a_newer_pass_for_the_account_supersedes_the_unused_older_one(acme, sms_outbox):
    """Step 3: a second case issues a new pass while the first is unused; the old one is
    refused, recorded as revoked `superseded`, and the new one works."""
    first = _execute_over_api(acme, _ready_t1(acme, "temporary_access"))
    old_token = _last_pass(sms_outbox)
    second = _execute_over_api(acme, _ready_t1(acme, "temporary_access", account=first.account))
    new_token = _last_pass(sms_outbox)
    assert new_token != old_token

    with pytest.raises(ArtifactRefused):
        artifact_consume(token=old_token, purpose="mfa")
    old = RecoveryArtifact.objects.get(case=first)
    assert (old.status, old.revoke_reason) == ("revoked", "superseded")
    revoked = _events(acme, "artifact.revoked", first)
    assert [e.data["reason"] for e in revoked] == ["superseded"]
    assert revoked[0].data["temporary_access_ended"]["connector"] == "manual"
    assert _events(acme, "token.reuse_attempt", first)
    assert artifact_consume(token=new_token, purpose="mfa").case_id == second.pk


def test_as07_closing_the_case_revokes_its_unexpired_link(acme):
    """Step 4: the agent ends the case while the emailed link is unexpired. An executed case
    cannot be cancelled (refused as `case.wrong_state`, over the API too); closing it is how it
    ends, and that revokes the link."""
    case = _execute_over_api(acme, _ready_t1(acme, "password_reset"))
    token = link_token(next(m for m in mail.outbox if "recovery link" in m.subject).body)
    agent = factories.staff(Role.AGENT, tenant=acme)
    with pytest.raises(DomainError) as refused:
        case_cancel(actor=agent, case=case, reason="caller hung up")
    assert refused.value.code == "case.wrong_state"
    response = key_client(acme).post(
        api(acme, f"cases/{case.pk}/cancel/"), {"reason": "caller hung up"}, format="json"
    )
    assert response.status_code == 409
    assert RecoveryArtifact.objects.get(case=case).status == "active"

    case_close(actor=agent, case=case, reason="owner called back: not needed")
    assert Client().post(f"/recover/{token}/").status_code == 410
    artifact = RecoveryArtifact.objects.get(case=case)
    assert (artifact.status, artifact.revoke_reason) == ("revoked", "case_closed")
    assert [e.data["reason"] for e in _events(acme, "artifact.revoked", case)] == ["case_closed"]


def test_as07_cancelling_a_case_revokes_any_artifact_it_holds(acme):
    """R-33 cancellation: `case_cancel` revokes with reason `case_cancelled`. Only an executed
    case holds an artifact and it cannot be cancelled, so the row is put on a ready case here
    to prove the revocation path itself."""
    executed = _execute_over_api(acme, _ready_t1(acme, "password_reset"))
    ready = _ready_t1(acme, "password_reset")
    RecoveryArtifact.objects.filter(case=executed).update(case=ready, account=ready.account)
    case_cancel(actor=factories.staff(Role.AGENT, tenant=acme), case=ready, reason="duplicate")
    artifact = RecoveryArtifact.objects.get(case=ready)
    assert (artifact.status, artifact.revoke_reason) == ("revoked", "case_cancelled")
    assert [e.data["reason"] for e in _events(acme, "artifact.revoked", ready)] == [
        "case_cancelled"
    ]


def test_as07_after_the_sweep_gina_has_no_active_artifact(acme, sms_outbox):
    """Step 5: superseded, expired: once the sweeper runs, 'active artifacts for gina' is 0,
    each revocation recorded once with its reason; a second sweep records nothing more."""
    first = _execute_over_api(acme, _ready_t1(acme, "temporary_access"))
    gina = first.account
    second = _execute_over_api(acme, _ready_t1(acme, "temporary_access", account=gina))
    RecoveryArtifact.objects.filter(case=second).update(expires_at=Now() - timedelta(seconds=1))
    assert RecoveryArtifact.objects.filter(account=gina, status="active").count() == 1

    assert artifact_sweep() >= 1
    assert artifact_sweep() == 0
    assert RecoveryArtifact.objects.filter(account=gina, status="active").count() == 0
    reasons = {
        case.pk: [e.data["reason"] for e in _events(acme, "artifact.revoked", case)]
        for case in (first, second)
    }
    assert reasons == {first.pk: ["superseded"], second.pk: ["expired"]}
    assert verify_chain(acme.pk, acme.slug).intact


# --- AS-09: recovery followed by MFA re-enrolment and a mailbox forwarding rule --------------


def _ingest(tenant: Tenant, account: ProtectedAccount, event_type: str, **data) -> None:
    """The event stored; then, as a worker does once it has committed, the window's task (R-35)
    runs."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            event_ingest(
                actor=factories.staff(Role.SECURITY_OFFICER, tenant=tenant),
                tenant=tenant,
                event_type=event_type,
                account_external_id=account.external_id,
                occurred_at=timezone.now(),
                data=data,
            )
    finally:
        celery_app.conf.task_always_eager = eager


def _in_order(trail: list[str], wanted: list[str]) -> bool:
    """`wanted` occurs in `trail` as a subsequence (other events may come between)."""
    remaining = iter(trail)
    return all(action in remaining for action in wanted)


def _alerts(tenant: Tenant, case: RecoveryCase, kind: str) -> list[AuditEvent]:
    return [e for e in _events(tenant, "alert.raised", case) if e.data.get("type") == kind]


def test_as09_persistence_after_recovery_alerts_and_this_wasnt_me_freezes_and_revokes(
    acme, sms_outbox, django_capture_on_commit_callbacks
):
    factories.security_contact(acme, "soc@acme.example")
    case = _execute_over_api(acme, _ready_t1(acme, "mfa_reset"))  # the AP clerk, T1
    clerk = ProtectedAccount.objects.get(pk=case.account_id)
    assert clerk.restricted_until > timezone.now() + timedelta(hours=71)  # R-35 window
    token = _last_pass(sms_outbox)

    # Steps 1-3: a second MFA device within minutes, then an 'invoice' forwarding rule.
    _ingest(acme, clerk, "mfa_device_added", device_type="authenticator_app")
    _ingest(
        acme,
        clerk,
        "mailbox_rule_created",
        rule_name="invoice -> mark read",
        forwards_to="ap.payments@evil.example",
    )
    _ingest(acme, clerk, "sign_in_new_asn", asn=64500)  # not a persistence change
    alerts = _alerts(acme, case, "post_recovery_change")
    assert [a.data["kind"] for a in alerts] == ["mfa_enrolled", "mailbox_rule"]
    # the first change froze the account pending review.
    assert ProtectedAccount.objects.get(pk=clerk.pk).frozen_at is not None

    # The owner, on the address held before the case, says "this wasn't me".
    factories.notices_planned(acme)
    notice = OwnerNotice.objects.filter(case=case, event="executed", contact__kind="email").first()
    assert notice is not None
    mail.outbox.clear()
    assert notice_send(notice_id=notice.pk) == "sent"
    body = mail.outbox[0].body
    assert token not in body
    path = re.search(r"/not-me/[^/\s]+/", body).group(0)
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post(path).status_code == 200

    case.refresh_from_db()
    assert case.status in {"frozen", "reverted"}
    assert ProtectedAccount.objects.get(pk=clerk.pk).frozen_at is not None
    artifact = RecoveryArtifact.objects.get(case=case)
    assert (artifact.status, artifact.revoke_reason) == ("revoked", "repudiated")
    with pytest.raises(ArtifactRefused):
        artifact_consume(token=token, purpose="mfa")
    assert _alerts(acme, case, "repudiation")
    assert factories.alerts_routed(acme) >= 1  # the worker sends the alert on its routes
    assert any(m.to == ["soc@acme.example"] and "URGENT" in m.subject for m in mail.outbox)

    # The full chain, in order, from recovery through the alerts to the repudiation.
    trail = [
        e.action
        for e in AuditEvent.objects.filter(tenant=acme, target_id=str(case.pk)).order_by("seq")
    ]
    assert _in_order(
        trail,
        [
            "case.opened",
            "case.submitted",
            "artifact.issued",
            "case.executed",
            "alert.raised",  # second MFA device
            "alert.raised",  # forwarding rule
            "artifact.revoked",
            "case.repudiated",
            "alert.raised",  # repudiation
        ],
    ), trail
    assert verify_chain(acme.pk, acme.slug).intact


def test_as09_the_same_changes_after_the_window_raise_nothing(acme, sms_outbox):
    case = _execute_over_api(acme, _ready_t1(acme, "mfa_reset"))
    clerk = ProtectedAccount.objects.get(pk=case.account_id)
    ProtectedAccount.objects.filter(pk=clerk.pk).update(
        restricted_until=timezone.now() - timedelta(seconds=1)
    )
    clerk.refresh_from_db()
    _ingest(acme, clerk, "mfa_device_added", device_type="authenticator_app")
    _ingest(acme, clerk, "mailbox_rule_created", rule_name="invoice")
    assert _alerts(acme, case, "post_recovery_change") == []
    assert ProtectedAccount.objects.get(pk=clerk.pk).frozen_at is None

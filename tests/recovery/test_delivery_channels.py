"""R-04 at delivery: artifacts and owner notices never go to a contact R-04 excludes now.

One rule (`recovery.cases.channels.channel_problem`) decides for codes, attestation links,
artifacts and notices. A SIM change or port-out reported by an integration moves the phone's
risk timestamp in the ingest's own transaction, so the very next request already refuses it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from integrations.services import event_ingest
from recovery.artifacts.models import RecoveryArtifact
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services import case_open, case_submit
from recovery.challenges.services import challenge_send
from recovery.models import ContactMethod
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import notice_send
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import User

from ..api.conftest import api, key_client
from ..factories import execute, make_account_with, notices_planned, staff
from .casework import contact, signal

pytestmark = pytest.mark.django_db

MOBILE = "+15550104321"


@pytest.fixture
def sms_outbox(settings, tmp_path) -> Path:
    """The file the development SMS provider writes: the owner's phone."""
    settings.SMS_OUTBOX_PATH = tmp_path / "sms.jsonl"
    return settings.SMS_OUTBOX_PATH


def texts(outbox: Path) -> list[dict]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines()]


def events(tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        found = found.filter(target_id=str(case.pk))
    return list(found.order_by("seq"))


def skipped_reasons(tenant, case: RecoveryCase) -> dict[str, set[str]]:
    """masked contact -> the reasons notices to it were skipped."""
    reasons: dict[str, set[str]] = {}
    for event in events(tenant, "notice.skipped", case):
        for item in event.data["skipped"]:
            reasons.setdefault(item["to"], set()).add(item["reason"])
    return reasons


def pass_case(tenant, agent: User | None = None) -> RecoveryCase:
    """A T0 temporary-access case at `ready`, on an account whose only contact is the email
    (held for 400 days) its S2 code went to."""
    agent = agent or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant)
    case = case_open(actor=agent, account=account, case_type="temporary_access", channel="phone")
    signal(case, agent, "S2")
    case = case_submit(actor=agent, case=case)
    assert case.status == "ready", case.status
    return case


# --- artifacts --------------------------------------------------------------------------------


def test_a_pass_goes_to_the_mobile_when_the_mobile_is_eligible(acme, sms_outbox):
    """The control for the next test: a pass prefers the mobile."""
    case = pass_case(acme)
    mobile = contact(case.account, "mobile", MOBILE)
    execute(case, staff(Role.AGENT, tenant=acme))
    assert RecoveryArtifact.objects.get(case=case).sent_to_id == mobile.pk
    assert [t["to"] for t in texts(sms_outbox) if "access pass is" in t["body"]] == [MOBILE]


def test_a_pass_skips_a_mobile_whose_sim_changed_and_goes_to_the_next_eligible_channel(
    acme, sms_outbox
):
    case = pass_case(acme)
    contact(case.account, "mobile", MOBILE, sim_days=1)  # swapped yesterday
    mail.outbox.clear()

    execute(case, staff(Role.AGENT, tenant=acme))

    artifact = RecoveryArtifact.objects.get(case=case)
    assert artifact.sent_to.kind == "email"
    assert not [t for t in texts(sms_outbox) if "access pass is" in t["body"]]
    assert any("temporary access pass is" in m.body for m in mail.outbox)
    # The notices of the execution skip the swapped number too, and say why.
    notices_planned(acme)
    assert not OwnerNotice.objects.filter(case=case, contact__kind="mobile").exists()
    assert skipped_reasons(acme, case)["***21"] == {"sim_change_recent"}


def test_a_pass_skips_a_mobile_still_in_quarantine(acme, sms_outbox):
    case = pass_case(acme)
    mobile = contact(case.account, "mobile", MOBILE, age_days=3)  # before the case, 3 days ago
    execute(case, staff(Role.AGENT, tenant=acme))
    assert RecoveryArtifact.objects.get(case=case).sent_to_id != mobile.pk
    assert not texts(sms_outbox)


def test_execution_is_refused_when_no_eligible_channel_remains_and_nothing_is_half_written(
    acme, sms_outbox
):
    """Only a swapped mobile is left: refused with its code before the connector is called;
    no artifact, no execution record, the case stays ready, and the refusal is on record."""
    agent = staff(Role.AGENT, tenant=acme)
    case = pass_case(acme, agent)
    # The S2 email is gone from the system of record; the mobile is all that is left.
    ContactMethod.objects.filter(account=case.account).update(replaced_at=timezone.now())
    contact(case.account, "mobile", MOBILE, sim_days=2)

    with (
        mock.patch("recovery.connectors.connector_for") as connector_for,
        pytest.raises(InvalidInput) as refused,
    ):
        execute(case, agent)
    assert refused.value.code == "artifact.no_eligible_channel"
    assert "sim_change_recent" in refused.value.message
    connector_for.assert_not_called()
    assert not RecoveryArtifact.objects.filter(case=case).exists()
    assert not CaseExecution.objects.filter(case=case).exists()
    assert RecoveryCase.objects.get(pk=case.pk).status == "ready"
    assert not texts(sms_outbox)
    [failed] = events(acme, "case.execution_failed", case)
    assert failed.data["code"] == "artifact.no_eligible_channel"
    assert not events(acme, "case.executed", case) and not events(acme, "artifact.issued", case)


def test_without_any_contact_on_record_the_old_code_still_answers(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = pass_case(acme, agent)
    ContactMethod.objects.filter(account=case.account).update(replaced_at=timezone.now())
    with pytest.raises(InvalidInput) as refused:
        execute(case, agent)
    assert refused.value.code == "artifact.no_channel"


# --- owner notices ----------------------------------------------------------------------------


def test_notices_skip_a_swapped_number_and_a_quarantined_contact_and_record_why(acme, sms_outbox):
    account = make_account_with(acme)
    email = contact(account, "email", "owner@acme.example")
    contact(account, "mobile", MOBILE, sim_days=1)
    contact(account, "desk_phone", "+15550107777", age_days=3)
    case = case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    notices_planned(acme)  # what a worker does once the opening has committed

    notices = OwnerNotice.objects.filter(case=case, event="case_opened")
    assert [n.contact_id for n in notices] == [email.pk]
    assert skipped_reasons(acme, case) == {
        "***21": {"sim_change_recent"},
        "***77": {"contact_changed_in_quarantine"},
    }
    for notice in notices:
        assert notice_send(notice_id=notice.pk) == "sent"
    assert not texts(sms_outbox)


def test_a_notice_planned_before_a_sim_change_is_not_sent_to_that_number(acme, sms_outbox):
    """R-04 is checked again when the notice leaves: a swap reported in between stops it, and
    the notice fails like an undeliverable one (a T1/T2 execution waits, R-42)."""
    account = make_account_with(acme)
    contact(account, "email", "owner@acme.example")
    mobile = contact(account, "mobile", MOBILE)
    case = case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    notices_planned(acme)
    to_mobile = OwnerNotice.objects.get(case=case, contact=mobile)
    event_ingest(
        actor=staff(Role.SECURITY_OFFICER, tenant=acme),
        tenant=acme,
        event_type="sim_change",
        account_external_id=account.external_id,
        occurred_at=timezone.now() - timedelta(minutes=1),
        data={"phone_last4": MOBILE[-4:]},
    )

    assert notice_send(notice_id=to_mobile.pk) == "failed"

    to_mobile.refresh_from_db()
    assert to_mobile.error == "not sent: sim_change_recent (R-04)"
    assert not texts(sms_outbox)


# --- ingested carrier events ------------------------------------------------------------------


def ingest_over_api(client, tenant, account, event_type: str = "sim_change", **data):
    return client.post(
        api(tenant, "events/"),
        {
            "event_type": event_type,
            "account_external_id": account.external_id,
            "occurred_at": (timezone.now() - timedelta(minutes=2)).isoformat(),
            "source": "carrier",
            "data": data,
        },
        format="json",
    )


def test_an_ingested_sim_change_refuses_a_code_to_that_number_in_the_very_next_request(acme):
    account = make_account_with(acme)
    mobile = contact(account, "mobile", MOBILE)
    email = contact(account, "email", "owner@acme.example")
    case = case_open(
        actor=staff(Role.AGENT, tenant=acme), account=account, case_type="unlock", channel="phone"
    )
    client = key_client(acme)

    ingested = ingest_over_api(client, acme, account, phone_last4=MOBILE[-4:])
    assert ingested.status_code == 201, ingested.content

    sent = client.post(
        api(acme, f"cases/{case.pk}/challenges/"), {"contact_method_id": mobile.pk}, format="json"
    )
    assert sent.status_code == 403, sent.content
    assert sent.json()["code"] == "evidence.sim_change_recent"
    [signal] = events(acme, "contact.risk_signal")
    assert signal.data["contact"] == mobile.masked
    assert signal.data["event_type"] == "sim_change"
    assert signal.target_id == str(account.pk)
    # The other channel is untouched.
    ok = client.post(
        api(acme, f"cases/{case.pk}/challenges/"), {"contact_method_id": email.pk}, format="json"
    )
    assert ok.status_code == 201, ok.content


def test_an_ingested_port_out_sends_the_next_pass_elsewhere(acme, sms_outbox):
    case = pass_case(acme)
    mobile = contact(case.account, "mobile", MOBILE)
    client = key_client(acme)

    assert ingest_over_api(client, acme, case.account, "port_out").status_code == 201
    executed = client.post(api(acme, f"cases/{case.pk}/execute/"))

    assert executed.status_code == 200, executed.content
    assert RecoveryArtifact.objects.get(case=case).sent_to_id != mobile.pk
    assert not texts(sms_outbox)
    assert ContactMethod.objects.get(pk=mobile.pk).sim_changed_at is not None


def test_a_sim_change_marks_only_the_number_it_names_and_never_moves_back(acme):
    account = make_account_with(acme)
    named = contact(account, "mobile", MOBILE)
    other = contact(account, "mobile", "+15550108888")
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    later = timezone.now() - timedelta(minutes=5)

    for occurred_at in (later, later - timedelta(days=3)):  # the second is older: ignored
        event_ingest(
            actor=officer,
            tenant=acme,
            event_type="sim_change",
            account_external_id=account.external_id,
            occurred_at=occurred_at,
            data={"phone_last4": MOBILE[-4:]},
        )

    named.refresh_from_db()
    other.refresh_from_db()
    assert named.sim_changed_at == later
    assert other.sim_changed_at is None
    assert [e.data["contact"] for e in events(acme, "contact.risk_signal")] == [named.masked] * 2


def test_a_refused_ingest_marks_nothing(acme):
    """The risk timestamp moves in the ingest's transaction: no event stored, no mark."""
    account = make_account_with(acme)
    mobile = contact(account, "mobile", MOBILE)
    with pytest.raises(InvalidInput):
        event_ingest(
            actor=staff(Role.SECURITY_OFFICER, tenant=acme),
            tenant=acme,
            event_type="sim_change",
            account_external_id=account.external_id,
            occurred_at=timezone.now() + timedelta(hours=1),  # in the future: refused
            data={},
        )
    assert ContactMethod.objects.get(pk=mobile.pk).sim_changed_at is None


def test_codes_artifacts_and_notices_share_one_rule(acme):
    """A code to a swapped number is refused with the same reason the notices record."""
    account = make_account_with(acme)
    mobile = contact(account, "mobile", MOBILE, sim_days=1)
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    with pytest.raises(PolicyDenied) as refused:
        challenge_send(actor=agent, case=case, contact_method=mobile)
    notices_planned(acme)
    assert refused.value.code == f"evidence.{next(iter(skipped_reasons(acme, case)['***21']))}"

"""Approvers hear about waiting work (issue 16 part 6): one email per person per minute at
most, naming only the cases that person could decide, the digest on the tenant's chat routes,
and an overdue case escalated once to the security contacts. Django's mail outbox is the SMTP
server; chat routes post to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.detection.models import Alert
from recovery.notifications.approvers import DIGEST_EVERY, approvers_notify, approvers_notify_all
from tenants.choices import Role
from tenants.models import AlertRoute, User

from ..factories import active_grant, alerts_routed, make_provider, security_contact, staff
from ..integrations.hooks import Receiver
from .casework import submitted

pytestmark = pytest.mark.django_db


def person(role: str, **where) -> User:
    """Staff with an email address (the approvers' messages go there)."""
    user = staff(role, **where)
    user.email = f"{user.username}@staff.example.test"
    user.save(update_fields=["email"])
    return user


@pytest.fixture
def agent(acme) -> User:
    return person(Role.AGENT, tenant=acme)


@pytest.fixture
def supervisor(acme) -> User:
    return person(Role.SUPERVISOR, tenant=acme)


def pending_t1(acme, agent) -> RecoveryCase:
    case = submitted(acme, agent, ("S2", "S3"), groups=["finance"])
    assert (case.tier, case.status) == ("T1", "pending_approval")
    return case


def sent_to(user: User) -> list:
    return [message for message in mail.outbox if message.to == [user.email]]


def test_the_people_who_could_decide_get_one_email_naming_the_waiting_cases(
    acme, agent, supervisor
):
    officer = person(Role.SECURITY_OFFICER, tenant=acme)
    first, second = pending_t1(acme, agent), pending_t1(acme, agent)
    mail.outbox.clear()
    assert approvers_notify(tenant_id=acme.pk) == 2
    [message] = sent_to(supervisor)
    assert message.subject == f"Vouchsafe: 2 cases are waiting for your decision in {acme.name}"
    assert f"Case {first.pk}: T1" in message.body and f"Case {second.pk}: T1" in message.body
    assert f"/t/{acme.slug}/review/" in message.body
    assert first.account.username not in message.body  # the console names the account
    assert len(sent_to(officer)) == 1
    assert not sent_to(agent)  # an agent decides nothing
    event = AuditEvent.objects.get(tenant=acme, action="cases.waiting")
    assert [row["case"] for row in event.data["cases"]] == [first.pk, second.pk]
    assert event.data["approvers_told"] == 2


def test_at_most_one_message_a_minute_and_each_case_announced_once(acme, agent, supervisor):
    pending_t1(acme, agent)
    now = timezone.now()
    assert approvers_notify(tenant_id=acme.pk, now=now) == 1
    later = pending_t1(acme, agent)
    mail.outbox.clear()
    assert approvers_notify(tenant_id=acme.pk, now=timezone.now()) == 0  # within the minute
    assert not mail.outbox
    assert approvers_notify(tenant_id=acme.pk, now=timezone.now() + DIGEST_EVERY) == 1
    [message] = sent_to(supervisor)
    assert f"Case {later.pk}:" in message.body
    assert "1 case is waiting" in message.subject  # the first case is not announced again
    mail.outbox.clear()
    assert approvers_notify(tenant_id=acme.pk, now=timezone.now() + 3 * DIGEST_EVERY) == 0
    assert not mail.outbox  # nothing new: nothing sent


def test_someone_who_may_not_decide_a_case_hears_nothing_of_it(acme, agent, supervisor):
    provider = make_provider()
    active_grant(provider, acme, roles=(Role.SUPERVISOR,), tiers=("T0",))
    msp_supervisor = person(Role.SUPERVISOR, provider=provider)
    pending_t1(acme, agent)  # T1: outside the grant's tiers
    mail.outbox.clear()
    approvers_notify(tenant_id=acme.pk)
    assert len(sent_to(supervisor)) == 1
    assert not sent_to(msp_supervisor)


def test_the_digest_goes_to_chat_routes_but_not_to_the_security_contacts_mailbox(
    acme, agent, supervisor
):
    receiver = Receiver()
    try:
        AlertRoute.objects.create(
            tenant=acme,
            kind="slack",
            target=receiver.url.replace("/hooks/vouchsafe", "/slack/approvers"),
            status="active",
        )
        security_contact(acme, "soc@acme.test")
        case = pending_t1(acme, agent)
        approvers_notify(tenant_id=acme.pk)
        mail.outbox.clear()
        alerts_routed(acme)
        [post] = [r for r in receiver.requests if r.path == "/slack/approvers"]
        text = json.loads(post.body)["text"]
        assert text.startswith(f"*Vouchsafe: 1 case(s) waiting for a decision in {acme.name}*")
        assert f"case {case.pk}: T1" in text
        assert not [m for m in mail.outbox if m.to == ["soc@acme.test"]]
    finally:
        receiver.close()


def test_an_overdue_case_escalates_once_to_the_security_contacts(acme, agent, supervisor):
    security_contact(acme, "soc@acme.test")
    case = pending_t1(acme, agent)
    now = timezone.now()
    approvers_notify(tenant_id=acme.pk, now=now)
    assert not Alert.objects.filter(kind="approval_overdue").exists()  # not late yet

    late = now + timedelta(hours=4, minutes=1)  # T1's SLA is 4 h
    approvers_notify(tenant_id=acme.pk, now=late)
    approvers_notify(tenant_id=acme.pk, now=late + DIGEST_EVERY)
    [alert] = Alert.objects.filter(tenant=acme, kind="approval_overdue")
    assert (alert.target_id, alert.count) == (str(case.pk), 1)  # raised once, not every run
    assert alert.facts["sla_seconds"] == 4 * 3600
    mail.outbox.clear()
    alerts_routed(acme)
    [page] = [m for m in mail.outbox if m.to == ["soc@acme.test"]]
    assert page.subject == f"Vouchsafe alert in {acme.name}: approval_overdue"


def test_the_sweep_runs_every_tenant_with_waiting_cases(acme, agent, supervisor):
    pending_t1(acme, agent)
    mail.outbox.clear()
    assert approvers_notify_all() >= 1
    assert len(sent_to(supervisor)) == 1

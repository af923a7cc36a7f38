"""Issue 16, end to end: the owner's "this wasn't me" pages the tenant's security contact within
60 s, on PostgreSQL with a real Celery worker over a private Redis, through a real SMTP server
(aiosmtpd on 127.0.0.1). The contact is configured as an admin would: proposed by one tenant
admin, approved by a second with a fresh code."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from recovery.cases.services import case_open
from recovery.notifications.models import OwnerNotice
from recovery.notifications.services import repudiation_token
from tenants.choices import Role
from tenants.routes import route_approve, route_propose

from ..factories import make_account_with, make_tenant, staff, step_up
from ..recovery.casework import contact
from .private_broker import RedisServer, celery_app_on, free_port, running_worker


class Inbox:
    """aiosmtpd's handler: every message the server accepted, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [message for rcpt, message in self.messages if address in rcpt]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        yield inbox, port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def worker(django_db_setup, smtp) -> Iterator[None]:
    broker = RedisServer()
    broker.start()
    try:
        with celery_app_on(broker.url), running_worker(broker.url, smtp=("127.0.0.1", smtp[1])):
            yield
    finally:
        broker.close()


def _wait_for(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_repudiation_pages_the_security_contact_over_smtp_within_60_s(committed, worker, smtp):
    inbox, _port = smtp
    tenant = make_tenant()
    address = f"soc-{tenant.pk}@example.test"
    first, second = (staff(Role.TENANT_ADMIN, tenant=tenant) for _ in range(2))
    route = route_propose(actor=first, tenant=tenant, kind="email", target=address)
    route_approve(actor=second, route=route, step_up=step_up(second))

    account = make_account_with(tenant)
    contact(account, "email", f"owner-{account.pk}@example.test", age_days=300)
    agent = staff(Role.AGENT, tenant=tenant)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    _wait_for(
        lambda: OwnerNotice.objects.filter(case=case).exists(),
        timeout=60,
        what="the worker plans the owner's notice of the opened case",
    )
    notice = OwnerNotice.objects.filter(case=case, contact__kind="email").first()

    started = time.monotonic()
    assert Client().post(f"/not-me/{repudiation_token(notice)}/").status_code == 200
    subject = f"URGENT: Vouchsafe alert in {tenant.name}: repudiation"

    def pages() -> list[Message]:  # the contact also hears of the case as a designee
        return [message for message in inbox.to(address) if message["Subject"] == subject]

    _wait_for(pages, timeout=60, what="the security contact's page over SMTP")
    elapsed = time.monotonic() - started
    [page] = pages()
    body = page.get_payload(decode=True).decode()
    assert f"/t/{tenant.slug}/review/{case.pk}/" in body
    assert account.username not in body
    print(f"repudiation to page over SMTP: {elapsed:.1f} s")

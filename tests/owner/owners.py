"""Account owners for the portal tests: an account with long-held addresses, an enrolment
link sent and opened through the real services and views (so the client holds the portal
cookie), and the saved codes or passkeys it enrolled."""

from __future__ import annotations

import re

from django.core import mail
from django.test import Client

from audit.context import Actor
from recovery.models import ContactMethod, ProtectedAccount
from recovery.owner.enrolment import enrolment_link_send
from recovery.owner.models import OwnerPortalSession
from tenants.models import Tenant

from ..factories import make_account, unique
from ..recovery.casework import contact

ENROL_PATH = "owner/enrol"


def owner_account(
    tenant: Tenant, *, tier: str = "T0", kinds: tuple[str, ...] = ("email", "mobile")
) -> ProtectedAccount:
    """An account whose system of record has held these addresses for 400 days."""
    account = make_account(tenant, tier=tier)
    values = {
        "email": f"{unique('owner')}@example.test",
        "mobile": "+15550001001",
        "desk_phone": "+15550001002",
        "manager": f"{unique('boss')}@example.test",
    }
    for kind in kinds:
        contact(account, kind, values[kind])
    return account


def token_in(body: str) -> str:
    match = re.search(rf"/{ENROL_PATH}/([A-Za-z0-9_-]+)/", body)
    assert match, body
    return match.group(1)


def last_link_token() -> str:
    assert mail.outbox, "no message was sent"
    return token_in(mail.outbox[-1].body)


def enrolled_client(account: ProtectedAccount, client: Client | None = None) -> Client:
    """A browser (test client) holding an active enrolment session for `account`."""
    client = client or Client()
    enrolment_link_send(account=account, who=Actor.system("test"), via="test")
    response = client.post(f"/{ENROL_PATH}/{last_link_token()}/")
    assert response.status_code == 302, response.content[:500]
    return client


def portal_session(account: ProtectedAccount) -> OwnerPortalSession:
    return OwnerPortalSession.objects.filter(account=account).order_by("-pk").first()


def owner_addresses(account: ProtectedAccount) -> list[ContactMethod]:
    return list(
        ContactMethod.objects.filter(
            account=account, kind__in=["email", "mobile", "desk_phone"], replaced_at__isnull=True
        ).order_by("pk")
    )

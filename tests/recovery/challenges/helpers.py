"""Cases, contacts and the messages a challenge sends, for the challenge tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from auditlog.models import LogEntry
from django.core import mail

from audit.models import AuditEvent
from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import case_open
from recovery.challenges.models import VerificationChallenge
from recovery.models import ContactMethod, ProtectedAccount
from tenants.choices import Role
from tenants.models import Tenant, User

from ...factories import make_account_with, make_user, member, staff, unique
from ..casework import code_in, contact, link_token_in  # noqa: F401 (re-exported)

MOBILE = "+15550100001"
EMAIL = "jamie.home@example.test"
MANAGER_EMAIL = "morgan.boss@example.test"


@dataclass
class Setup:
    tenant: Tenant
    agent: User
    account: ProtectedAccount
    case: RecoveryCase
    mobile: ContactMethod
    email: ContactMethod


def open_case(tenant: Tenant, *, agent: User | None = None, **attributes) -> Setup:
    """An account with a long-held mobile and email, and a case on it collecting evidence."""
    agent = agent or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, **attributes)
    mobile = contact(account, "mobile", MOBILE)
    email = contact(account, "email", EMAIL)
    case = case_open(actor=agent, account=account, case_type="password_reset", channel="phone")
    return Setup(tenant, agent, account, case, mobile, email)


@dataclass
class ManagedSetup(Setup):
    manager: User
    manager_account: ProtectedAccount
    manager_contact: ContactMethod


def open_managed_case(tenant: Tenant, *, manager_opens: bool = False, **attributes) -> ManagedSetup:
    """As `open_case`, for an account whose manager is staff with a sign-in of their own (and,
    with `manager_opens`, an agent of the tenant who opens the case themself)."""
    person = uuid.uuid4()
    manager_account = make_account_with(tenant, external_id=unique("mgr"), person_id=person)
    manager = make_user(person_id=str(person))
    if manager_opens:
        member(manager, Role.AGENT, tenant=tenant)
    base = open_case(
        tenant,
        agent=manager if manager_opens else None,
        manager_external_id=manager_account.external_id,
        **attributes,
    )
    # The manager contact is on the subject's record, held long before the case.
    boss = contact(base.account, "manager", MANAGER_EMAIL)
    return ManagedSetup(
        **base.__dict__, manager=manager, manager_account=manager_account, manager_contact=boss
    )


def sms_sent(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def last_email() -> mail.EmailMessage:
    assert mail.outbox, "no email was sent"
    return mail.outbox[-1]


def events(tenant: Tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def stored_text(tenant: Tenant) -> str:
    """Everything the database holds for the tenant that could carry a secret by mistake:
    challenge rows, evidence rows, audit event data and django-auditlog diffs."""
    parts = [
        json.dumps(list(VerificationChallenge.objects.filter(tenant=tenant).values()), default=str),
        json.dumps(list(Evidence.objects.filter(tenant=tenant).values()), default=str),
        json.dumps(
            list(AuditEvent.objects.filter(tenant=tenant).values_list("data", flat=True)),
            default=str,
        ),
        json.dumps(list(LogEntry.objects.values_list("changes", flat=True)), default=str),
    ]
    return "\n".join(parts)

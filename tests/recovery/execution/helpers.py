"""Cases brought to `ready` through the real services, for execution tests."""

from __future__ import annotations

import re

from django.core import mail

from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_release_cooled, case_submit
from tenants.choices import Role
from tenants.models import Tenant, User

from ...factories import make_account_with, notices_planned, staff
from ..casework import approved, contact, signal


def ready_case(
    tenant: Tenant, agent: User | None = None, *, case_type: str = "unlock", **attributes
) -> RecoveryCase:
    """A case whose evidence (and, above T0, approval and cooling-off) is done."""
    agent = agent or staff(Role.AGENT, tenant=tenant)
    account = make_account_with(tenant, **attributes)
    contact(account)  # the owner's mobile on record for years (temporary access passes go there)
    case = case_open(actor=agent, account=account, case_type=case_type, channel="phone")
    for signal_class in ("S2", "S3") if attributes.get("groups") else ("S2",):
        signal(case, agent, signal_class)
    case = case_submit(actor=agent, case=case)
    if case.status == "pending_approval":
        case = approved(case)
        RecoveryCase.objects.filter(pk=case.pk).update(cooling_off_until=case.created_at)
        case = case_release_cooled(case=case)
    case.refresh_from_db()
    assert case.status == "ready", case.status
    if case.tier != "T0":  # T1/T2 execution waits for them: a worker planned them meanwhile
        notices_planned(tenant)
    return case


def owner_email(case: RecoveryCase) -> None:
    """Give the account an email address held long before the case (for links), unless the
    address its S2 code went to already is one."""
    if not case.account.contact_methods.filter(kind="email", replaced_at__isnull=True).exists():
        contact(case.account, "email", f"owner-{case.account_id}@example.test", age_days=500)


def link_token(message_body: str) -> str:
    match = re.search(r"/recover/([A-Za-z0-9_\-]+)/", message_body)
    assert match, message_body
    return match.group(1)


def last_recovery_mail() -> mail.EmailMessage:
    return next(m for m in reversed(mail.outbox) if "recovery link" in m.subject)

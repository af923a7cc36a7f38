"""An owner who enrolled long before a case (saved codes, passkeys), through the real portal
services, and a case on their account collecting evidence: for the S1 and S5 tests.

What the portal registers is dated now, so quarantine would exclude it; `enrolled_ago` moves
its `registered_at` back (what a year of holding it would look like).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import mail
from django.utils import timezone

from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open
from recovery.models import ContactMethod, ProtectedAccount
from recovery.owner.codes import codes_issue
from recovery.owner.models import OwnerPasskey, RecoveryCodeSet
from recovery.owner.passkeys import passkey_register, passkey_registration_begin
from tenants.choices import Role
from tenants.models import Tenant, User

from ..factories import staff
from .owners import enrolled_client, owner_account, portal_session
from .softkey import SoftKey

CONFIRM_LINK = re.compile(r"/owner/confirm/([A-Za-z0-9_-]+)/")


def origin() -> str:
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def enrolled_ago(contact: ContactMethod, days: int = 400) -> None:
    ContactMethod.objects.filter(pk=contact.pk).update(
        registered_at=timezone.now() - timedelta(days=days)
    )


@dataclass
class Owner:
    tenant: Tenant
    account: ProtectedAccount
    codes: list[str] = field(default_factory=list)
    code_set: RecoveryCodeSet | None = None
    keys: list[SoftKey] = field(default_factory=list)
    passkeys: list[OwnerPasskey] = field(default_factory=list)


def enrolled_owner(
    tenant: Tenant,
    *,
    codes: bool = True,
    passkeys: int = 0,
    tier: str = "T0",
    days: int = 400,
) -> Owner:
    """An account with long-held addresses that enrolled saved codes and `passkeys` software
    passkeys in the portal, `days` ago."""
    account = owner_account(tenant, tier=tier)
    enrolled_client(account)
    session = portal_session(account)
    owner = Owner(tenant, account)
    if codes:
        owner.code_set, owner.codes = codes_issue(session=session)
        enrolled_ago(owner.code_set.contact, days)
    for _ in range(passkeys):
        key = SoftKey(origin=origin(), rp_id=urlsplit(settings.PUBLIC_BASE_URL).hostname)
        options = passkey_registration_begin(session=session)
        passkey = passkey_register(session=session, credential_json=key.create(options))
        enrolled_ago(passkey.contact, days)
        owner.keys.append(key)
        owner.passkeys.append(passkey)
    mail.outbox.clear()
    return owner


def open_case(owner: Owner, agent: User | None = None, **kwargs) -> tuple[User, RecoveryCase]:
    agent = agent or staff(Role.AGENT, tenant=owner.tenant)
    case = case_open(
        actor=agent,
        account=owner.account,
        case_type=kwargs.pop("case_type", "password_reset"),
        channel="phone",
    )
    return agent, case


def confirm_token(body: str) -> str:
    match = CONFIRM_LINK.search(body)
    assert match, body
    return match.group(1)


def policy_applied(tenant: Tenant, text: str) -> None:
    """Make `text` the tenant's active policy through the real two-admin activation."""
    from recovery.policy.services import (
        policy_activation_approve,
        policy_activation_request,
        policy_draft_create,
    )

    from ..factories import step_up

    author = staff(Role.TENANT_ADMIN, tenant=tenant)
    approver = staff(Role.TENANT_ADMIN, tenant=tenant)
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    version = policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


def default_policy_with(old: str, new: str) -> str:
    from recovery.policy.rules import DEFAULT_POLICY_FILE

    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new)

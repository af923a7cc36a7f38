"""A small, realistic tenant for the screenshots, built through the real services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from audit.context import Actor
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_submit, evidence_record
from recovery.imports import AccountRecord, ContactRecord
from recovery.models import ContactMethod, ProtectedAccount
from recovery.services import accounts_import
from tenants.choices import Role
from tenants.models import Tenant, User
from tenants.services import tenant_create

from .. import factories

# (external id, name, authoritative attributes): tiers follow from the default policy.
PEOPLE = (
    ("E1001", "Dana Whitfield", {}),
    ("E1002", "Priya Raman", {"groups": ("finance",)}),
    ("E1003", "Tomás Becker", {"groups": ("it-admins",)}),
    ("E1004", "Lena Novak", {}),
    ("E1005", "Payroll mailbox", {"mailbox_type": "shared"}),
    ("E1006", "Marc Dubois", {"groups": ("executives",)}),
    ("E1007", "Aisha Okafor", {}),
)


@dataclass(frozen=True)
class Showcase:
    tenant: Tenant
    agent: User
    reviewer: User  # supervisor, security officer, tenant admin and auditor at once
    accounts: dict[str, ProtectedAccount]
    open_case: RecoveryCase  # T0, collecting evidence (a knowledge answer: context only)
    pending_case: RecoveryCase  # T1, waiting for a supervisor
    security_case: RecoveryCase  # T2, in the security queue


def _person(name: str, *roles: str, tenant: Tenant) -> User:
    taken = User.objects.filter(username__startswith=name).count()
    user = factories.make_user(f"{name}{taken or ''}")
    for role in roles:
        factories.member(user, role, tenant=tenant)
    return user


def _contacts(external_id: str) -> tuple[ContactRecord, ...]:
    """A mobile and an email the system of record has held for over a year."""
    held_since = timezone.now() - timedelta(days=400)
    number = external_id[-3:]
    return (
        ContactRecord(kind="mobile", value=f"+1555010{number}", registered_at=held_since),
        ContactRecord(
            kind="email", value=f"{external_id.lower()}@acme.example", registered_at=held_since
        ),
    )


def _signals(case: RecoveryCase, actor: User, *classes: str) -> None:
    """Verified S2 (code to the held mobile) and S3 (attestation) signals."""
    contacts = ContactMethod.objects.for_tenant(case.tenant).filter(account=case.account)
    for signal_class in classes:
        kind, method = {"S2": ("mobile", "sms_code"), "S3": ("email", "manager_attestation")}[
            signal_class
        ]
        evidence_record(
            actor=actor,
            case=case,
            signal_class=signal_class,
            method=method,
            verified=True,
            contact_method=contacts.get(kind=kind),
        )


def showcase() -> Showcase:
    """Acme Corporation: seven accounts, an agent, a reviewer, and cases in several states."""
    tenant = tenant_create(
        actor=factories.operator(), slug=factories.unique("acme"), name="Acme Corporation"
    )
    records = [
        AccountRecord(
            line=line,
            external_id=external_id,
            username=f"{name.split()[0].lower()}@acme.example",
            display_name=name,
            contacts=_contacts(external_id),
            **attributes,
        )
        for line, (external_id, name, attributes) in enumerate(PEOPLE, start=1)
    ]
    accounts_import(actor=Actor.system("hris"), tenant=tenant, records=records, source="hris")
    accounts = {a.display_name: a for a in ProtectedAccount.objects.for_tenant(tenant)}
    agent = _person("maria.lopez", Role.AGENT, tenant=tenant)
    officer = _person("sam.okoro", Role.SECURITY_OFFICER, tenant=tenant)
    reviewer = _person(
        "jordan.kim",
        Role.SUPERVISOR,
        Role.SECURITY_OFFICER,
        Role.TENANT_ADMIN,
        Role.AUDITOR,
        tenant=tenant,
    )

    open_case = case_open(
        actor=agent,
        account=accounts["Lena Novak"],
        case_type="password_reset",
        channel="phone",
        claimant_statement="Locked out after a holiday; says her manager can vouch for her.",
    )
    evidence_record(  # what a caller knows is kept as context, never evidence
        actor=agent,
        case=open_case,
        signal_class="context",
        method="knowledge_answer",
        verified=True,
    )
    pending = case_open(
        actor=agent, account=accounts["Priya Raman"], case_type="mfa_reset", channel="phone"
    )
    _signals(pending, agent, "S2", "S3")
    pending = case_submit(actor=agent, case=pending)
    secured = case_open(
        actor=officer, account=accounts["Tomás Becker"], case_type="password_reset", channel="chat"
    )
    _signals(secured, officer, "S2", "S3")
    secured = case_submit(actor=officer, case=secured)
    return Showcase(tenant, agent, reviewer, accounts, open_case, pending, secured)

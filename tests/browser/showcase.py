"""A small, realistic tenant for the screenshots, built through the real services: every signal
comes from its verifier (a code read back from the owner's mail, a proofing provider's signed
verdict, an attended session run by a trusted referee)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core import mail
from django.utils import timezone

from audit.context import Actor
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_submit, context_record
from recovery.challenges.services import challenge_send, challenge_verify
from recovery.imports import AccountRecord, ContactRecord
from recovery.models import ContactMethod, ProtectedAccount
from recovery.owner.codes import codes_issue
from recovery.owner.models import OwnerPasskey, RecoveryCodeSet
from recovery.owner.passkeys import passkey_register, passkey_registration_begin
from recovery.proofing.models import AttendedSession
from recovery.services import accounts_import
from tenants.choices import Role
from tenants.models import Membership, Tenant, User
from tenants.services import referee_certify, tenant_create

from .. import factories
from ..console.verifying import attended_done, attended_open
from ..owner.case_owner import enrolled_ago, origin
from ..owner.owners import enrolled_client, portal_session
from ..owner.softkey import SoftKey
from ..recovery.casework import code_in
from ..recovery.verifiers import enrolled, proofing_passed

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
    referee: User  # a certified trusted referee
    accounts: dict[str, ProtectedAccount]
    open_case: RecoveryCase  # T0, collecting evidence (what the caller said: context only)
    pending_case: RecoveryCase  # T1, waiting for a supervisor: S2 by code, S4 by proofing
    security_case: RecoveryCase  # T2, in the security queue: S2 by code, S4 attended onsite
    attended: AttendedSession  # open, on a T1 case: the referee's page


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


def _code_read_back(case: RecoveryCase, actor: User) -> None:
    """S2: a code emailed to the address held for a year, read back by the owner."""
    email = ContactMethod.objects.for_tenant(case.tenant).get(account=case.account, kind="email")
    challenge = challenge_send(actor=actor, case=case, contact_method=email)
    challenge_verify(
        actor=actor, case=case, challenge=challenge, code=code_in(mail.outbox[-1].body)
    )


def _certified_referee(tenant: Tenant, admin: User) -> User:
    referee = _person("ana.silva", Role.TRUSTED_REFEREE, tenant=tenant)
    membership = Membership.objects.get(user=referee, tenant=tenant, role=Role.TRUSTED_REFEREE)
    referee_certify(actor=admin, membership=membership, until=timezone.now() + timedelta(days=180))
    return referee


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

    referee = _certified_referee(tenant, reviewer)

    open_case = case_open(
        actor=agent,
        account=accounts["Lena Novak"],
        case_type="password_reset",
        channel="phone",
        claimant_statement="Locked out after a holiday; says her manager can vouch for her.",
    )
    context_record(  # what a caller knows is kept as context, never evidence
        actor=agent,
        case=open_case,
        topic="manager",
        statement="Says her manager is Dana Whitfield and she sits on the third floor.",
    )
    pending = case_open(
        actor=agent, account=accounts["Priya Raman"], case_type="mfa_reset", channel="phone"
    )
    _code_read_back(pending, agent)
    proofing_passed(pending, agent)
    pending = case_submit(actor=agent, case=pending)
    secured = case_open(
        actor=officer, account=accounts["Tomás Becker"], case_type="password_reset", channel="chat"
    )
    _code_read_back(secured, officer)
    enrolled(secured.account)  # onsite, the referee compares the person with it
    attended_done(secured, referee, mode="onsite")
    secured = case_submit(actor=officer, case=secured)
    waiting = case_open(
        actor=agent, account=accounts["Marc Dubois"], case_type="unlock", channel="walk_in"
    )
    attended = attended_open(waiting, referee)
    return Showcase(
        tenant, agent, reviewer, referee, accounts, open_case, pending, secured, attended
    )


def owner_enrolled(account: ProtectedAccount, *labels: str) -> list[OwnerPasskey]:
    """The account's owner enrolled in the portal a year ago, through the real services: saved
    codes, and a software passkey per label for the relying party of `PUBLIC_BASE_URL` (set
    it to the live server first). Dated back, so quarantine no longer applies."""
    enrolled_client(account)  # the owner opened an enrolment link sent to an address on record
    session = portal_session(account)
    code_set, _codes = codes_issue(session=session)
    enrolled: list[OwnerPasskey | RecoveryCodeSet] = [code_set]
    for label in labels:
        answer = SoftKey(origin=origin()).create(passkey_registration_begin(session=session))
        enrolled.append(passkey_register(session=session, credential_json=answer, label=label))
    for days, row in enumerate(enrolled, start=380):
        enrolled_ago(row.contact, days)
        type(row).objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days))
    mail.outbox.clear()
    return [row for row in enrolled if isinstance(row, OwnerPasskey)]

"""Shared mailboxes, their owners and mailbox access cases brought along through the real
services, for tests/recovery/test_delegation*.py."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_submit
from recovery.delegation.models import MailboxDelegation
from recovery.delegation.services import delegation_owner_decide
from recovery.models import ProtectedAccount
from recovery.owner.choices import PortalSessionKind, PortalSessionStatus
from recovery.owner.models import OwnerPortalSession
from tenants.choices import Role
from tenants.models import Tenant, User

from ..factories import make_account_with, staff
from .casework import approved, contact, signal


def person(tenant: Tenant, **attributes) -> ProtectedAccount:
    """A person's own account (a user mailbox) with a mobile held for years."""
    account = make_account_with(tenant, **attributes)
    contact(account)
    return account


def shared_mailbox(
    tenant: Tenant, owner: ProtectedAccount | None, *, kind: str = "shared"
) -> ProtectedAccount:
    """A shared (or functional) mailbox whose system of record names `owner` as its owner."""
    return make_account_with(
        tenant,
        mailbox_type=kind,
        mailbox_owner_external_id=owner.external_id if owner is not None else "",
    )


def requested(
    mailbox: ProtectedAccount,
    requester: ProtectedAccount,
    agent: User | None = None,
    *,
    hours: int | None = None,
) -> RecoveryCase:
    """A mailbox access case on `requester`'s own account naming `mailbox`."""
    agent = agent or staff(Role.AGENT, tenant=mailbox.tenant)
    return case_open(
        actor=agent,
        account=requester,
        case_type="mailbox_access",
        channel="phone",
        mailbox=mailbox,
        delegation_seconds=hours * 3600 if hours else None,
    )


def verified_and_approved(case: RecoveryCase, agent: User) -> RecoveryCase:
    """The requester's own identity verified (S2) and a supervisor's approval: ready."""
    signal(case, agent, "S2")
    case = case_submit(actor=agent, case=case)
    assert case.status == "pending_approval", case.status
    case = approved(case)
    assert case.status == "ready", case.status
    return case


def idp_session(account: ProtectedAccount, *, kind: str = PortalSessionKind.IDP_ENROLMENT):
    """An active portal session of `account` as an identity provider sign-in starts one
    (`recovery.owner.idp_sign_in`); the portal test goes through the real sign-in."""
    now = timezone.now()
    return OwnerPortalSession.objects.create(
        tenant=account.tenant,
        account=account,
        kind=kind,
        status=PortalSessionStatus.ACTIVE,
        activated_at=now,
        expires_at=now + timedelta(minutes=30),
    )


def owner_approves(case: RecoveryCase, owner: ProtectedAccount) -> MailboxDelegation:
    return delegation_owner_decide(
        session=idp_session(owner), delegation_id=case.delegation.pk, approve=True
    )


def delegation_of(case: RecoveryCase) -> MailboxDelegation:
    return MailboxDelegation.objects.get(case=case)


def actions(case: RecoveryCase, prefix: str = "access.") -> list[str]:
    """The case's audit actions starting with `prefix`, in chain order."""
    return list(
        AuditEvent.objects.filter(
            tenant_id=case.tenant_id,
            target_type=RecoveryCase._meta.label,
            target_id=str(case.pk),
            action__startswith=prefix,
        )
        .order_by("seq")
        .values_list("action", flat=True)
    )


def expire_now(case: RecoveryCase) -> None:
    """Time is data: the delegation's expiry moved to a second ago, as the clock would."""
    MailboxDelegation.objects.filter(case=case).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

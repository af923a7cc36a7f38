"""Reads of mailbox delegations: what a mailbox's owner is asked to decide, and what a case
page shows."""

from __future__ import annotations

from django.db.models import QuerySet

from ..cases.choices import OPEN_STATUSES
from ..cases.models import RecoveryCase
from ..models import ProtectedAccount
from .choices import DelegationStatus
from .models import MailboxDelegation


def delegations_for_owner(*, owner: ProtectedAccount) -> QuerySet[MailboxDelegation]:
    """The requests waiting for `owner`'s answer: for mailboxes the system of record names
    them the owner of (now, and when it was asked), on cases still open."""
    return (
        MailboxDelegation.objects.for_tenant(owner.tenant)
        .filter(
            owner_external_id=owner.external_id,
            mailbox__mailbox_owner_external_id=owner.external_id,
            status=DelegationStatus.REQUESTED,
            owner_decision="",
            case__status__in=sorted(OPEN_STATUSES),
        )
        .select_related("mailbox", "delegate", "case")
        .order_by("requested_at", "pk")
    )


def delegation_of_case(case: RecoveryCase) -> MailboxDelegation | None:
    return (
        MailboxDelegation.objects.for_tenant(case.tenant)
        .select_related("mailbox", "delegate")
        .filter(case=case)
        .first()
    )

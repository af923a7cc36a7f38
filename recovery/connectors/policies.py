"""Pure decisions about a tenant's connector: no database writes, a reason code each."""

from __future__ import annotations

from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.models import User
from tenants.policies import ALLOW, Decision

from .models import ConnectorChange, ConnectorChangeStatus

CONNECTOR_READERS = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR})


def can_read_connector(access: TenantAccess | None) -> Decision:
    """The configuration and its changes: the tenant's own admins, security officers and
    auditors. Not through a delegation grant: it describes the tenant's own directory (hosts,
    service accounts, the names of its secrets)."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if access.via_grant or not access.roles & CONNECTOR_READERS:
        return Decision(
            False,
            "connector.read_forbidden",
            "The connector settings are for the tenant's own admins, security officers and "
            "auditors.",
        )
    return ALLOW


def _pending(change: ConnectorChange, verb: str) -> Decision:
    if change.status != ConnectorChangeStatus.PENDING:
        return Decision(
            False,
            "connector.change_not_pending",
            f"Only a pending change can be {verb}; this one is {change.status}.",
        )
    return ALLOW


def can_approve_change(*, approver: User, change: ConnectorChange) -> Decision:
    """Dual control (R-27): the approver is a second person, not the requester.

    Compared by account and by `person_id`, so the same natural person under another account
    is still the same person (R-21).
    """
    if not (decision := _pending(change, "approved")):
        return decision
    if approver.pk == change.requested_by_id:
        return Decision(
            False, "sod.approver_is_requester", "Whoever proposed a change cannot approve it."
        )
    # Compared as text: an in-memory user may still hold the string it was created with.
    if str(approver.person_id) == str(change.requested_by.person_id):
        return Decision(
            False,
            "sod.same_person",
            "The same person under another account cannot approve their own connector change.",
        )
    return ALLOW


def can_reject_change(*, actor: User, change: ConnectorChange) -> Decision:
    """Another tenant_admin rejects a pending change; its requester withdraws it instead."""
    if not (decision := _pending(change, "rejected")):
        return decision
    if actor.pk == change.requested_by_id:
        return Decision(
            False,
            "connector.reject_own",
            "You proposed this change: withdraw it instead of rejecting it.",
        )
    return ALLOW


def can_withdraw_change(*, actor: User, change: ConnectorChange) -> Decision:
    """Only the account that proposed a pending change withdraws it."""
    if not (decision := _pending(change, "withdrawn")):
        return decision
    if actor.pk != change.requested_by_id:
        return Decision(
            False,
            "connector.not_requester",
            "Only whoever proposed a change can withdraw it; another admin rejects it.",
        )
    return ALLOW


def can_test_change(*, change: ConnectorChange) -> Decision:
    """A proposal is tested before it is decided; once decided, test what is in force."""
    return _pending(change, "tested")

"""Pure decisions about policy versions: no database writes, a reason code each."""

from __future__ import annotations

from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.models import User
from tenants.policies import ALLOW, Decision

from .choices import PolicyStatus
from .models import PolicyVersion


def can_approve_activation(*, approver: User, version: PolicyVersion) -> Decision:
    """Dual control (R-27): the approver is a second person, neither author nor requester.

    Compared by account and by `person_id`, so the same natural person under another account
    is still the same person (R-21).
    """
    if version.status != PolicyStatus.PENDING_ACTIVATION:
        return Decision(
            False,
            "policy.not_pending",
            f"Only a version pending activation can be approved; this one is {version.status}.",
        )
    if approver.pk == version.requested_by_id:
        return Decision(
            False, "sod.approver_is_requester", "Whoever requested activation cannot approve it."
        )
    if approver.pk == version.created_by_id:
        return Decision(
            False, "sod.approver_is_author", "The author of a policy cannot approve it."
        )
    # Compared as text: an in-memory user may still hold the string it was created with.
    others = {str(version.created_by.person_id)}
    if version.requested_by is not None:
        others.add(str(version.requested_by.person_id))
    if str(approver.person_id) in others:
        return Decision(
            False,
            "sod.same_person",
            "The same person under another account cannot approve their own policy change.",
        )
    return ALLOW


POLICY_READERS = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR})


def can_read_policy(access: TenantAccess | None) -> Decision:
    """The policy, its versions, validation and simulation: the tenant's admins, security
    officers and auditors."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if not access.roles & POLICY_READERS:
        return Decision(
            False,
            "policy.read_forbidden",
            "The policy is for the tenant's admins, security officers and auditors.",
        )
    return ALLOW

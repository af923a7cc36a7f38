"""Writes of recovery data. The full workflow (cases, evidence, approvals) builds on these."""

from __future__ import annotations

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from audit.context import Actor
from audit.services import record
from tenants.access import access_in, actor_tenant_access
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import can_administer_tenant, enforce

from .models import ProtectedAccount

OBJECT_PERMISSIONS = ("recovery.work_account",)


def _admin_actor(actor: User, tenant: Tenant) -> Actor:
    # Platform operators may seed accounts until the import service (with its own actor) lands.
    if not actor.is_superuser:
        enforce(can_administer_tenant(access_in(actor, tenant)))
    return Actor.for_user(actor, organisation=tenant.name)


def account_create(
    *,
    actor: User,
    tenant: Tenant,
    external_id: str,
    username: str,
    display_name: str,
    tier: str = "T0",
) -> ProtectedAccount:
    """Create a protected account in `tenant` (tenant admins; the import service comes later)."""
    with transaction.atomic():
        audit_actor = _admin_actor(actor, tenant)
        account = ProtectedAccount.objects.create(
            tenant=tenant,
            external_id=external_id,
            username=username,
            display_name=display_name,
            tier=tier,
        )
        record(
            action="account.created",
            actor=audit_actor,
            tenant=tenant,
            target=account,
            data={"external_id": external_id, "tier": tier},
        )
    return account


def account_permission_grant(
    *, actor: User, account: ProtectedAccount, user: User, perm: str
) -> None:
    """Give `user` an explicit per-object permission on one account of the actor's tenant."""
    if perm not in OBJECT_PERMISSIONS:
        raise InvalidInput(f"Unknown object permission {perm!r}.", code="permission.unknown")
    if account.tenant_id not in actor_tenant_access(user):
        raise PolicyDenied(
            "That user has no access to this tenant.", code="permission.grantee_outside_tenant"
        )
    with transaction.atomic():
        audit_actor = _admin_actor(actor, account.tenant)
        assign_perm(perm, user, account)
        record(
            action="permission.granted",
            actor=audit_actor,
            tenant=account.tenant,
            target=account,
            data={"perm": perm, "user": user.get_username()},
        )


def account_permission_revoke(
    *, actor: User, account: ProtectedAccount, user: User, perm: str
) -> None:
    """Remove an explicit per-object permission."""
    with transaction.atomic():
        audit_actor = _admin_actor(actor, account.tenant)
        remove_perm(perm, user, account)
        record(
            action="permission.revoked",
            actor=audit_actor,
            tenant=account.tenant,
            target=account,
            data={"perm": perm, "user": user.get_username()},
        )

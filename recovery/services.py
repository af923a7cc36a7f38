"""Writes of recovery data. The full workflow (cases, evidence, approvals) builds on these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audit.context import Actor
from audit.services import record
from tenants.access import access_in, actor_tenant_access
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import can_administer_tenant, enforce

from .imports import AccountRecord, ContactRecord
from .models import ContactMethod, ProtectedAccount
from .policy.selectors import policy_active

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
    """Create one protected account by hand (tenant admins); sync uses accounts_import."""
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


SYNCED_ATTRIBUTES = (
    "username",
    "display_name",
    "email",
    "manager_external_id",
    "groups",
    "admin_roles",
    "delegations",
    "mailbox_type",
    "mailbox_owner_external_id",
    "no_helpdesk_reset",
    "proofing_level",
    "enrolment_reference",
    "idp_subject",
    "person_id",
)


@dataclass(frozen=True)
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    contacts_added: int = 0
    contacts_replaced: int = 0


def _attributes(record: AccountRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in SYNCED_ATTRIBUTES}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _sync_contacts(
    *,
    actor: Actor,
    account: ProtectedAccount,
    wanted: Sequence[ContactRecord],
    current: list[ContactMethod],
    source: str,
    first_import: bool,
) -> tuple[int, int]:
    """Close contacts the source no longer has and open new ones; returns (added, replaced)."""
    now = timezone.now()
    by_key = {(c.kind, c.value): c for c in current}
    wanted_keys = {(c.kind, c.value) for c in wanted}
    added = replaced = 0
    for contact in current:
        if (contact.kind, contact.value) not in wanted_keys:
            contact.replaced_at = now
            contact.save(update_fields=["replaced_at"])
            record(
                action="contact.replaced",
                actor=actor,
                tenant=account.tenant,
                target=account,
                data={"kind": contact.kind, "masked": contact.masked, "source": source},
            )
            replaced += 1
    for want in wanted:
        existing = by_key.get((want.kind, want.value))
        if existing is not None:
            if want.sim_changed_at and want.sim_changed_at != existing.sim_changed_at:
                existing.sim_changed_at = want.sim_changed_at
                existing.save(update_fields=["sim_changed_at"])
            continue
        # A value first seen on an account we already know starts its quarantine now, whatever
        # date the source claims; only an account's first import may carry older dates.
        claimed = want.registered_at if first_import and want.registered_at else now
        contact = ContactMethod.objects.create(
            tenant=account.tenant,
            account=account,
            kind=want.kind,
            value=want.value,
            source=source,
            registered_at=min(claimed, now),
            sim_changed_at=want.sim_changed_at,
            is_notification=want.is_notification,
        )
        record(
            action="contact.added",
            actor=actor,
            tenant=account.tenant,
            target=account,
            data={
                "kind": contact.kind,
                "masked": contact.masked,
                "source": source,
                "registered_at": contact.registered_at,
            },
        )
        added += 1
    return added, replaced


def accounts_import(
    *, actor: Actor, tenant: Tenant, records: Sequence[AccountRecord], source: str
) -> ImportSummary:
    """Upsert validated account records and their contact methods, all or nothing.

    The caller authorises the source (the command line is an operator on the host; the API
    checks the integration's `accounts:sync` scope). Every change is audited in this
    transaction.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0, "added": 0, "replaced": 0}
    with transaction.atomic():
        policy = policy_active(tenant)
        ids = [r.external_id for r in records]
        accounts = ProtectedAccount.objects.for_tenant(tenant).filter(external_id__in=ids)
        known = {a.external_id: a for a in accounts.select_for_update()}
        contacts: dict[int, list[ContactMethod]] = {}
        for contact in ContactMethod.objects.for_tenant(tenant).filter(
            account__in=list(known.values()), replaced_at__isnull=True
        ):
            contacts.setdefault(contact.account_id, []).append(contact)
        for item in records:
            attributes = _attributes(item)
            attributes["tier"] = policy.compute_tier(ProtectedAccount(**attributes))[0]
            account = known.get(item.external_id)
            first_import = account is None
            if account is None:
                account = ProtectedAccount.objects.create(
                    tenant=tenant,
                    external_id=item.external_id,
                    source=source,
                    synced_at=timezone.now(),
                    **attributes,
                )
                record(
                    action="account.created",
                    actor=actor,
                    tenant=tenant,
                    target=account,
                    data={"external_id": item.external_id, "source": source},
                )
                counts["created"] += 1
            else:
                changed = sorted(k for k, v in attributes.items() if getattr(account, k) != v)
                for name in changed:
                    setattr(account, name, attributes[name])
                account.synced_at = timezone.now()
                account.save(update_fields=[*changed, "synced_at"])
                if changed:
                    record(
                        action="account.updated",
                        actor=actor,
                        tenant=tenant,
                        target=account,
                        data={"fields": changed, "source": source},
                    )
                counts["updated" if changed else "unchanged"] += 1
            added, replaced = _sync_contacts(
                actor=actor,
                account=account,
                wanted=item.contacts,
                current=contacts.get(account.pk, []),
                source=source,
                first_import=first_import,
            )
            counts["added"] += added
            counts["replaced"] += replaced
        summary = ImportSummary(
            created=counts["created"],
            updated=counts["updated"],
            unchanged=counts["unchanged"],
            contacts_added=counts["added"],
            contacts_replaced=counts["replaced"],
        )
        record(
            action="accounts.imported",
            actor=actor,
            tenant=tenant,
            data={"source": source, **summary.__dict__},
        )
    return summary

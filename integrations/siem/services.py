"""Every write of the tenant's SIEM destination, each with its audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404

from audit.context import Actor
from audit.services import record
from recovery.addresses import destination_problem
from tenants.access import TenantAccess, access_in
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User
from tenants.policies import enforce

from ..models import SiemCursor, SiemDestination
from .policies import can_manage_siem
from .transport import Collector
from .validation import (
    ca_fingerprints,
    checked_ca_pem,
    checked_enabled,
    checked_format,
    checked_host,
    checked_port,
)

SETTINGS = ("host", "port", "format", "ca_pem", "enabled")


def _access(actor: User, tenant: Tenant) -> TenantAccess:
    access = access_in(actor, tenant)
    enforce(can_manage_siem(actor, access))
    assert access is not None  # guaranteed by the policy above
    return access


def _actor(user: User, access: TenantAccess, tenant: Tenant) -> Actor:
    return Actor.for_user(user, organisation=access.organisation or tenant.name)


def _checked(*, host: Any, port: Any, format: Any, ca_pem: Any, enabled: Any) -> dict[str, Any]:
    wanted = {
        "host": checked_host(host),
        "port": checked_port(port),
        "format": checked_format(format),
        "ca_pem": checked_ca_pem(ca_pem),
        "enabled": checked_enabled(enabled),
    }
    problem = destination_problem(Collector(wanted["host"], wanted["port"], "").url)
    if problem:
        message = f"This collector cannot be reached from here: {problem}"
        raise InvalidInput(message, code="siem.host_not_allowed", field_errors={"host": [message]})
    return wanted


def _facts(destination: SiemDestination) -> dict[str, Any]:
    return {
        "host": destination.host,
        "port": destination.port,
        "format": destination.format,
        "enabled": destination.enabled,
        "ca_sha256": ca_fingerprints(destination.ca_pem),
    }


def siem_destination_set(
    *,
    actor: User,
    tenant: Tenant,
    host: str,
    port: int,
    format: str,
    ca_pem: str,
    enabled: bool = True,
) -> SiemDestination:
    """Set (or replace) the tenant's collector. A change of any setting makes the next attempt
    immediate; the cursor stays, so the stream goes on where it was."""
    access = _access(actor, tenant)
    wanted = _checked(host=host, port=port, format=format, ca_pem=ca_pem, enabled=enabled)
    with transaction.atomic():
        destination = SiemDestination.objects.for_tenant(tenant).select_for_update().first()
        created = destination is None
        if destination is None:
            destination = SiemDestination(tenant=tenant, created_by=actor)
        changed = [name for name in SETTINGS if getattr(destination, name) != wanted[name]]
        if not changed:
            return destination
        for name in changed:
            setattr(destination, name, wanted[name])
        destination.next_attempt_at = None
        destination.save()
        record(
            action="siem.destination_set",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=destination,
            data={"created": created, "changed": changed, **_facts(destination)},
        )
    return destination


def siem_destination_remove(*, actor: User, tenant: Tenant) -> None:
    """Stop streaming: the destination and its cursor go (a new destination gets the whole
    chain again)."""
    access = _access(actor, tenant)
    with transaction.atomic():
        destination = SiemDestination.objects.for_tenant(tenant).select_for_update().first()
        if destination is None:
            raise Http404("No SIEM destination is set for this tenant.")
        cursor = SiemCursor.objects.for_tenant(tenant).select_for_update().first()
        record(
            action="siem.destination_removed",
            actor=_actor(actor, access, tenant),
            tenant=tenant,
            target=destination,
            data={**_facts(destination), "sent_up_to_seq": cursor.seq if cursor else 0},
        )
        if cursor is not None:
            cursor.delete()
        destination.delete()

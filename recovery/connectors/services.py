"""Writes of a tenant's connector configuration, and its audited health check.

Only the tenant's own tenant_admins configure the connector (never through an MSP grant, never
an AI assistant). The audit event carries a summary that holds no secret: settings only *name*
the environment variables with the bind password or the signing key, and a webhook URL is
recorded as its origin and a hash (its path may be the receiver's own credential).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction

from audit.context import Actor
from audit.services import record
from tenants.access import access_in
from tenants.exceptions import InvalidInput
from tenants.models import Tenant, User
from tenants.policies import can_administer_tenant, enforce
from tenants.principals import ai_blocked

from .base import Health
from .choices import ConnectorKind
from .models import ConnectorConfig
from .selectors import connector_build, connector_config_get
from .validation import validate_settings
from .webhook import url_origin

LDAP_SUMMARY = (
    "directory",
    "server_uri",
    "start_tls",
    "base_dn",
    "bind_dn",
    "bind_password_env",
    "user_filter",
    "password_mode",
    "must_change_attribute",
    "temporary_access_group_dn",
    "temporary_access_attribute",
)


def _audit_actor(actor: User, tenant: Tenant) -> Actor:
    return Actor.for_user(actor, organisation=tenant.name)


def _require_tenant_admin(actor: User, tenant: Tenant) -> None:
    enforce(ai_blocked(actor, "configure the tenant's connector"))
    enforce(can_administer_tenant(access_in(actor, tenant)))


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def settings_summary(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What of a configuration may be shown and audited: no secret, no URL path."""
    if kind == ConnectorKind.LDAP:
        return {name: settings.get(name) for name in LDAP_SUMMARY}
    if kind == ConnectorKind.WEBHOOK:
        url = settings.get("url", "")
        return {
            "origin": url_origin(url),
            "url_sha256": hashlib.sha256(url.encode()).hexdigest(),
            "secret_env": settings.get("secret_env"),
        }
    return {"console": settings.get("console"), "custom_steps": sorted(settings.get("steps", {}))}


def connector_configure(
    *,
    actor: User,
    tenant: Tenant,
    kind: str,
    settings: dict[str, Any],
    is_active: bool = True,
) -> ConnectorConfig:
    """Set the tenant's connector (tenant_admins only); every setting is checked first.

    Nothing changes and no event is written when the configuration is the same.
    """
    _require_tenant_admin(actor, tenant)
    if not isinstance(is_active, bool):
        raise InvalidInput(
            "is_active must be true or false.",
            code="connector.settings_invalid",
            field_errors={"is_active": ["Give true or false."]},
        )
    data = validate_settings(kind, settings)
    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one configuration at a time
        config = ConnectorConfig.objects.for_tenant(tenant).select_for_update(of=("self",)).first()
        previous = None
        if config is None:
            config = ConnectorConfig(tenant=tenant)
        else:
            previous = {
                "kind": config.kind,
                "is_active": config.is_active,
                "sha256": _digest(config.settings),
            }
            if (config.kind, config.settings, config.is_active) == (kind, data, is_active):
                return config
        before = config.settings if previous and config.kind == kind else {}
        changed = sorted(
            name for name in set(data) | set(before) if before.get(name) != data.get(name)
        )
        config.kind, config.settings, config.is_active = kind, data, is_active
        config.updated_by = actor
        config.save()
        record(
            action="connector.configured",
            actor=_audit_actor(actor, tenant),
            tenant=tenant,
            target=config,
            data={
                "kind": kind,
                "is_active": is_active,
                "previous": previous,
                "changed": changed,
                "settings_sha256": _digest(data),
                "summary": settings_summary(kind, data),
            },
        )
    return config


def connector_health(*, actor: User, tenant: Tenant) -> Health:
    """Ask the tenant's connector whether it works now (LDAP: bind and search); audited.

    The check runs outside any transaction (it waits on the network); its outcome is recorded
    as `connector.health_checked` afterwards.
    """
    _require_tenant_admin(actor, tenant)
    config = connector_config_get(tenant=tenant)
    active = config is not None and config.is_active
    kind = config.kind if active else ConnectorKind.MANUAL
    connector = connector_build(
        tenant=tenant, kind=kind, settings=config.settings if active else {}
    )
    health = connector.health()
    with transaction.atomic():
        record(
            action="connector.health_checked",
            actor=_audit_actor(actor, tenant),
            tenant=tenant,
            target=config,
            data={"kind": kind, "ok": health.ok, "detail": health.detail[:500]},
        )
    return health

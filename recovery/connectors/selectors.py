"""Reads of a tenant's connector: its configuration and the connector object it stands for."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tenants.models import Tenant

from .base import Connector
from .choices import ConnectorKind
from .models import ConnectorConfig


def connector_config_get(*, tenant: Tenant) -> ConnectorConfig | None:
    """The tenant's configuration row (active or not), or None."""
    return ConnectorConfig.objects.for_tenant(tenant).select_related("updated_by").first()


def connector_build(*, tenant: Tenant, kind: str, settings: dict) -> Connector:
    """The connector for a validated configuration."""
    from .entra import EntraConnector
    from .google_workspace import GoogleWorkspaceConnector
    from .ldap import LdapConnector
    from .manual import ManualConnector
    from .okta import OktaConnector
    from .webhook import WebhookConnector

    if kind == ConnectorKind.LDAP:
        return LdapConnector(settings=settings)
    if kind == ConnectorKind.WEBHOOK:
        return WebhookConnector(tenant=tenant, settings=settings)
    if kind == ConnectorKind.ENTRA:
        return EntraConnector(tenant=tenant, settings=settings)
    if kind == ConnectorKind.OKTA:
        return OktaConnector(tenant=tenant, settings=settings)
    if kind == ConnectorKind.GOOGLE:
        return GoogleWorkspaceConnector(tenant=tenant, settings=settings)
    return ManualConnector(settings=settings)


def connector_for(tenant: Tenant) -> Connector:
    """The connector that carries out `tenant`'s recoveries: manual when none is active.

    Reads under the caller's tenant scope (row-level security), as every service does.
    """
    config = ConnectorConfig.objects.for_tenant(tenant).filter(is_active=True).first()
    if config is None:
        return connector_build(tenant=tenant, kind=ConnectorKind.MANUAL, settings={})
    return connector_build(tenant=tenant, kind=config.kind, settings=config.settings)


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


def connector_webhook_target(*, tenant_id: int) -> tuple[WebhookTarget | None, str]:
    """Where and with which key a queued connector request of the tenant goes now.

    Read at each delivery attempt (like a subscription's URL and secret), so a reconfigured or
    deactivated connector stops old requests: (None, reason) when it may not be sent.
    """
    config = ConnectorConfig.objects.for_tenant(Tenant(pk=tenant_id)).first()
    if config is None or not config.is_active or config.kind != ConnectorKind.WEBHOOK:
        return None, "The tenant's webhook connector is no longer active."
    secret = os.environ.get(config.settings.get("secret_env", ""), "")
    if not secret:
        return None, f"The signing key variable {config.settings.get('secret_env')} is not set."
    return WebhookTarget(url=config.settings["url"], secret=secret), ""

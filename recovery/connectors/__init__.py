"""Connectors: where a recovery really happens (manual steps, LDAP / AD, a signed webhook).

`connector_for(tenant)` is imported lazily so that `recovery.models` can re-export the
configuration model without importing the connectors (and ldap3) first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenants.models import Tenant

    from .base import Connector


def connector_for(tenant: Tenant) -> Connector:
    """The connector that carries out `tenant`'s recoveries (manual when none is active)."""
    from .selectors import connector_for as select

    return select(tenant)

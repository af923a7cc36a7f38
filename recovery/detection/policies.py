"""Pure decisions about detection: no database writes, a reason code each."""

from __future__ import annotations

from django.utils.translation import gettext as _

from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.policies import ALLOW, Decision

RULE_READERS = frozenset({Role.SECURITY_OFFICER, Role.TENANT_ADMIN, Role.AUDITOR})


def can_simulate_detection(access: TenantAccess | None) -> Decision:
    """Replaying the detection rules over the tenant's past cases: its own security officers,
    admins and auditors. Not provider staff through a grant: a replay reads every case of the
    tenant, beyond any grant's tiers and case types."""
    if access is None:
        return Decision(False, "tenant.no_access", _("You have no access to this tenant."))
    if access.via_grant or not access.roles & RULE_READERS:
        return Decision(
            False,
            "detection.simulate_forbidden",
            _(
                "Simulating the detection rules is for the tenant's own security officers, "
                "admins and auditors."
            ),
        )
    return ALLOW

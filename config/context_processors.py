"""Template context for the console's chrome: which areas the actor may open in this tenant.

Each flag is the same policy decision the area's views enforce, so a link is shown exactly when
following it would be allowed (the views check again regardless).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from recovery.cases.access_rules import CASE_WORKERS
from recovery.cases.policies import can_use_approval_queue, can_use_security_queue
from recovery.connectors.policies import can_read_connector
from recovery.detection.policies import can_simulate_detection
from recovery.policy.policies import can_read_policy
from tenants.policies import can_administer_tenant, can_read_audit


def console_nav(request: HttpRequest) -> dict[str, Any]:
    access = getattr(request, "tenant_access", None)
    if access is None:
        return {"nav": None}
    return {
        "nav": {
            "workspace": bool(access.roles & CASE_WORKERS),
            "approvals": bool(can_use_approval_queue(access)),
            "security": bool(can_use_security_queue(access)),
            "detection": bool(can_simulate_detection(access)),
            "policy": bool(can_read_policy(access)),
            "connector": bool(can_read_connector(access)),
            "admin": bool(can_administer_tenant(access)),
            "audit": bool(can_read_audit(access)),
        }
    }

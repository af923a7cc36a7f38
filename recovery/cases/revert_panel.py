"""What the case page shows of a repudiated recovery's revert (R-37, R-41): the steps the
connector did (from their `change.reverted` events), those a person recorded, and those still
to do, with the words for a person. Reads only; `revert_views` takes the POSTs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext_lazy as _l

from audit.models import AuditEvent
from tenants.models import User

from .models import CaseExecution, RecoveryCase
from .services.containment import METHOD_REMOVE, SESSIONS_REVOKE, TEMPORARY_ACCESS_REVOKE
from .services.repudiation import CONNECTOR_CHANGED, MANUAL_STEP, SNAPSHOT_RESTORE
from .steps import RECORDED

CASE_LABEL = RecoveryCase._meta.label
REVERT_OPERATIONS = {
    TEMPORARY_ACCESS_REVOKE: _l("Delete the one-time pass"),
    METHOD_REMOVE: _l("Remove a sign-in method registered since the execution"),
    SESSIONS_REVOKE: _l("End every session and refresh token"),
    SNAPSHOT_RESTORE: _l("Put back the directory entry as the snapshot recorded it"),
    MANUAL_STEP: _l("Step in the directory's console"),
    CONNECTOR_CHANGED: _l("Put back by hand (the connector changed)"),
}


@dataclass(frozen=True)
class RevertStep:
    id: str
    operation: str
    target: str
    connector: str = ""
    path: str = ""
    code: str = ""
    manual_step: str = ""
    recorded_at: datetime | None = None
    recorded_by: str = ""

    @property
    def label(self) -> str:
        return str(REVERT_OPERATIONS.get(self.operation, self.operation))


@dataclass(frozen=True)
class RevertPanel:
    ran_at: datetime | None
    reverted_at: datetime | None
    done: list[RevertStep]
    recorded: list[RevertStep]
    pending: list[RevertStep]


def case_revert(case: RecoveryCase, execution: CaseExecution | None) -> RevertPanel | None:
    """The revert of a repudiated recovery (None before any ran): two queries, three once a
    step was recorded by hand."""
    if execution is None or not (execution.revert_ran_at or execution.revert_steps):
        return None
    done = [
        RevertStep(
            id=f"{data['operation']}:{data['target']}",
            operation=data["operation"],
            target=data["target"],
            connector=data.get("connector", ""),
            path=data.get("path", ""),
        )
        for data in AuditEvent.objects.filter(
            tenant_id=case.tenant_id,
            target_type=CASE_LABEL,
            target_id=str(case.pk),
            action="change.reverted",
        )
        .order_by("seq")
        .values_list("data", flat=True)
    ]
    manual = execution.revert_steps
    recorders = {step["recorded_by"] for step in manual if step["recorded_by"]}
    usernames = (
        dict(User.objects.filter(pk__in=recorders).values_list("pk", "username"))
        if recorders
        else {}
    )
    steps = [
        RevertStep(
            id=step["id"],
            operation=step["operation"],
            target=step["target"],
            code=step["code"],
            manual_step=step["manual_step"],
            recorded_at=datetime.fromisoformat(step["recorded_at"])
            if step["recorded_at"]
            else None,
            recorded_by=usernames.get(step["recorded_by"], ""),
        )
        for step in manual
    ]
    recorded = {step["id"] for step in manual if step["state"] == RECORDED}
    return RevertPanel(
        ran_at=execution.revert_ran_at,
        reverted_at=execution.reverted_at,
        done=done,
        recorded=[step for step in steps if step.id in recorded],
        pending=[step for step in steps if step.id not in recorded],
    )

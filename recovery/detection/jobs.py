"""The console's detection simulation as a background job: replayed chunk by chunk, with
progress (as the policy simulation, `recovery.policy.jobs`).

The view checks the reader and starts the job (`tenants.jobs.job_start`); a worker runs
`simulation_run`, which checks again with the job's own actor and tenant, then replays the cases
in short transactions and reports progress between them. Nothing is written but the job's row.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tenants.access import access_in
from tenants.jobs import Progress
from tenants.models import BackgroundJob
from tenants.policies import enforce
from tenants.rls import tenant_scope

from . import simulate
from .policies import can_simulate_detection
from .simulate import (
    DetectionReport,
    Tally,
    replay_chunk,
    simulation_case_ids,
    simulation_window,
    thresholds_checked,
)

SIMULATE_KIND = "detection.simulate"


def simulation_params(*, days: int, overrides: dict[str, int]) -> dict[str, Any]:
    """The job parameters of a replay over the last `days` days with these threshold overrides."""
    return {"days": days, "overrides": overrides}


def simulation_run(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
    """Replay the job's window of cases; the report as plain data."""
    tenant, days = job.tenant, job.params["days"]
    with tenant_scope([tenant.pk]):
        enforce(can_simulate_detection(access_in(job.created_by, tenant)))
        overrides = thresholds_checked(job.params["overrides"])
        start = simulation_window(days)
        ids = simulation_case_ids(tenant, start)
    total, tally = len(ids), Tally()
    progress(0, total)
    for offset in range(0, total, simulate.CHUNK_SIZE):
        chunk = ids[offset : offset + simulate.CHUNK_SIZE]
        with tenant_scope([tenant.pk]):
            tally.add(replay_chunk(tenant=tenant, case_ids=chunk, overrides=overrides))
        progress(offset + len(chunk), total)
    report = DetectionReport(
        tenant=tenant.slug,
        since_days=days,
        window_start=start,
        window_end=timezone.now(),
        overrides=overrides,
        tally=tally,
    )
    return report.as_dict()

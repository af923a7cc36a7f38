"""The console's policy simulation as a background job: replayed chunk by chunk, with progress.

The view checks the reader and starts the job (`tenants.jobs.job_start`); a worker runs
`simulation_run`, which checks again with the job's own actor and tenant, then replays the
cases in short transactions and reports progress between them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tenants.access import access_in
from tenants.jobs import Progress
from tenants.models import BackgroundJob
from tenants.policies import enforce
from tenants.rls import tenant_scope

from .policies import can_read_policy
from .simulate import (
    SimulationReport,
    replay_cases,
    simulation_cases,
    simulation_draft,
    simulation_window,
)

SIMULATE_KIND = "policy.simulate"
CHUNK_SIZE = 200  # cases replayed per transaction


def simulation_params(*, text: str, days: int) -> dict[str, Any]:
    """The job parameters of a simulation of `text` over the last `days` days."""
    return {"text": text, "days": days}


def simulation_run(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
    """Replay the job's window of cases under its draft; the report as plain data."""
    tenant = job.tenant
    since = timedelta(days=job.params["days"])
    with tenant_scope([tenant.pk]):
        enforce(can_read_policy(access_in(job.created_by, tenant)))
        start = simulation_window(since)
        draft = simulation_draft(job.params["text"])
        ids = list(
            simulation_cases(tenant, start).prefetch_related(None).values_list("pk", flat=True)
        )
    total = len(ids)
    progress(0, total)
    changed = []
    for offset in range(0, total, CHUNK_SIZE):
        chunk = ids[offset : offset + CHUNK_SIZE]
        with tenant_scope([tenant.pk]):
            cases = list(simulation_cases(tenant, start).filter(pk__in=chunk))
            changed += replay_cases(tenant=tenant, draft=draft, cases=cases)
        progress(offset + len(chunk), total)
    report = SimulationReport(
        tenant=tenant.slug,
        draft_sha256=draft.sha256,
        since_seconds=int(since.total_seconds()),
        window_start=start,
        cases_replayed=total,
        changed=tuple(changed),
    )
    return report.as_dict()

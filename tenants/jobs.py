"""Long console operations (policy simulation, audit export) run by a worker, with progress.

An app registers a runner per job kind in its `ready()`:

    register_job_kind("policy.simulate", run_simulation)

A runner is `run(job, progress) -> dict`: it does its work in short transactions of its own
(`tenant_scope([job.tenant_id])` per chunk) and calls `progress(done, total)` between them,
outside any transaction, so the page polling the job sees each step as it commits. What it
returns is stored as the job's `result` (JSON). A runner that raises DomainError fails the job
with that message; any other exception fails it with a generic message and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .exceptions import CrossTenantNotFound, DomainError, InvalidInput
from .models import BackgroundJob, JobStatus, Tenant, User
from .rls import tenant_scope

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Runner = Callable[[BackgroundJob, Progress], dict[str, Any]]

_RUNNERS: dict[str, Runner] = {}
# Jobs, their results and the files they wrote are kept this long (pruned hourly by beat).
JOB_RETENTION = timedelta(hours=24)
FAILED_MESSAGE = "The job stopped on an unexpected error; it has been logged. Try again."


def register_job_kind(kind: str, runner: Runner) -> None:
    """Declare how jobs of `kind` run (called once per kind from an AppConfig.ready)."""
    if _RUNNERS.get(kind, runner) is not runner:
        raise ValueError(f"Job kind {kind!r} is already registered.")
    _RUNNERS[kind] = runner


def job_start(*, actor: User, tenant: Tenant, kind: str, params: dict[str, Any]) -> BackgroundJob:
    """Queue a job for the actor; a worker runs it after this transaction commits.

    The caller has already checked that the actor may do what the job does; the runner checks
    again with the job's own actor and tenant.
    """
    from .tasks import background_job_run_task

    if kind not in _RUNNERS:
        raise InvalidInput(f"There is no job kind {kind!r}.", code="job.kind_unknown")
    with tenant_scope([tenant.pk]):
        job = BackgroundJob.objects.create(
            tenant=tenant, created_by=actor, kind=kind, params=params
        )
        background_job_run_task.delay_on_commit(job.pk, tenant.pk)
    return job


def job_get_visible(*, tenant: Tenant, actor: User, pk: int) -> BackgroundJob:
    """One of the actor's own jobs in this tenant; anything else is a 404."""
    job = BackgroundJob.objects.for_tenant(tenant).filter(pk=pk, created_by=actor).first()
    if job is None:
        raise CrossTenantNotFound("tenants.backgroundjob", pk)
    return job


def _update(job_id: int, tenant_id: int, **fields: Any) -> int:
    with tenant_scope([tenant_id]):
        return BackgroundJob.objects.filter(pk=job_id).update(**fields)


def job_run(job_id: int, tenant_id: int) -> None:
    """Run a queued job once (a redelivered task finds it no longer queued and does nothing)."""
    with tenant_scope([tenant_id]):
        claimed = BackgroundJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING
        )
        job = BackgroundJob.objects.select_related("tenant", "created_by").get(pk=job_id)
    if not claimed:
        return

    def progress(done: int, total: int) -> None:
        # Durable: reported from inside a transaction, the step would stay invisible to the
        # polling page until the end, so Django refuses that with a RuntimeError.
        with transaction.atomic(durable=True):
            _update(job_id, tenant_id, done=done, total=total)

    try:
        result = _RUNNERS[job.kind](job, progress)
    except DomainError as error:
        _finish(job, JobStatus.FAILED, error=f"{error.message} ({error.code})")
    except Exception:
        logger.exception("Background job %s (%s) failed", job.pk, job.kind)
        _finish(job, JobStatus.FAILED, error=FAILED_MESSAGE)
    else:
        _finish(job, JobStatus.DONE, result=result)


def _finish(job: BackgroundJob, status: str, **fields: Any) -> None:
    _update(job.pk, job.tenant_id, status=status, finished_at=timezone.now(), **fields)

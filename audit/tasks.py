from celery import shared_task
from django.db import transaction

from tenants.jobs import JOB_RETENTION
from tenants.rls import system_scope

from .checkpoints import checkpoints_sign
from .context import Actor
from .integrity import acknowledged_findings, integrity_apply, integrity_page_pending
from .jobs import exports_prune
from .services import record
from .verify import verify_all


@shared_task(acks_late=True)
def audit_verify_task(incremental: bool = False) -> dict[str, int]:
    """Periodic verifier (R-46): each chain's report goes to its integrity state
    (`audit.integrity.integrity_apply`), which records `audit.integrity_violation` for each new
    finding and makes the tenant fail closed; once that commits, unpaged findings are paged.

    `incremental` walks each chain only from its newest signed checkpoint (hourly); the full
    walk (daily) recomputes every row.
    """
    with system_scope():
        acknowledged = acknowledged_findings()
    reports = verify_all(incremental=incremental, acknowledged=acknowledged)
    broken = [r for r in reports if not r.intact]
    with transaction.atomic():
        found = integrity_apply(reports, acknowledged)
        record(
            action="audit.verified",
            actor=Actor.system("audit-verifier"),
            data={
                "chains": len(reports),
                "broken": len(broken),
                "new_findings": len(found),
                "incremental": incremental,
            },
        )
    paged = integrity_page_pending()
    return {"chains": len(reports), "broken": len(broken), "paged": paged}


@shared_task(acks_late=True)
def audit_checkpoint_task() -> dict[str, int]:
    """Sign and publish every chain head that moved (R-46); a store that refused or failed is
    recorded as `audit.checkpoint_failed` in the platform chain."""
    run = checkpoints_sign(actor=Actor.system("audit-checkpointer"))
    with transaction.atomic():
        for store, chain, error in run.failures:
            record(
                action="audit.checkpoint_failed",
                actor=Actor.system("audit-checkpointer"),
                data={"store": store, "chain": chain, "error": error[:500]},
            )
    return {"signed": len(run.signed), "failures": len(run.failures)}


@shared_task(acks_late=True)
def audit_export_prune_task() -> int:
    """Delete console export files older than the jobs that made them (JOB_RETENTION)."""
    return exports_prune(older_than=JOB_RETENTION)

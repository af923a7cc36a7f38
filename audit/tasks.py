from celery import shared_task
from django.db import transaction

from tenants.jobs import JOB_RETENTION

from .context import Actor
from .jobs import exports_prune
from .services import record
from .verify import verify_all


@shared_task(acks_late=True)
def audit_verify_task() -> dict[str, int]:
    """Periodic verifier: records `audit.integrity_violation` for each broken chain (R-46)."""
    reports = verify_all()
    broken = [r for r in reports if not r.intact]
    with transaction.atomic():
        for report in broken:
            record(
                action="audit.integrity_violation",
                actor=Actor.system("audit-verifier"),
                data={
                    "chain": report.chain,
                    "first_bad_seq": report.first_bad_seq,
                    "reason": report.reason,
                },
            )
        record(
            action="audit.verified",
            actor=Actor.system("audit-verifier"),
            data={"chains": len(reports), "broken": len(broken)},
        )
    return {"chains": len(reports), "broken": len(broken)}


@shared_task(acks_late=True)
def audit_export_prune_task() -> int:
    """Delete console export files older than the jobs that made them (JOB_RETENTION)."""
    return exports_prune(older_than=JOB_RETENTION)

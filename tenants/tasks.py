from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .jobs import JOB_RETENTION, job_run
from .models import BackgroundJob, StaffPasskeyUse, StepUpUse
from .passkeys import STEP_UP_MAX_AGE
from .rls import system_scope
from .stepup import PROOF_MAX_AGE

# Kept an hour past the longest a proof or a passkey challenge lives: by then the challenge an
# answer was signed over is spent or expired, so presenting the answer again fails anyway.
SPENT_MARGIN = timedelta(hours=1)


@shared_task(acks_late=True)
def step_up_prune_task() -> int:
    """Forget spent step-up proofs and staff passkey answers once they could no longer be
    presented anyway; how many rows went."""
    now = timezone.now()
    proofs, _ = StepUpUse.objects.filter(used_at__lt=now - PROOF_MAX_AGE - SPENT_MARGIN).delete()
    answers, _ = StaffPasskeyUse.objects.filter(
        used_at__lt=now - STEP_UP_MAX_AGE - SPENT_MARGIN
    ).delete()
    return proofs + answers


@shared_task(ignore_result=True, acks_late=False)
def background_job_run_task(job_id: int, tenant_id: int) -> None:
    """Run one console job (acknowledged on receipt: a job is a read, started again by hand)."""
    job_run(job_id, tenant_id)


@shared_task(acks_late=True)
def background_job_prune_task() -> int:
    """Forget console jobs (and their stored results) a day after they started."""
    cutoff = timezone.now() - JOB_RETENTION
    with system_scope():
        deleted, _ = BackgroundJob.objects.filter(created_at__lt=cutoff).delete()
    return deleted

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .models import StepUpUse
from .stepup import PROOF_MAX_AGE


@shared_task(acks_late=True)
def step_up_prune_task() -> int:
    """Forget spent step-up proofs once they could no longer be presented anyway."""
    cutoff = timezone.now() - PROOF_MAX_AGE - timedelta(hours=1)
    deleted, _ = StepUpUse.objects.filter(used_at__lt=cutoff).delete()
    return deleted

from celery import shared_task
from django.utils import timezone

from tenants.rls import system_scope

from .models import IdempotencyRecord


@shared_task(acks_late=True)
def idempotency_prune_task() -> int:
    """Forget Idempotency-Keys past their 24 hours (they no longer replay anything)."""
    with system_scope():
        deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted

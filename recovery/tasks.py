from celery import shared_task
from django.db.models.functions import Now

from tenants.rls import system_scope

from .cases.choices import CaseStatus
from .cases.models import RecoveryCase
from .cases.services import case_release_cooled

SWEEP_BATCH = 200


@shared_task(acks_late=True)
def case_release_cooled_task() -> int:
    """Sweep: cases whose cooling-off has passed (by database time) become ready.

    Claims a batch with SKIP LOCKED, so two workers never take the same case; each release is
    its own audited transition and a case released already is left as it is.
    """
    with system_scope():
        due = list(
            RecoveryCase.objects.select_for_update(skip_locked=True)
            .select_related("tenant")
            .filter(status=CaseStatus.COOLING_OFF, cooling_off_until__lte=Now())
            .order_by("cooling_off_until", "pk")[:SWEEP_BATCH]
        )
        for case in due:
            case_release_cooled(case=case)
    return len(due)

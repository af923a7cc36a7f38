"""Approvers hear about waiting work (issue 16 part 6).

Each tenant's run (`approvers_notify`, every minute from beat) takes the cases that entered the
approval queue since its last run and sends one email to each person who could decide any of
them: the cases are those of `approval_queue` for that person, the same rules as the queue
page and the approval service. It records `cases.waiting`; the tenant's chat and webhook
routes carry that event (`integrations.routes`). A run that told anyone blocks the next one
for `DIGEST_EVERY`, so a person gets at most one message a minute per tenant, however many
cases arrive. A case still undecided past its tier's SLA raises an `approval_overdue` alert,
once per time it waits. The alert routes carry it to the tenant's security contacts.

Emails name cases by number, tier and type, never the account. The console shows the rest to
whoever follows the link. A mail server that refuses a message rolls the run back, and the
next run sends it again: a message may repeat, but it is not lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import CharField, Exists, OuterRef
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from audit.context import Actor
from audit.services import record
from tenants.access import access_in
from tenants.models import Tenant, User
from tenants.rls import system_scope, tenant_scope
from tenants.selectors import tenant_people

from ..cases.choices import CaseStatus
from ..cases.models import RecoveryCase
from ..cases.review_selectors import APPROVAL_SLA, approval_queue, overdue_pending
from ..cases.selectors import CASE_LABEL
from ..cases.services.base import alert_raise
from ..detection.models import Alert
from ..policy.floors import APPROVER_ROLES
from .models import QueueDigest

DIGEST_EVERY = timedelta(minutes=1)
OVERDUE = "approval_overdue"
DIGEST = Actor.system("approver-digest")
NEVER = datetime(2000, 1, 1, tzinfo=UTC)


def approvers_notify_all(*, now: datetime | None = None) -> int:
    """Run every tenant with a case waiting for a decision; how many people were told."""
    with system_scope():
        tenants = list(
            RecoveryCase.objects.filter(status=CaseStatus.PENDING_APPROVAL)
            .order_by()
            .values_list("tenant_id", flat=True)
            .distinct()
        )
    return sum(approvers_notify(tenant_id=tenant_id, now=now) for tenant_id in tenants)


def approvers_notify(*, tenant_id: int, now: datetime | None = None) -> int:
    """One run for one tenant (see the module); how many people were told."""
    now = now or timezone.now()
    with tenant_scope([tenant_id]):
        tenant = Tenant.objects.get(pk=tenant_id)
        QueueDigest.objects.get_or_create(tenant=tenant, defaults={"announced_through": NEVER})
        digest = QueueDigest.objects.select_for_update().get(tenant=tenant)
        _escalate_overdue(tenant, now)
        if digest.ran_at is not None and now - digest.ran_at < DIGEST_EVERY:
            return 0  # batched: the next run takes what arrived meanwhile
        waiting = list(
            RecoveryCase.objects.for_tenant(tenant)
            .filter(
                status=CaseStatus.PENDING_APPROVAL,
                submitted_at__gt=digest.announced_through,
                submitted_at__lte=now,
            )
            .order_by("submitted_at", "pk")
        )
        if not waiting:
            return 0
        told = sum(_tell(person, tenant, waiting) for person in _deciders(tenant))
        record(
            action="cases.waiting",
            actor=DIGEST,
            tenant=tenant,
            data={
                "cases": [
                    {"case": case.pk, "tier": case.tier, "case_type": case.case_type}
                    for case in waiting
                ],
                "approvers_told": told,
            },
        )
        digest.announced_through, digest.ran_at = now, now
        digest.save(update_fields=["announced_through", "ran_at"])
    return told


def _deciders(tenant: Tenant) -> list[User]:
    """The people who may approve in the tenant (its own, or provider staff through a grant)."""
    return list(tenant_people(tenant.pk, APPROVER_ROLES, with_grants=True).order_by("pk"))


def _tell(person: User, tenant: Tenant, waiting: list[RecoveryCase]) -> bool:
    """Email `person` the cases of `waiting` they could decide; whether a message went."""
    access = access_in(person, tenant)
    if access is None or not person.email:
        return False
    ids = [case.pk for case in waiting]
    theirs = list(
        approval_queue(tenant=tenant, actor=person, access=access)
        .filter(pk__in=ids)
        .order_by("submitted_at", "pk")
    )
    if not theirs:
        return False
    with translation.override(person.language or settings.LANGUAGE_CODE):
        subject, body = _message(tenant, theirs)
    if EmailMessage(subject=subject, body=body, to=[person.email]).send() != 1:
        raise ConnectionError("the mail server did not accept an approver's message")
    return True


def _message(tenant: Tenant, cases: list[RecoveryCase]) -> tuple[str, str]:
    count = len(cases)
    subject = ngettext(
        "Vouchsafe: %(n)s case is waiting for your decision in %(tenant)s",
        "Vouchsafe: %(n)s cases are waiting for your decision in %(tenant)s",
        count,
    ) % {"n": count, "tenant": tenant.name}
    lines = [
        gettext("Case %(case)s: %(tier)s %(type)s, waiting since %(since)s UTC")
        % {
            "case": case.pk,
            "tier": case.tier,
            "type": case.get_case_type_display(),
            "since": case.submitted_at.strftime("%H:%M"),
        }
        for case in cases
    ]
    link = settings.PUBLIC_BASE_URL.rstrip("/") + reverse(
        "review-queue", kwargs={"tenant": tenant.slug}
    )
    body = "\n".join(
        [
            *lines,
            "",
            gettext("Review them in your approval queue: %(link)s") % {"link": link},
        ]
    )
    return subject, body + "\n"


def _escalate_overdue(tenant: Tenant, now: datetime) -> None:
    """Raise `approval_overdue` on each case past its SLA that has not raised it since it
    entered the queue (a case sent back and submitted again may raise it again)."""
    raised = Alert.objects.filter(
        tenant=tenant,
        kind=OVERDUE,
        target_type=CASE_LABEL,
        target_id=Cast(OuterRef("pk"), CharField()),
        last_raised_at__gte=OuterRef("submitted_at"),
    )
    for case in (
        overdue_pending(tenant=tenant, now=now).exclude(Exists(raised)).select_related("tenant")
    ):
        alert_raise(
            case,
            OVERDUE,
            waited_seconds=int((now - case.submitted_at).total_seconds()),
            sla_seconds=int(APPROVAL_SLA[case.tier].total_seconds()),
        )

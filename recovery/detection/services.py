"""The "suspicious contact" button (R-56): a case's caller identifiers onto the tenant's
watch-list, where `recovery.detection.rules` looks for them whenever a case opens."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.services import record
from integrations.choices import IngestEventType
from integrations.models import IngestedEvent
from tenants.exceptions import InvalidInput
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.reasons import reason_given

from ..cases.models import RecoveryCase
from ..cases.services.base import alert_raise, audit_actor_of, case_locked, work_access
from ..cases.services.window import window_case
from ..models import ProtectedAccount
from .models import CallerIdentifier, ReviewOpened, WatchedCaller
from .rules import Finding

REASON_MIN = 10


def caller_flag_suspicious(*, actor: User, case: RecoveryCase, reason: str) -> list[WatchedCaller]:
    """Put every identifier the case was opened with on the watch-list (those already on it
    stay as first flagged); whoever may work the case may flag it."""
    enforce(ai_blocked(actor, "flag a caller as suspicious"))
    reason = reason_given(
        reason,
        minimum=REASON_MIN,
        code="case.flag_reason_required",
        ask=f"Say what was suspicious, in at least {REASON_MIN} characters.",
    )
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        identifiers = list(CallerIdentifier.objects.for_tenant(case.tenant).filter(case=case))
        if not identifiers:
            raise InvalidInput(
                "This case was opened without any caller identifier: there is nothing to flag.",
                code="case.no_caller_identifier",
            )
        now, flagged = timezone.now(), []
        for identifier in identifiers:
            watched, created = WatchedCaller.objects.get_or_create(
                tenant=case.tenant,
                kind=identifier.kind,
                digest=identifier.digest,
                defaults={
                    "hint": identifier.hint,
                    "reason": reason[:300],
                    "flagged_by": actor,
                    "flagged_at": now,
                    "case": case,
                },
            )
            if created:
                flagged.append(watched)
        record(
            action="case.caller_flagged",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={
                "reason": reason[:300],
                "watched": [{"kind": w.kind, "hint": w.hint} for w in flagged],
                "already_watched": len(identifiers) - len(flagged),
            },
        )
    return flagged


def review_opened(*, actor: User, case: RecoveryCase) -> None:
    """Remember when `actor`, who could decide `case`, first opened its review page (R-26).
    Called by the review page inside its transaction; later visits change nothing."""
    ReviewOpened.objects.get_or_create(
        tenant=case.tenant,
        case=case,
        reviewer=actor,
        defaults={"first_opened_at": timezone.now()},
    )


def ingested_event_detect(*, account: ProtectedAccount, event: IngestedEvent) -> bool:
    """R-55 (c) for an event an integration sent, in the ingest's transaction: a sign-in from a
    new network inside a recovery's re-establishment window alerts on that recovery's case.
    Whether it raised an alert."""
    if event.event_type != IngestEventType.SIGN_IN_NEW_ASN:
        return False
    case = window_case(account, event.occurred_at)
    if case is None:
        return False
    facts = {
        "event": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "source": event.source,
        "network": {k: v for k, v in event.data.items() if k in ("asn", "country")},
    }
    finding = Finding("new_network_after_recovery", facts)
    alert_raise(case, finding.rule, **finding.alert_data(case.correlation_id))
    return True

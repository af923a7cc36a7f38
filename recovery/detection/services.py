"""The "suspicious contact" button (R-56): a case's caller identifiers onto the tenant's
watch-list, where `recovery.detection.rules` looks for them whenever a case opens."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import record
from integrations.choices import IngestEventType
from integrations.models import IngestedEvent
from tenants.choices import CaseType
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


# R-55 (a): "an MFA reset followed within 24 h by admin-console access or a privileged action".
MFA_RESET_FOLLOW_UP = timedelta(hours=24)
WINDOW_RULES = {  # an event inside a recovery's re-establishment window, and the rule it fires
    IngestEventType.SIGN_IN_NEW_ASN: "new_network_after_recovery",
    IngestEventType.SIGN_IN_ANONYMIZED: "new_network_after_recovery",
    IngestEventType.FEDERATION_CHANGED: "federation_change_after_recovery",
}
ADMIN_ACCESS = frozenset({IngestEventType.ADMIN_CONSOLE_ACCESS, IngestEventType.ADMIN_ROLE_GRANTED})
FACT_FIELDS = ("asn", "country", "proxy", "role", "console", "domain", "change")


def ingested_event_detect(*, account: ProtectedAccount, event: IngestedEvent) -> bool:
    """R-55 (a), (c) and (f) for an event an integration sent, in the ingest's transaction:
    each alerts on the recovery it follows. Whether it raised an alert."""
    if event.event_type in WINDOW_RULES:
        case, rule = window_case(account, event.occurred_at), WINDOW_RULES[event.event_type]
    elif event.event_type in ADMIN_ACCESS:
        case, rule = _mfa_reset_before(account, event.occurred_at), "admin_access_after_mfa_reset"
    else:
        return False
    if case is None:
        return False
    facts = {
        "event": event.pk,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at.isoformat(),
        "source": event.source,
        "network" if rule == "new_network_after_recovery" else "details": {
            k: v for k, v in event.data.items() if k in FACT_FIELDS
        },
    }
    finding = Finding(rule, facts)
    alert_raise(case, finding.rule, **finding.alert_data(case.correlation_id))
    return True


def _mfa_reset_before(account: ProtectedAccount, at: datetime) -> RecoveryCase | None:
    """The account's newest MFA reset executed in the 24 hours before `at`."""
    return (
        RecoveryCase.objects.for_tenant(account.tenant)
        .select_related("tenant")
        .filter(
            account=account,
            case_type=CaseType.MFA_RESET,
            execution__executed_at__gte=at - MFA_RESET_FOLLOW_UP,
            execution__executed_at__lte=at,
        )
        .order_by("-execution__executed_at")
        .first()
    )

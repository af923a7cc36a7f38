"""May this contact method carry something for this case now? One answer for codes,
attestation links, recovery artifacts and owner notices (R-03, R-04, R-10, R-38).

A pure decision on rows already read: no query, no write. The reason codes are stable; they
appear in refusals (`evidence.<reason>`), in rejected evidence and in skipped notices.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from ..choices import PHONE_KINDS
from ..models import ContactMethod
from .models import RecoveryCase

NOT_ON_RECORD = "channel_not_in_system_of_record"
ADDED_DURING_CASE = "contact_added_during_case"
IN_QUARANTINE = "contact_changed_in_quarantine"
SIM_CHANGE_RECENT = "sim_change_recent"
REASONS = (NOT_ON_RECORD, ADDED_DURING_CASE, IN_QUARANTINE, SIM_CHANGE_RECENT)


def channel_problem(
    case: RecoveryCase,
    contact: ContactMethod | None,
    quarantine_seconds: int,
    *,
    now: datetime | None = None,
) -> str | None:
    """Why `contact` cannot carry a code, link, artifact or notice for `case` now, or None.

    Refused: a contact of another account or no longer on record (R-03); one registered at or
    after the case opened, or within the quarantine window (R-04); a phone whose SIM changed or
    number was ported within the window (R-04, R-55).
    """
    if contact is None or contact.account_id != case.account_id or contact.replaced_at:
        return NOT_ON_RECORD
    if contact.registered_at >= case.created_at:
        return ADDED_DURING_CASE
    quarantine_start = (now or timezone.now()) - timedelta(seconds=quarantine_seconds)
    if contact.registered_at > quarantine_start:
        return IN_QUARANTINE
    if (
        contact.kind in PHONE_KINDS
        and contact.sim_changed_at
        and contact.sim_changed_at > quarantine_start
    ):
        return SIM_CHANGE_RECENT
    return None

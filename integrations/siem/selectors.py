"""Reads of the tenant's SIEM stream: its destination and how far behind it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import chain_head
from tenants.access import TenantAccess
from tenants.models import Tenant, User

from ..models import SiemCursor, SiemDestination
from .policies import can_view_siem
from .validation import ca_fingerprints


@dataclass(frozen=True)
class SiemStatus:
    """The stream as the tenant sees it. `behind` counts the chain's events not yet sent (the
    head's seq minus the cursor's); `oldest_unsent_at` is when the first of them happened."""

    destination: SiemDestination | None
    head_seq: int
    sent_seq: int
    oldest_unsent_at: datetime | None
    read_at: datetime

    @property
    def behind(self) -> int:
        return max(self.head_seq - self.sent_seq, 0)

    @property
    def oldest_unsent_age(self) -> timedelta | None:
        if self.oldest_unsent_at is None:
            return None
        return max(self.read_at - self.oldest_unsent_at, timedelta(0))

    @property
    def state(self) -> str:
        """not_configured, disabled, failing, behind or up_to_date."""
        destination = self.destination
        if destination is None:
            return "not_configured"
        if not destination.enabled:
            return "disabled"
        if destination.failures:
            return "failing"
        return "behind" if self.behind else "up_to_date"

    @property
    def ca_sha256(self) -> list[str]:
        return ca_fingerprints(self.destination.ca_pem) if self.destination else []


def siem_destination_get(*, tenant: Tenant) -> SiemDestination | None:
    return SiemDestination.objects.for_tenant(tenant).first()


def siem_status(*, tenant: Tenant) -> SiemStatus:
    """The destination (or None) and the stream's lag, read now (four queries)."""
    head = chain_head(tenant=tenant)
    head_seq = head.seq if head is not None else 0
    sent_seq = SiemCursor.objects.for_tenant(tenant).values_list("seq", flat=True).first() or 0
    oldest = None
    if head_seq > sent_seq:  # seqs have no gaps: the first unsent event is the next one
        oldest = (
            AuditEvent.objects.filter(tenant_id=tenant.pk, seq=sent_seq + 1)
            .values_list("created_at", flat=True)
            .first()
        )
    return SiemStatus(
        destination=siem_destination_get(tenant=tenant),
        head_seq=head_seq,
        sent_seq=sent_seq,
        oldest_unsent_at=oldest,
        read_at=timezone.now(),
    )


def siem_status_for_reader(
    *, tenant: Tenant, user: User, access: TenantAccess | None
) -> SiemStatus | None:
    """For the console's audit pages: the status, or None for a reader who may not see it
    (`templates/console/audit/_siem_status.html` then shows nothing)."""
    if not can_view_siem(user, access):
        return None
    return siem_status(tenant=tenant)

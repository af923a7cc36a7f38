"""Walking a chain and saying where, if anywhere, it was tampered with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tenants.models import Tenant
from tenants.rls import system_scope

from .chain import GENESIS_HASH, HASHED_FIELDS, chain_key, row_hash
from .models import AuditChainHead, AuditEvent

CHUNK = 10_000


@dataclass(frozen=True)
class ChainReport:
    chain: str
    rows: int
    first_bad_seq: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


def chain_rows(tenant_id: int | None) -> Iterator[tuple]:
    """Rows of one chain in seq order, as tuples in HASHED_FIELDS order followed by the hash."""
    rows = (
        AuditEvent.objects.filter(tenant_id=tenant_id)
        if tenant_id
        else (AuditEvent.objects.filter(tenant__isnull=True))
    )
    return rows.order_by("seq").values_list(*HASHED_FIELDS, "hash").iterator(chunk_size=CHUNK)


def verify_chain(tenant_id: int | None, label: str) -> ChainReport:
    """Recompute one chain; report the first seq that is missing, extra, modified or reordered.

    The head is read before the rows: rows committed meanwhile only extend the chain past it,
    so a concurrent writer never looks like tampering.
    """
    head = AuditChainHead.objects.filter(key=chain_key(tenant_id)).first()
    head_seq = head.seq if head else 0
    expected_seq, prev, count, hash_at_head = 1, GENESIS_HASH, 0, None
    for row in chain_rows(tenant_id):
        seq, stored_prev, stored_hash = row[1], row[15], row[16]
        if seq != expected_seq:
            reason = f"expected seq {expected_seq}, found {seq}"
            return ChainReport(label, count, expected_seq, reason)
        if stored_prev != prev:
            return ChainReport(label, count, seq, "prev_hash does not match the previous row")
        if row_hash(row[:16]) != stored_hash:
            return ChainReport(label, count, seq, "row content does not match its hash")
        if seq == head_seq:
            hash_at_head = stored_hash
        prev, expected_seq, count = stored_hash, expected_seq + 1, count + 1
    if head is None:
        if count:
            return ChainReport(label, count, 1, "chain head is missing")
    elif count < head_seq:
        reason = f"rows after seq {count} are missing (chain head is at seq {head_seq})"
        return ChainReport(label, count, count + 1, reason)
    elif head_seq and hash_at_head != head.hash:
        return ChainReport(label, count, head_seq, "chain head hash does not match its row")
    return ChainReport(label, count)


def verify_all(
    *, tenant_slug: str | None = None, progress: Callable[[str], None] | None = None
) -> list[ChainReport]:
    """Verify the platform chain and every tenant's (or only `tenant_slug`'s), in system scope."""
    with system_scope():
        tenants = Tenant.objects.order_by("slug").values_list("id", "slug")
        if tenant_slug:
            tenants = tenants.filter(slug=tenant_slug)
            if not tenants.exists():
                raise LookupError(f"No tenant with slug {tenant_slug!r}.")
        chains: list[tuple[int | None, str]] = [] if tenant_slug else [(None, "platform")]
        chains += list(tenants)
        reports = []
        for tenant_id, label in chains:
            if progress:
                progress(f"verifying {label} …")
            reports.append(verify_chain(tenant_id, label))
    return reports

"""Walking a chain and saying where, if anywhere, it was tampered with.

On PostgreSQL the walk reads each row as the parts of its canonical form (`chain_parts`): the
database joins the plain text fields and formats `created_at`, so Python only re-encodes `data`
and hashes (several times faster than building every value through the ORM). This shortcut
confirms a row only when its text fields need no JSON escaping, i.e. when the text it hashes is
byte for byte row_hash's; any other row (a quote, backslash or control character, a NULL, an
odd date, a hash that does not match) is rechecked with row_hash over the ORM's values. So it
reports exactly what the row-by-row reference walk (`_walk_rows`, used on other databases)
reports, only sooner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection, transaction

from tenants.models import Tenant
from tenants.rls import system_scope

from .chain import GENESIS_HASH, HASHED_FIELDS, canonical_json, chain_key, row_hash
from .checkpoints import (
    CHECKPOINT_ACTION,
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    checkpoints_read,
    signature_problem,
    stores_load,
    trusted_keys,
)
from .models import AuditChainHead, AuditEvent
from .timestamps import TimestampAuthority, TimestampError

CHUNK = 10_000

# The shortcut rebuilds the canonical array as
#   [tenant_id, seq, "<text before data>", data, "<text after data>", "<created_at>", "<prev_hash>"]
# with the text fields joined by '","'. It relies on this layout of HASHED_FIELDS.
_BEFORE_DATA = HASHED_FIELDS[2:10]  # action … target_repr
_AFTER_DATA = HASHED_FIELDS[11:14]  # request_id, ip, user_agent
if (
    HASHED_FIELDS[:2] != ("tenant_id", "seq")
    or HASHED_FIELDS[10] != "data"
    or HASHED_FIELDS[14:] != ("created_at", "prev_hash")
):
    raise RuntimeError("HASHED_FIELDS changed: update the shortcut in audit.verify to match.")
_JOIN = '","'
# Quotes in a joined segment when no field holds one: two per separator.
_BEFORE_QUOTES = 2 * (len(_BEFORE_DATA) - 1)
_AFTER_QUOTES = 2 * (len(_AFTER_DATA) + 1)  # + created_at and prev_hash, minus one
# created_at as row_hash writes it (UTC, six fractional digits, +00:00); NULL outside the
# years Python can represent, so such a row goes to the reference check.
_CREATED_AT_ISO = (
    "CASE WHEN {c} >= '0001-01-01 00:00:00+00' AND {c} < '10000-01-01 00:00:00+00' "
    """THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') END"""
)
_scan_json = json.JSONDecoder().scan_once  # json.loads without its per-call wrapper
_sha256 = hashlib.sha256


# Checks of records the chain vouches for but does not hold, registered by higher layers
# (recovery: the passkey assertions stored with approvals and executions, checked again).
# Given a tenant id, a check yields (seq of the event that recorded the record, what is
# wrong); `audit` knows nothing of what they check.
RecordCheck = Callable[[int], Iterable[tuple[int, str]]]
_RECORD_CHECKS: list[RecordCheck] = []


def record_check_register(check: RecordCheck) -> None:
    """Have `verify_chain` run `check` on every tenant chain it finds intact."""
    if check not in _RECORD_CHECKS:
        _RECORD_CHECKS.append(check)


@dataclass(frozen=True)
class ChainReport:
    """One chain's verdict. When it is broken, `window` is the (first, last) seq that can no
    longer be trusted: from the first bad row to the end of what was read, or for a checkpoint
    finding, the rows between the last checkpoint that still matches and the one that does not.
    """

    chain: str
    rows: int
    first_bad_seq: int | None = None
    reason: str = ""
    window: tuple[int, int] | None = None
    checkpoints: int = 0  # signed checkpoints compared with the rows
    key: str = ""  # the chain's key (`platform`, `tenant:<id>`); `chain` is its label

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


# What a walk found: the first bad row (if any), the rows read (up to it), the hashes at the
# seqs asked for (the head's and the checkpoints').
_Walked = tuple[ChainReport | None, int, dict[int, str]]


def chain_rows(tenant_id: int | None, start: int = 1) -> Iterator[tuple]:
    """Rows of one chain from seq `start` on, in seq order, as tuples in HASHED_FIELDS order
    followed by the hash."""
    rows = (
        AuditEvent.objects.filter(tenant_id=tenant_id)
        if tenant_id
        else (AuditEvent.objects.filter(tenant__isnull=True))
    ).filter(seq__gte=start)
    return rows.order_by("seq").values_list(*HASHED_FIELDS, "hash").iterator(chunk_size=CHUNK)


def _parts_sql(tenant_id: int | None, start: int) -> tuple[str, list[int]]:
    quote = connection.ops.quote_name
    joiner = f" || '{_JOIN}' || "  # `||` (not concat_ws): a NULL field makes the whole part NULL
    before = joiner.join(quote(name) for name in _BEFORE_DATA)
    after = joiner.join(
        [
            *(quote(name) for name in _AFTER_DATA),
            _CREATED_AT_ISO.format(c=quote("created_at")),
            quote("prev_hash"),
        ]
    )
    where, params = "tenant_id = %s AND seq >= %s", [tenant_id, start]
    if tenant_id is None:
        where, params = "tenant_id IS NULL AND seq >= %s", [start]
    # Only our own identifiers and literals are interpolated; the tenant id is a parameter.
    sql = (
        f"SELECT id, seq, hash, prev_hash, data::text, {before}, {after} "  # noqa: S608
        f"FROM {quote(AuditEvent._meta.db_table)} WHERE {where} ORDER BY seq"
    )
    return sql, params


def chain_parts(tenant_id: int | None, start: int = 1) -> Iterator[list[tuple]]:
    """One chain from seq `start` on, in seq order, in chunks of rows that carry the parts of
    their canonical form.

    Each row is (id, seq, hash, prev_hash, data as jsonb text, the text fields before `data`
    joined by '","', the text fields after it with created_at and prev_hash joined likewise).
    Call it inside a transaction: the rows come from one server-side cursor.
    """
    sql, params = _parts_sql(tenant_id, start)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchmany(CHUNK)
        if len(rows) < CHUNK:  # most chains fit in one chunk: nothing to overlap
            if rows:
                yield rows
            return
        # A long chain: one helper thread fetches the next chunk while the caller hashes this
        # one, so database and Python time overlap. Only that thread touches the cursor until
        # it is closed; psycopg's connection lock orders any query the caller makes meanwhile.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-verify") as prefetch:
            while rows:
                pending = prefetch.submit(cursor.fetchmany, CHUNK)
                yield rows
                rows = pending.result()


def _plain(before: str, after: str, rows: int = 1) -> bool:
    """True when the joined text fields of `rows` rows need no JSON escaping.

    That is: no quote besides the separators', no backslash, no control character. Each
    non-NULL part holds at least its separators' quotes, so totals over many rows equal the
    minimum only when every row's part does.
    """
    return (
        before.count('"') == _BEFORE_QUOTES * rows
        and after.count('"') == _AFTER_QUOTES * rows
        and "\\" not in before
        and "\\" not in after
        and before.isprintable()
        and after.isprintable()
    )


def _all_plain(rows: list[tuple]) -> bool:
    """_plain for a whole chunk at once (cheaper than row by row when, as usual, it holds)."""
    try:
        before = "".join([row[5] for row in rows])
        after = "".join([row[6] for row in rows])
    except TypeError:  # a NULL part
        return False
    return _plain(before, after, len(rows))


def _rebuilt_hash_matches(
    tenant_json: str, seq: int, data: str, before: str, after: str, stored_hash: str
) -> bool:
    """For a row whose text parts are _plain: does its rebuilt canonical form hash to its hash?

    Plain fields are their own JSON string contents, so the canonical array is the parts
    concatenated around `data` re-encoded: the bytes row_hash hashes. False means: recheck.
    """
    try:
        value, end = _scan_json(data, 0)
        if end != len(data):
            return False
        text = f'[{tenant_json},{seq},"{before}",{canonical_json(value)},"{after}"]'
        return _sha256(text.encode()).hexdigest() == stored_hash
    except (TypeError, ValueError, StopIteration, RecursionError):
        return False  # NULL data, or not one JSON value: the reference check decides


def _shortcut_confirms(
    tenant_json: str, seq: int, data: str, before: str, after: str, stored_hash: str
) -> bool:
    """The shortcut for one row of a chunk that is not _all_plain."""
    if before is None or after is None or not _plain(before, after):
        return False
    return _rebuilt_hash_matches(tenant_json, seq, data, before, after, stored_hash)


def _recheck(rows: list[tuple], label: str) -> ChainReport | None:
    """Check rows the shortcut could not confirm with row_hash over the ORM's values.

    Each of `rows` is (id, rows before it, seq, prev_hash, hash) as the walk read them.
    """
    fields = ("pk", *HASHED_FIELDS, "hash")
    found = AuditEvent.objects.filter(pk__in=[row[0] for row in rows]).values_list(*fields)
    by_id = {values[0]: values[1:] for values in found}
    for pk, count, seq, stored_prev, stored_hash in rows:
        values = by_id.get(pk)
        if (
            values is None
            or (values[1], values[15], values[16]) != (seq, stored_prev, stored_hash)
            or row_hash(values[:16]) != stored_hash
        ):
            return ChainReport(label, count, seq, "row content does not match its hash")
    return None


def _walk_start(start: int) -> tuple[int, str | None, int]:
    """expected seq, expected prev_hash (None: take the first row's own) and rows counted so
    far, for a walk from seq `start` (1, or a signed checkpoint's seq for an incremental walk:
    rows before it count as read, and the checkpoint's row is checked against its hash)."""
    return start, (GENESIS_HASH if start == 1 else None), start - 1


def _walk_rows(tenant_id: int | None, label: str, marks: Container[int], start: int) -> _Walked:
    """The reference walk: row by row over the ORM's values (used where there is no shortcut)."""
    (expected_seq, prev, count), hashes = _walk_start(start), {}
    for row in chain_rows(tenant_id, start):
        seq, stored_prev, stored_hash = row[1], row[15], row[16]
        if seq != expected_seq:
            reason = f"expected seq {expected_seq}, found {seq}"
            return ChainReport(label, count, expected_seq, reason), count, hashes
        if stored_prev != (prev or stored_prev):
            reason = "prev_hash does not match the previous row"
            return ChainReport(label, count, seq, reason), count, hashes
        if row_hash(row[:16]) != stored_hash:
            reason = "row content does not match its hash"
            return ChainReport(label, count, seq, reason), count, hashes
        if seq in marks:
            hashes[seq] = stored_hash
        prev, expected_seq, count = stored_hash, expected_seq + 1, count + 1
    return None, count, hashes


def _walk_parts(tenant_id: int | None, label: str, marks: Container[int], start: int) -> _Walked:
    """The same walk over chain_parts (PostgreSQL), hashing through the shortcut."""
    tenant_json = "null" if tenant_id is None else str(int(tenant_id))
    (expected_seq, prev, count), hashes = _walk_start(start), {}
    with transaction.atomic(), closing(chain_parts(tenant_id, start)) as chunks:
        for rows in chunks:
            # Rows the shortcut could not confirm are rechecked (in order) before a break in
            # the links further on is reported: the first bad row wins, as in _walk_rows.
            unconfirmed: list[tuple] = []
            broken = None
            confirms = _rebuilt_hash_matches if _all_plain(rows) else _shortcut_confirms
            for pk, seq, stored_hash, stored_prev, data, before, after in rows:
                if seq != expected_seq:
                    reason = f"expected seq {expected_seq}, found {seq}"
                    broken = ChainReport(label, count, expected_seq, reason)
                    break
                if stored_prev != (prev or stored_prev):
                    reason = "prev_hash does not match the previous row"
                    broken = ChainReport(label, count, seq, reason)
                    break
                if not confirms(tenant_json, seq, data, before, after, stored_hash):
                    unconfirmed.append((pk, count, seq, stored_prev, stored_hash))
                if seq in marks:
                    hashes[seq] = stored_hash
                prev, expected_seq, count = stored_hash, expected_seq + 1, count + 1
            if unconfirmed and (bad_row := _recheck(unconfirmed, label)):
                return bad_row, bad_row.rows, hashes
            if broken:
                return broken, count, hashes
    return None, count, hashes


@dataclass(frozen=True)
class CheckpointSource:
    """Where verification reads signed checkpoints, and the keys it trusts for them.

    `complete` says the stores hold every checkpoint ever signed (the configured stores): then
    a checkpoint the chain records (`audit.checkpoint_signed`) but no store holds is a finding.
    An auditor's own copies (`audit_verify --checkpoints DIR`) may stop earlier.
    """

    stores: list[CheckpointStore]
    keys: dict[str, Ed25519PublicKey]
    complete: bool = True
    tsa: TimestampAuthority | None = None  # checks the RFC 3161 tokens checkpoints carry

    @classmethod
    def configured(cls) -> CheckpointSource:
        stores = stores_load()
        # With no store configured there is nothing a recorded checkpoint could be missing from.
        return cls(stores, trusted_keys(), bool(stores), TimestampAuthority.from_settings())


# A finding: the first seq it concerns, what is wrong, the window of seqs it puts in doubt.
_Finding = tuple[int, str, tuple[int, int]]


def _readable_checkpoints(
    source: CheckpointSource, key: str, since_seq: int
) -> tuple[list[Checkpoint], list[_Finding]]:
    """The chain's checkpoints whose signature verifies (seq ascending), and findings for the
    ones that cannot be read or are not genuine."""
    genuine: list[Checkpoint] = []
    findings: list[_Finding] = []
    for store, item in checkpoints_read(source.stores, key, since_seq=since_seq):
        if isinstance(item, CheckpointError):
            findings.append(
                (
                    since_seq + 1,
                    f"a checkpoint in store {store} is unreadable: {item}",
                    (since_seq + 1, since_seq + 1),
                )
            )
            continue
        problem = signature_problem(item, source.keys) or _timestamp_problem(item, source.tsa)
        if problem or item.chain != key:
            why = problem or f"it names chain {item.chain}"
            reason = f"the checkpoint at seq {item.seq} in store {store} is not genuine: {why}"
            findings.append((item.seq, reason, (item.seq, item.seq)))
        else:
            genuine.append(item)
    genuine.sort(key=lambda checkpoint: (checkpoint.seq, checkpoint.signed_at))
    return genuine, findings


# A token may state a time a little before `signed_at` (two clocks); not more than this.
TIMESTAMP_SKEW = timedelta(minutes=5)


def _timestamp_problem(checkpoint: Checkpoint, tsa: TimestampAuthority | None) -> str | None:
    """Why the checkpoint's RFC 3161 token does not vouch for it (None: it does, or there is no
    token or no TSA to check it with)."""
    if checkpoint.timestamp is None or tsa is None:
        return None
    try:
        stated = tsa.check(checkpoint.timestamp, checkpoint.digest)
    except TimestampError as error:
        return f"its RFC 3161 timestamp does not verify ({error})"
    if stated < datetime.fromisoformat(checkpoint.signed_at) - TIMESTAMP_SKEW:
        return f"its RFC 3161 timestamp ({stated.isoformat()}) is older than its signing time"
    return None


def _sequence_findings(genuine: list[Checkpoint], full: bool) -> list[_Finding]:
    """Checkpoints link to their predecessor's digest: a deleted or replaced one shows here."""
    findings: list[_Finding] = []
    by_seq: dict[int, list[Checkpoint]] = {}
    for checkpoint in genuine:
        by_seq.setdefault(checkpoint.seq, []).append(checkpoint)
    seqs = sorted(by_seq)
    for seq in seqs:
        if len({checkpoint.hash for checkpoint in by_seq[seq]}) > 1:
            reason = f"two signed checkpoints of seq {seq} name different hashes"
            findings.append((seq, reason, (seq, seq)))
    for earlier, later in pairwise(seqs):
        digests = {checkpoint.digest for checkpoint in by_seq[earlier]}
        if not any(checkpoint.prev in digests for checkpoint in by_seq[later]):
            reason = (
                f"a checkpoint between seq {earlier} and seq {later} is missing or was replaced"
            )
            findings.append((earlier + 1, reason, (earlier + 1, later)))
    if full and seqs and all(c.prev != GENESIS_HASH for c in by_seq[seqs[0]]):
        reason = f"the checkpoints before seq {seqs[0]} are missing"
        findings.append((1, reason, (1, seqs[0])))
    return findings


def _row_findings(genuine: list[Checkpoint], count: int, hashes: dict[int, str]) -> list[_Finding]:
    """The rows against what was signed: a rewrite before a checkpoint, or a cut tail."""
    findings: list[_Finding] = []
    last_good = 0
    for checkpoint in genuine:
        if checkpoint.seq > count:
            reason = (
                f"rows after seq {count} are missing: a checkpoint signed at "
                f"{checkpoint.signed_at} covers seq {checkpoint.seq}"
            )
            findings.append((count + 1, reason, (count + 1, checkpoint.seq)))
            break
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            reason = (
                f"rows {last_good + 1}-{checkpoint.seq} were rewritten: seq {checkpoint.seq} no "
                f"longer has the hash signed at {checkpoint.signed_at}"
            )
            findings.append((last_good + 1, reason, (last_good + 1, checkpoint.seq)))
            break
        last_good = checkpoint.seq
    return findings


def _unpublished_findings(
    tenant_id: int | None, genuine: list[Checkpoint], since_seq: int
) -> list[_Finding]:
    """Checkpoints the chain says were signed that no store holds any more."""
    kept = {checkpoint.digest for checkpoint in genuine}
    recorded = AuditEvent.objects.filter(
        tenant_id=tenant_id, action=CHECKPOINT_ACTION, seq__gt=since_seq
    ).values_list("seq", "data")
    findings: list[_Finding] = []
    for event_seq, data in recorded:
        statement = (data or {}).get("statement") or {}
        if data.get("digest") not in kept and int(statement.get("seq", 0)) > since_seq:
            seq = int(statement.get("seq", event_seq))
            reason = f"the checkpoint of seq {seq} recorded at seq {event_seq} is in no store"
            findings.append((seq, reason, (seq, seq)))
    return findings


def verify_chain(
    tenant_id: int | None,
    label: str,
    *,
    checkpoints: CheckpointSource | None = None,
    incremental: bool = False,
) -> ChainReport:
    """The verdict on one chain (`_verified`), labelled with the chain's key."""
    report = _verified(tenant_id, label, checkpoints=checkpoints, incremental=incremental)
    return dataclasses.replace(report, key=chain_key(tenant_id))


def _verified(
    tenant_id: int | None,
    label: str,
    *,
    checkpoints: CheckpointSource | None,
    incremental: bool,
) -> ChainReport:
    """Recompute one chain; report the first seq that is missing, extra, modified or reordered,
    then compare it with its signed checkpoints (a rewrite before one, a tail cut after one, a
    checkpoint deleted, forged or replaced).

    An intact tenant chain then has the registered record checks run on it: the first record
    that no longer verifies is reported at the seq of the event that recorded it.

    `incremental` reads only the newest checkpoint and walks only from it (its row must still
    carry the signed hash): the hourly job stays short however long the chain and its list of
    checkpoints grow. Anything it finds is reported by a full walk, which names the first row.

    The head is read before the rows: rows committed meanwhile only extend the chain past it,
    so a concurrent writer never looks like tampering.
    """
    source = checkpoints if checkpoints is not None else CheckpointSource.configured()
    key = chain_key(tenant_id)
    head = AuditChainHead.objects.filter(key=key).first()
    head_seq = head.seq if head else 0
    since = max(_newest_kept_seq(source, key) - 1, 0) if incremental else 0
    genuine, not_genuine = _readable_checkpoints(source, key, since)
    start = genuine[-1].seq if incremental and genuine else 1
    if incremental and (start == 1 or not_genuine):
        return _verified(tenant_id, label, checkpoints=source, incremental=False)  # no sure start
    genuine = [checkpoint for checkpoint in genuine if checkpoint.seq >= start]
    walk = _walk_parts if connection.vendor == "postgresql" else _walk_rows
    marks = {head_seq, *(checkpoint.seq for checkpoint in genuine)}
    broken, count, hashes = walk(tenant_id, label, marks, start)
    if incremental and (broken or hashes.get(start) != genuine[0].hash or count < head_seq):
        return _verified(tenant_id, label, checkpoints=source, incremental=False)
    end = max(head_seq, count, *(checkpoint.seq for checkpoint in genuine), 0)
    if broken:
        window = (broken.first_bad_seq or 1, max(end, broken.first_bad_seq or 1))
        return dataclasses.replace(broken, window=window, checkpoints=len(genuine))
    findings: list[_Finding] = []
    if head is None:
        if count:
            findings.append((1, "chain head is missing", (1, end)))
    elif count < head_seq:
        reason = f"rows after seq {count} are missing (chain head is at seq {head_seq})"
        findings.append((count + 1, reason, (count + 1, head_seq)))
    elif head_seq and hashes.get(head_seq) != head.hash:
        findings.append((head_seq, "chain head hash does not match its row", (head_seq, end)))
    findings += _sequence_findings(genuine, full=not incremental)
    findings += _row_findings(genuine, count, hashes)
    if source.complete:
        findings += _unpublished_findings(tenant_id, genuine, start - 1)
    if tenant_id is not None and not findings:
        for seq, reason in sorted(p for check in _RECORD_CHECKS for p in check(tenant_id)):
            findings.append((seq, reason, (seq, seq)))
    if incremental and (findings or not_genuine):
        return _verified(tenant_id, label, checkpoints=source, incremental=False)  # names it
    if findings or not_genuine:
        # A checkpoint that is not genuine explains the gaps it leaves: name it first.
        seq, reason, window = min(not_genuine or findings)
        return ChainReport(label, count, seq, reason, window, len(genuine))
    return ChainReport(label, count, checkpoints=len(genuine))


def _newest_kept_seq(source: CheckpointSource, key: str) -> int:
    """The highest seq any readable store holds a checkpoint of for the chain (0: none)."""
    newest = 0
    for store in source.stores:
        try:
            seqs = store.seqs(key)
        except (CheckpointError, OSError):
            continue
        newest = max(newest, seqs[-1] if seqs else 0)
    return newest


def _chains_only_in_stores(
    source: CheckpointSource, known: set[str]
) -> list[tuple[int | None, str]]:
    """Tenant chains with checkpoints in a store but no tenant row any more (labelled by key)."""
    found: set[str] = set()
    for store in source.stores:
        try:
            found.update(store.chains())
        except (CheckpointError, OSError):
            continue
    return [
        (int(key.split(":", 1)[1]), key)
        for key in sorted(found - known)
        if key.startswith("tenant:") and key.split(":", 1)[1].isdigit()
    ]


def verify_all(
    *,
    tenant_slug: str | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoints: CheckpointSource | None = None,
    incremental: bool = False,
) -> list[ChainReport]:
    """Verify the platform chain and every tenant's (or only `tenant_slug`'s), in system scope,
    each against its signed checkpoints (the configured stores unless told others)."""
    source = checkpoints if checkpoints is not None else CheckpointSource.configured()
    with system_scope():
        tenants = Tenant.objects.order_by("slug").values_list("id", "slug")
        if tenant_slug:
            tenants = tenants.filter(slug=tenant_slug)
            if not tenants.exists():
                raise LookupError(f"No tenant with slug {tenant_slug!r}.")
        chains: list[tuple[int | None, str]] = [] if tenant_slug else [(None, "platform")]
        chains += list(tenants)
        if not tenant_slug:  # a chain the stores vouch for whose tenant row is gone
            chains += _chains_only_in_stores(source, {chain_key(t) for t, _ in chains})
        reports = []
        for tenant_id, label in chains:
            if progress:
                progress(f"verifying {label} …")
            reports.append(
                verify_chain(tenant_id, label, checkpoints=source, incremental=incremental)
            )
    return reports

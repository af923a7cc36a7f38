"""Walking a chain and saying where, if anywhere, it was tampered with.

On PostgreSQL the walk reads the chain as COPY text (`chain_lines`: one line per row, the
database formats `created_at`), so no row is built as Python objects. A line with nothing to
unescape is hashed as it stands around `data`, re-encoded canonically by orjson
(`_fast_confirms`); any other line is unescaped and hashed in row_hash's own canonical form
(`_line_confirms`); a row a line cannot stand for (a NULL, an odd date) is rechecked with
row_hash over the ORM's values. Every hash is computed here, never by the database: what its
administrator could change includes the database's own functions. So the walk reports what
the row-by-row reference walk (`_walk_rows`, used on other databases) reports, only sooner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection, transaction
from django.db.models import QuerySet

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

# The walk reads each row as one line of COPY text, its fields separated by tabs:
#   id, seq, hash, data (jsonb text), the text fields in HASHED_FIELDS order from `action` to
#   `prev_hash`, with created_at as row_hash writes it.
# It relies on this layout of HASHED_FIELDS.
_TEXT_BEFORE_DATA = HASHED_FIELDS[2:10]  # action … target_repr
_TEXT_AFTER_DATA = HASHED_FIELDS[11:]  # request_id, ip, user_agent, created_at, prev_hash
if (
    HASHED_FIELDS[:2] != ("tenant_id", "seq")
    or HASHED_FIELDS[10] != "data"
    or HASHED_FIELDS[14:] != ("created_at", "prev_hash")
):
    raise RuntimeError("HASHED_FIELDS changed: update the walk in audit.verify to match.")
_BEFORE = slice(4, 4 + len(_TEXT_BEFORE_DATA))
_AFTER = slice(_BEFORE.stop, _BEFORE.stop + len(_TEXT_AFTER_DATA))
_FIELDS = _AFTER.stop
# created_at as row_hash writes it (UTC, six fractional digits, +00:00); NULL outside the
# years Python can represent, so such a row goes to the reference check.
_CREATED_AT_ISO = (
    "CASE WHEN {c} >= '0001-01-01 00:00:00+00' AND {c} < '10000-01-01 00:00:00+00' "
    """THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') END"""
)
_SEPARATOR = b'","'
# Quotes in the joined text fields when no field holds one: two per separator.
_BEFORE_QUOTES = 2 * (len(_TEXT_BEFORE_DATA) - 1)
_AFTER_QUOTES = 2 * (len(_TEXT_AFTER_DATA) - 1)
# What the fast path cannot take as it stands: a backslash (COPY writes one before a
# backslash, newline, carriage return or tab in a value, and for NULL) or a control character
# other than the tab between fields (JSON escapes them). A quote is caught by counting.
_ESCAPED = b"\\" + bytes(range(9)) + bytes(range(10, 32))
_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_COPY_UNESCAPED = {
    b"\\": b"\\",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"b": b"\b",
    b"f": b"\f",
    b"v": b"\v",
}
_json_loads, _json_dumps, _SORTED = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
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


def _chain_events(tenant_id: int | None) -> QuerySet[AuditEvent]:
    """The events of one chain: a tenant's, or the platform's (no tenant)."""
    if tenant_id:
        return AuditEvent.objects.filter(tenant_id=tenant_id)
    return AuditEvent.objects.filter(tenant__isnull=True)


def chain_rows(tenant_id: int | None, start: int = 1) -> Iterator[tuple]:
    """Rows of one chain from seq `start` on, in seq order, as tuples in HASHED_FIELDS order
    followed by the hash."""
    rows = _chain_events(tenant_id).filter(seq__gte=start).order_by("seq")
    return rows.values_list(*HASHED_FIELDS, "hash").iterator(chunk_size=CHUNK)


def _copy_sql(tenant_id: int | None, start: int) -> str:
    """COPY of one chain's rows from seq `start` on, in seq order, as the walk reads them."""
    quote = connection.ops.quote_name
    columns = [
        "id",
        "seq",
        "hash",
        f"{quote('data')}::text",
        *(quote(name) for name in _TEXT_BEFORE_DATA),
        *(
            _CREATED_AT_ISO.format(c=quote(name)) if name == "created_at" else quote(name)
            for name in _TEXT_AFTER_DATA
        ),
    ]
    tenant = "IS NULL" if tenant_id is None else f"= {int(tenant_id)}"
    # COPY takes no parameters: only our own identifiers and two integers are interpolated.
    return (
        f"COPY (SELECT {', '.join(columns)} FROM {quote(AuditEvent._meta.db_table)} "  # noqa: S608
        f"WHERE tenant_id {tenant} AND seq >= {int(start)} ORDER BY seq) TO STDOUT"
    )


def chain_lines(tenant_id: int | None, start: int = 1) -> Iterator[list[bytes]]:
    """One chain from seq `start` on, in seq order, in chunks of COPY text lines (no newline).

    Each line holds id, seq, hash, data as jsonb text, then the text fields of the canonical
    form from `action` to `prev_hash`, separated by tabs. Nothing else may use the connection
    until the generator is exhausted or closed (a stop part-way reads the rest and drops it).
    """
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(_copy_sql(tenant_id, start)) as copy:
        finished = False
        try:
            lines: list[bytes] = []
            for block in copy:  # the server sends one row per block, newline included
                lines.append(bytes(block[:-1]))
                if len(lines) >= CHUNK:
                    yield lines
                    lines = []
            finished = True
            if lines:
                yield lines
        finally:
            while not finished and copy.read():
                pass


def needs_unescaping(text: bytes) -> bool:
    """Whether COPY text holds a backslash or a control character other than a tab."""
    return len(text.translate(None, _ESCAPED)) != len(text)


def _fast_confirms(tenant_json: bytes, fields: list[bytes]) -> bool:
    """Does the row's canonical form, rebuilt from its COPY line, hash to its hash?

    Only for a line that does not `needs_unescaping`: when no text field holds a quote either,
    they are their own JSON string contents, and `data` is re-encoded canonically by orjson.
    False means: ask `_line_confirms`.
    """
    before, after = _SEPARATOR.join(fields[_BEFORE]), _SEPARATOR.join(fields[_AFTER])
    if before.count(b'"') != _BEFORE_QUOTES or after.count(b'"') != _AFTER_QUOTES:
        return False
    try:
        data = _json_dumps(_json_loads(fields[3]), option=_SORTED)
    except (TypeError, ValueError):
        return False
    text = b'[%b,%b,"%b",%b,"%b"]' % (tenant_json, fields[1], before, data, after)
    return _sha256(text).hexdigest().encode() == fields[2]


def _copy_value(field: bytes) -> str | None:
    """A COPY text field as the value it stands for; None for NULL or anything unexpected."""
    if field == b"\\N":
        return None
    try:
        return _COPY_ESCAPE.sub(lambda m: _COPY_UNESCAPED[m.group(1)], field).decode()
    except (KeyError, UnicodeDecodeError):
        return None


def _line_confirms(tenant_id: int | None, seq: int, fields: list[bytes]) -> bool | None:
    """row_hash's own canonical form of a COPY line: does it hash to the row's hash? None
    when the line cannot stand for the row's values (a NULL, an odd date): ask the ORM."""
    values = [_copy_value(field) for field in fields[3:_FIELDS]]
    if None in values:
        return None
    try:
        data = json.loads(values[0])
    except ValueError:
        return None
    before, after = values[1 : 1 + len(_TEXT_BEFORE_DATA)], values[1 + len(_TEXT_BEFORE_DATA) :]
    text = canonical_json([tenant_id, seq, *before, data, *after])
    return _sha256(text.encode()).hexdigest() == fields[2].decode()


def _recheck(rows: list[tuple], label: str) -> ChainReport | None:
    """Check rows the walk could not confirm from their lines with row_hash over the ORM's values.

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


def _walk_start(start: int, prev: str | None) -> tuple[int, str | None, int]:
    """expected seq, expected prev_hash (None: take the first row's own) and rows counted so
    far, for a walk from seq `start`: 1, the seq after a signed purge (`prev` is the hash it
    signed), or a signed checkpoint's seq for an incremental walk. Rows before `start` count
    as read; a checkpoint's row is then checked against its signed hash."""
    return start, (GENESIS_HASH if start == 1 else prev), start - 1


def _walk_rows(
    tenant_id: int | None, label: str, marks: Container[int], start: int, prev: str | None
) -> _Walked:
    """The reference walk: row by row over the ORM's values (on databases other than PostgreSQL)."""
    (expected_seq, prev, count), hashes = _walk_start(start, prev), {}
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


def _walk_lines(
    tenant_id: int | None, label: str, marks: Container[int], start: int, prev_hash: str | None
) -> _Walked:
    """The same walk over chain_lines (PostgreSQL), hashing each line through `_fast_confirms`,
    then `_line_confirms`; rows neither can read are rechecked through the ORM once the COPY
    is closed, before a break further on is reported (the first bad row wins)."""
    tenant_json = b"null" if tenant_id is None else str(int(tenant_id)).encode()
    expected_seq, first_prev, count = _walk_start(start, prev_hash)
    prev = first_prev.encode() if first_prev else None
    hashes: dict[int, str] = {}
    unread: list[tuple] = []  # (id, rows before it, seq, prev_hash, hash) for _recheck
    broken = None
    with transaction.atomic(), closing(chain_lines(tenant_id, start)) as chunks:
        for lines in chunks:
            plain = not needs_unescaping(b"\t".join(lines))  # as usual: no line of the chunk does
            for line in lines:
                fields = line.split(b"\t")
                seq, stored_hash = int(fields[1]), fields[2]
                if seq != expected_seq:
                    reason = f"expected seq {expected_seq}, found {seq}"
                    broken = ChainReport(label, count, expected_seq, reason)
                    break
                if prev is not None and fields[-1] != prev:
                    broken = ChainReport(
                        label, count, seq, "prev_hash does not match the previous row"
                    )
                    break
                if not (
                    (plain or not needs_unescaping(line)) and _fast_confirms(tenant_json, fields)
                ):
                    confirmed = _line_confirms(tenant_id, seq, fields)
                    if confirmed is False:
                        broken = ChainReport(
                            label, count, seq, "row content does not match its hash"
                        )
                        break
                    if confirmed is None:
                        unread.append(
                            (int(fields[0]), count, seq, fields[-1].decode(), stored_hash.decode())
                        )
                if seq in marks:
                    hashes[seq] = stored_hash.decode()
                prev, expected_seq, count = stored_hash, expected_seq + 1, count + 1
            if broken:
                break
    if unread and (bad_row := _recheck(unread, label)):
        return bad_row, bad_row.rows, hashes
    return broken, (broken.rows if broken else count), hashes


def _walk_past(
    walk: Callable[..., _Walked],
    chain: tuple[int | None, str, Container[int]],
    start: tuple[int, str | None],
    acknowledged: Collection[tuple[int, str]],
) -> _Walked:
    """`walk` the chain (tenant id, label, marks) from `start` (seq, the prev_hash expected
    there); at a break whose finding was acknowledged, go on from the next row there is (its
    link to the rows before unchecked). The first break not acknowledged is reported; when
    every break was, the first one."""
    tenant_id = chain[0]
    first: ChainReport | None = None
    hashes: dict[int, str] = {}
    seq, prev = start
    while True:
        broken, count, found = walk(*chain, seq, prev)
        hashes.update(found)
        if broken is None or (broken.first_bad_seq, broken.reason) not in acknowledged:
            return broken or first, count, hashes
        first = first or broken
        after = _chain_events(tenant_id).filter(seq__gt=broken.first_bad_seq).order_by("seq")
        resume = after.values_list("seq", flat=True).first()
        if resume is None:
            return first, count, hashes
        seq, prev = resume, None


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
    acknowledged: Collection[tuple[int, str]] = (),
) -> ChainReport:
    """The verdict on one chain (`_verified`), labelled with the chain's key."""
    report = _verified(
        tenant_id,
        label,
        checkpoints=checkpoints,
        incremental=incremental,
        acknowledged=acknowledged,
    )
    return dataclasses.replace(report, key=chain_key(tenant_id))


def _verified(
    tenant_id: int | None,
    label: str,
    *,
    checkpoints: CheckpointSource | None,
    incremental: bool,
    acknowledged: Collection[tuple[int, str]] = (),
) -> ChainReport:
    """Recompute one chain; report the first seq that is missing, extra, modified or reordered,
    then compare it with its signed checkpoints (a rewrite before one, a tail cut after one, a
    checkpoint deleted, forged or replaced).

    An intact tenant chain then has the registered record checks run on it: the first record
    that no longer verifies is reported at the seq of the event that recorded it.

    `incremental` reads only the newest checkpoint and walks only from it (its row must still
    carry the signed hash): the hourly job stays short however long the chain and its list of
    checkpoints grow. Anything it finds is reported by a full walk, which names the first row.

    `acknowledged` holds the (first_bad_seq, reason) of findings an audit_admin acknowledged:
    the walk steps over them (`_walk_past`) to report the first finding that is not, so a
    break acknowledged once cannot hide a later one.

    The head is read before the rows: rows committed meanwhile only extend the chain past it,
    so a concurrent writer never looks like tampering.
    """
    source = checkpoints if checkpoints is not None else CheckpointSource.configured()
    key = chain_key(tenant_id)
    head = AuditChainHead.objects.filter(key=key).first()
    head_seq = head.seq if head else 0
    since = max(_newest_kept_seq(source, key) - 1, 0) if incremental else 0
    signed, not_genuine = _readable_checkpoints(source, key, since)
    if incremental:
        start, prev = (signed[-1].seq if signed else 1), None
    else:
        start, prev = _purged_through(signed)
    if incremental and (start == 1 or not_genuine):
        return _verified(
            tenant_id, label, checkpoints=source, incremental=False, acknowledged=acknowledged
        )  # no sure start
    genuine = [checkpoint for checkpoint in signed if checkpoint.seq >= start]
    walk = _walk_lines if connection.vendor == "postgresql" else _walk_rows
    marks = {head_seq, *(checkpoint.seq for checkpoint in genuine)}
    chain = (tenant_id, label, marks)
    broken, count, hashes = _walk_past(walk, chain, (start, prev), acknowledged)
    if incremental and (broken or hashes.get(start) != genuine[0].hash or count < head_seq):
        return _verified(
            tenant_id, label, checkpoints=source, incremental=False, acknowledged=acknowledged
        )
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
    findings += _sequence_findings(signed, full=not incremental)
    findings += _row_findings(genuine, count, hashes)
    if source.complete:
        findings += _unpublished_findings(tenant_id, genuine, start - 1)
    if tenant_id is not None and not findings:
        for seq, reason in sorted(p for check in _RECORD_CHECKS for p in check(tenant_id)):
            findings.append((seq, reason, (seq, seq)))
    if incremental and (findings or not_genuine):
        return _verified(
            tenant_id, label, checkpoints=source, incremental=False, acknowledged=acknowledged
        )  # names it
    if findings or not_genuine:
        # A checkpoint that is not genuine explains the gaps it leaves: name it first.
        seq, reason, window = min(not_genuine or findings)
        return ChainReport(label, count, seq, reason, window, len(genuine))
    return ChainReport(label, count, checkpoints=len(genuine))


def _purged_through(signed: list[Checkpoint]) -> tuple[int, str | None]:
    """Where a full walk starts: after the rows the newest genuine purge checkpoint removed
    (seq, the hash it signed for the row before), else at seq 1. Rows removed without one
    are reported as missing from seq 1 (audit.retention)."""
    purges = [checkpoint.purge for checkpoint in signed if checkpoint.purge]
    if not purges:
        return 1, GENESIS_HASH
    try:
        newest = max(purges, key=lambda purge: int(purge["through_seq"]))
        return int(newest["through_seq"]) + 1, str(newest["hash"])
    except (KeyError, TypeError, ValueError):
        return 1, GENESIS_HASH


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
    acknowledged: Mapping[str, Collection[tuple[int, str]]] | None = None,
) -> list[ChainReport]:
    """Verify the platform chain and every tenant's (or only `tenant_slug`'s), in system scope,
    each against its signed checkpoints (the configured stores unless told others), stepping
    over the findings `acknowledged` lists for its key (`audit.integrity.acknowledged_findings`)."""
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
                verify_chain(
                    tenant_id,
                    label,
                    checkpoints=source,
                    incremental=incremental,
                    acknowledged=(acknowledged or {}).get(chain_key(tenant_id), ()),
                )
            )
    return reports

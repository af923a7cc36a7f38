"""Verifying a hash chain: audit.verify.verify_chain vs streaming the same rows without hashing.

Loads one valid chain of --rows events (hashes computed with audit.chain.row_hash, seq 1..N,
prev_hash links, chain head set) with COPY, then alternates two passes over it, each inside
system_scope() as the real verifier runs: verify_chain (fetch + recompute every hash) and a
plain iteration of audit.verify.chain_lines (the COPY stream verify_chain reads, no hashing).
Medians of rows/s. With --loaded, another process spins on a core for the whole measurement
(the issue's "another process busy on the other core").

    python bench/audit_verify.py [--rows 1000000] [--rounds 3] [--loaded]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "audit_verify"
TARGET_RATIO = 0.5
TARGET_SECONDS_PER_MILLION = 5.0
ACTIONS = ("account.created", "auth.login_succeeded", "grant.approved", "membership.created")


def event_values(tenant_id: int, seq: int, prev: str, started: datetime) -> tuple:
    """One plausible event in HASHED_FIELDS order (without its hash)."""
    return (
        tenant_id,
        seq,
        ACTIONS[seq % len(ACTIONS)],
        str(1000 + seq % 37),
        f"agent{seq % 37}@helpdesk.example",
        "human",
        "DeskCo MSP" if seq % 3 == 0 else "",
        "recovery.ProtectedAccount",
        str(seq % 5000),
        f"user{seq % 5000}@client.example",
        {"ticket": f"INC-{seq:08d}", "channel": "phone", "reason": "locked out", "n": seq},
        f"{seq:032x}",
        f"10.{seq % 250}.{seq % 199}.{seq % 97}",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        started + timedelta(microseconds=seq * 1_337),
        prev,
    )


def load_chain(tenant, rows: int) -> None:
    """COPY a valid chain of `rows` events for `tenant` and point its chain head at the end."""
    from django.db import connection

    from audit.chain import GENESIS_HASH, HASHED_FIELDS, chain_key, row_hash
    from audit.models import AuditChainHead

    columns = ", ".join((*HASHED_FIELDS, "hash"))
    started = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    prev = GENESIS_HASH
    began = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection, for COPY
    with raw.transaction(), raw.cursor() as cursor:
        with cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
            for seq in range(1, rows + 1):
                values = event_values(tenant.pk, seq, prev, started)
                prev = row_hash(values)
                copy.write_row((*values[:10], json.dumps(values[10]), *values[11:], prev))
                if seq % 200_000 == 0:
                    _setup.say(f"  loaded {seq:,} rows …")
        AuditChainHead.objects.create(key=chain_key(tenant.pk), tenant=tenant, seq=rows, hash=prev)
    _setup.say(f"loaded {rows:,} chained rows in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    _setup.say(f"VACUUM ANALYZE in {time.perf_counter() - began:.1f} s")


def run_verify(tenant) -> tuple[float, object]:
    from audit.verify import verify_chain
    from tenants.rls import system_scope

    began = time.perf_counter()
    with system_scope():
        report = verify_chain(tenant.pk, tenant.slug)
    return time.perf_counter() - began, report


def run_stream(tenant) -> tuple[float, int]:
    """The baseline: the rows verify_chain reads (audit.verify.chain_lines), without hashing."""
    from audit.verify import chain_lines
    from tenants.rls import system_scope

    began = time.perf_counter()
    count = 0
    with system_scope():
        for lines in chain_lines(tenant.pk):
            for _line in lines:
                count += 1
    return time.perf_counter() - began, count


def run_orm_stream(tenant) -> tuple[float, int]:
    """For context only: the ORM's typed rows (audit.verify.chain_rows), the pre-shortcut path."""
    from audit.verify import chain_rows
    from tenants.rls import system_scope

    began = time.perf_counter()
    count = 0
    with system_scope():
        for _row in chain_rows(tenant.pk):
            count += 1
    return time.perf_counter() - began, count


def _spin() -> None:
    """Keep one core busy until terminated."""
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="vouchsafe_bench_audit_verify")
    parser.add_argument(
        "--orm-stream", action="store_true", help="also time one pass of the ORM's chain_rows"
    )
    parser.add_argument(
        "--loaded", action="store_true", help="measure with another process busy on a core"
    )
    args = parser.parse_args()

    _setup.setup_django(args.database)
    tenant = _setup.make_tenant("bench-verify")
    load_chain(tenant, args.rows)

    seconds, count = run_stream(tenant)  # warm-up: pulls the table into the page cache
    _setup.say(f"warm-up stream: {count:,} rows in {seconds:.2f} s")
    if count != args.rows:
        raise SystemExit(f"expected {args.rows} rows, streamed {count}")

    spinner = multiprocessing.Process(target=_spin, daemon=True) if args.loaded else None
    if spinner:
        spinner.start()
        _setup.say("another process keeps a core busy during the measurement")
    verify_rates: list[float] = []
    stream_rates: list[float] = []
    for r in range(args.rounds):
        order = ("verify", "stream") if r % 2 == 0 else ("stream", "verify")
        for path in order:
            if path == "verify":
                seconds, report = run_verify(tenant)
                if not report.intact or report.rows != args.rows:
                    raise SystemExit(f"the loaded chain does not verify: {report}")
                verify_rates.append(args.rows / seconds)
            else:
                seconds, count = run_stream(tenant)
                stream_rates.append(count / seconds)
        _setup.say(
            f"round {r + 1}/{args.rounds}: verify {verify_rates[-1]:9.0f} rows/s, "
            f"stream {stream_rates[-1]:9.0f} rows/s, "
            f"ratio {verify_rates[-1] / stream_rates[-1]:.2f}"
        )

    if spinner:
        spinner.terminate()
    if args.orm_stream:
        seconds, count = run_orm_stream(tenant)
        _setup.say(f"context: ORM chain_rows stream alone {count / seconds:.0f} rows/s (one pass)")

    verify, stream = _setup.median(verify_rates), _setup.median(stream_rates)
    ratio = verify / stream
    per_million = 1_000_000 / verify
    ok = ratio >= TARGET_RATIO and per_million < TARGET_SECONDS_PER_MILLION
    _setup.say(
        f"median over {args.rounds} rounds of {args.rows:,} rows: "
        f"verify {verify:.0f} rows/s, stream {stream:.0f} rows/s"
    )
    print(
        f"seconds_per_million={per_million:.2f} target<{TARGET_SECONDS_PER_MILLION} "
        f"(stream alone {1_000_000 / stream:.2f})"
    )
    print(
        f"BENCH {NAME}{'_loaded' if args.loaded else ''} rows_per_s={verify:.0f} "
        f"baseline={stream:.0f} ratio={ratio:.2f} "
        f"target={TARGET_RATIO} {_setup.verdict(ok)}"
    )


if __name__ == "__main__":
    main()

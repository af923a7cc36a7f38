"""Appending audit events: audit.services.record (chained) vs a plain ORM insert of the same rows.

Each event gets its own transaction.atomic(), as a real action would. The chained path locks
the chain head row, hashes the row, inserts it and advances the head; the baseline builds the
same AuditEvent with record()'s own builder (same fields, same JSON round-trip of `data`) and
saves it with Model.save(force_insert=True): no lock, no hash, no head. Rounds alternate which
path goes first; medians of events/s are reported.

    python bench/audit_append.py [--events 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "audit_append"
TARGET = 0.5
ACTION = "account.created"


def payload(i: int) -> dict:
    return {"reason": "bench", "i": i, "ticket": f"INC-{i:07d}", "channel": "phone"}


def run_chained(n: int, *, tenant, actor, start: int) -> float:
    from django.db import transaction

    from audit.services import record

    began = time.perf_counter()
    for i in range(start, start + n):
        with transaction.atomic():
            record(action=ACTION, actor=actor, tenant=tenant, target=tenant, data=payload(i))
    return n / (time.perf_counter() - began)


def run_plain(n: int, *, tenant, actor, start: int) -> float:
    """The rows record() would build (its own builder), saved with a plain ORM insert each.

    No chain head lock, no hash: seq counts up in this tenant and prev_hash stays genesis.
    """
    from django.db import transaction

    from audit.chain import GENESIS_HASH
    from audit.services import _new_event

    began = time.perf_counter()
    for i in range(start, start + n):
        with transaction.atomic():
            event = _new_event(
                action=ACTION,
                actor=actor,
                tenant_id=tenant.pk,
                target=tenant,
                data=payload(i),
            )
            event.seq, event.prev_hash = i, GENESIS_HASH
            event.save(force_insert=True)
    return n / (time.perf_counter() - began)


def check_chain(tenant, expected: int) -> None:
    from audit.verify import verify_chain

    report = verify_chain(tenant.pk, tenant.slug)
    if not report.intact or report.rows != expected:
        raise SystemExit(f"chained tenant does not verify: {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200, help="untimed events per path first")
    parser.add_argument("--database", default="vouchsafe_bench_audit_append")
    args = parser.parse_args()

    _setup.setup_django(args.database)
    from audit.context import Actor

    actor = Actor.system("bench")
    chained_tenant = _setup.make_tenant("bench-chained")
    plain_tenant = _setup.make_tenant("bench-plain")
    chained_next = plain_next = 1

    _setup.say(f"warm-up: {args.warmup} events per path")
    run_chained(args.warmup, tenant=chained_tenant, actor=actor, start=chained_next)
    run_plain(args.warmup, tenant=plain_tenant, actor=actor, start=plain_next)
    chained_next += args.warmup
    plain_next += args.warmup

    chained_rates: list[float] = []
    plain_rates: list[float] = []
    for r in range(args.rounds):
        order = ("chained", "plain") if r % 2 == 0 else ("plain", "chained")
        for path in order:
            if path == "chained":
                rate = run_chained(
                    args.events, tenant=chained_tenant, actor=actor, start=chained_next
                )
                chained_next += args.events
                chained_rates.append(rate)
            else:
                rate = run_plain(args.events, tenant=plain_tenant, actor=actor, start=plain_next)
                plain_next += args.events
                plain_rates.append(rate)
        _setup.say(
            f"round {r + 1}/{args.rounds}: chained {chained_rates[-1]:7.0f} events/s, "
            f"plain {plain_rates[-1]:7.0f} events/s, "
            f"ratio {chained_rates[-1] / plain_rates[-1]:.2f}"
        )

    check_chain(chained_tenant, chained_next - 1)
    _setup.say(f"chain of {chained_next - 1} events verifies")

    chained, plain = _setup.median(chained_rates), _setup.median(plain_rates)
    ratio = chained / plain
    _setup.say(
        f"median over {args.rounds} rounds of {args.events} events: "
        f"chained {chained:.0f} events/s, plain {plain:.0f} events/s"
    )
    print(
        f"BENCH {NAME} events_per_s={chained:.0f} baseline={plain:.0f} ratio={ratio:.2f} "
        f"target={TARGET} {_setup.verdict(ratio >= TARGET)}"
    )


if __name__ == "__main__":
    main()

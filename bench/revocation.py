"""Revocation of expired artifacts by the real beat and worker, over a private Redis.

A `redis-server` on a free port is the broker; a real `celery worker` (prefork, 2 processes,
as production runs on this machine) and a real `celery beat` (the project's static schedule,
`artifact-sweep` every `--interval` seconds) work on the benchmark's own database. Three
figures, each with its verdict line:

1. spread: `--artifacts` artifacts expiring evenly over `--spread` seconds; p99 of
   (revoked_at - expires_at) must stay within one sweep interval plus 5 s;
2. burst: as many expiring within the same second; all must be revoked within 60 s;
3. throughput (beat stopped): revocations/s of one `artifact_sweep_task` over `--round-size`
   due artifacts, against no-op tasks/s (`celery.accumulate`) on the same broker and worker,
   rounds alternating, medians.

The artifacts are bulk-created for executed cases (one case per tenant goes through the real
services; see tests/integration/artifact_rows.py), spread round-robin over `--tenants`
tenants, a quarter of them temporary access passes. The database
`vouchsafe_bench_revocation` is dropped and recreated, and dropped again on exit, when the
worker, beat and Redis are stopped too (also on an error, Ctrl-C or SIGTERM).

    python bench/revocation.py [--artifacts 10000] [--spread 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _http
import _setup

sys.path.insert(0, str(_setup.ROOT))  # the test helpers' bulk rows, Redis and worker
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

NAME = "revocation"
LAG_SLACK_SECONDS = 5  # the brief: p99 lag within one interval + 5 s
BURST_LIMIT_SECONDS = 60
THROUGHPUT_TARGET = 0.5  # a revocation costs no more than two empty broker round trips


class Stack:
    """Redis, the worker and beat; `close()` stops whatever was started, in reverse order."""

    def __init__(self, workdir: Path, interval: int) -> None:
        self.workdir = workdir
        self.interval = interval
        self.redis = None
        self.worker = None
        self.beat: subprocess.Popen | None = None
        self.worker_log = workdir / "worker.log"

    def start_redis(self) -> str:
        from tests.integration.private_broker import RedisServer

        self.redis = RedisServer()
        self.redis.start()
        return self.redis.url

    def start_worker(self) -> None:
        from tests.integration.private_broker import Worker

        self.worker = Worker(
            self.redis.url, pool="prefork", concurrency=2, name="bench", log=self.worker_log
        )

    def start_beat(self) -> None:
        from tests.integration.private_broker import database_url

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(),
            "TEST_CELERY_BROKER_URL": self.redis.url,
            "ARTIFACT_SWEEP_INTERVAL_SECONDS": str(self.interval),
        }
        self.beat = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-s",
                str(self.workdir / "beat-schedule"),
                "--pidfile",
                str(self.workdir / "beat.pid"),
                "--loglevel=WARNING",
            ],
            cwd=_setup.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "beat.log").open("ab"),
        )

    def stop_beat(self) -> None:
        if self.beat is not None and self.beat.poll() is None:
            self.beat.terminate()
            try:
                self.beat.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.beat.kill()
        self.beat = None

    def deadlocks(self) -> int:
        if not self.worker_log.exists():
            return 0
        return self.worker_log.read_text(errors="replace").count("deadlock detected")

    def close(self) -> None:
        self.stop_beat()
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.redis is not None:
            self.redis.close()
            self.redis = None


# --- data -----------------------------------------------------------------------------------


class Tenants:
    """`count` tenants, each with one executed case (its own artifact valid for 24 h) that the
    bulk rows copy; everything below counts only the bulk rows."""

    def __init__(self, count: int) -> None:
        from tests.factories import make_tenant
        from tests.integration.artifact_rows import template_case

        self.pairs = [(t, template_case(t)) for t in (make_tenant() for _ in range(count))]
        self.ids = [t.pk for t, _ in self.pairs]
        self.template_cases = [c.pk for _, c in self.pairs]

    def active(self) -> int:
        from recovery.artifacts.models import RecoveryArtifact

        return (
            RecoveryArtifact.objects.filter(tenant_id__in=self.ids, status="active")
            .exclude(case_id__in=self.template_cases)
            .count()
        )


def create_expiring(tenants: Tenants, expires: list[datetime]) -> list[int]:
    """Bulk-create one artifact per expiry, dealt round-robin over the tenants."""
    from tests.integration.artifact_rows import artifacts_expiring

    ids: list[int] = []
    for k, (tenant, template) in enumerate(tenants.pairs):
        ids += artifacts_expiring(tenant, expires[k :: len(tenants.pairs)], template=template)
    return ids


def wait_revoked(tenants: Tenants, deadline: float, label: str, every: float = 10) -> bool:
    """Poll until the bulk rows of the tenants are all revoked, printing progress."""
    shown = time.monotonic()
    while True:
        left = tenants.active()
        if left == 0:
            return True
        now = time.monotonic()
        if now > deadline:
            _setup.say(f"  {label}: {left} still active at the deadline")
            return False
        if now - shown >= every:
            _setup.say(f"  {label}: {left} active")
            shown = now
        time.sleep(0.5)


def lag_percentiles(tenant_ids: list[int]) -> dict[str, float]:
    """Seconds from expiry to revocation over the tenants' artifacts (excluding templates)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                   max(lag), count(*),
                   extract(epoch FROM max(revoked_at) - max(expires_at)),
                   extract(epoch FROM max(revoked_at) - min(revoked_at))
            FROM (
                SELECT extract(epoch FROM revoked_at - expires_at) AS lag, revoked_at, expires_at
                FROM recovery_recoveryartifact
                WHERE tenant_id = ANY(%s) AND revoke_reason = 'expired'
            ) AS revoked
            """,
            [tenant_ids],
        )
        p50, p99, worst, count, last, sweeping = cursor.fetchone()
    return {
        "p50": float(p50),
        "p99": float(p99),
        "max": float(worst),
        "count": int(count),
        "last": float(last),
        "sweeping": float(sweeping),
    }


# --- the three measurements -----------------------------------------------------------------


def spread(args, stack: Stack) -> tuple[float, bool]:
    from django.utils import timezone

    tenants = Tenants(args.tenants)
    start = timezone.now() + timedelta(seconds=args.lead)
    expires = [
        start + timedelta(seconds=args.spread * i / args.artifacts) for i in range(args.artifacts)
    ]
    created = time.perf_counter()
    create_expiring(tenants, expires)
    late = (timezone.now() - start).total_seconds()
    _setup.say(
        f"spread: {args.artifacts} artifacts over {args.tenants} tenants, expiring over "
        f"{args.spread} s from {start:%H:%M:%S} (created in {time.perf_counter() - created:.1f} s"
        + (f"; {late:.1f} s LATE, lags include it" if late > 0 else "")
        + ")"
    )
    deadline = time.monotonic() + args.lead + args.spread + 3 * args.interval + 30
    done = wait_revoked(tenants, deadline, "spread")
    lags = lag_percentiles(tenants.ids)
    _setup.say(
        f"spread: revoked {lags['count']}; lag p50 {lags['p50']:.1f} s, p99 {lags['p99']:.1f} s, "
        f"max {lags['max']:.1f} s (sweep interval {args.interval} s); deadlocks in the worker "
        f"log so far: {stack.deadlocks()}"
    )
    ok = done and lags["p99"] <= args.interval + LAG_SLACK_SECONDS
    return lags["p99"], ok


def burst(args, stack: Stack) -> tuple[float, bool]:
    from django.utils import timezone

    tenants = Tenants(args.tenants)
    second = (timezone.now() + timedelta(seconds=args.lead)).replace(microsecond=0)
    expires = [
        second + timedelta(microseconds=(i * 997) % 1_000_000) for i in range(args.artifacts)
    ]
    before = stack.deadlocks()
    create_expiring(tenants, expires)
    _setup.say(f"burst: {args.artifacts} artifacts expiring within {second:%H:%M:%S}")
    deadline = time.monotonic() + args.lead + BURST_LIMIT_SECONDS + 3 * args.interval
    done = wait_revoked(tenants, deadline, "burst", every=5)
    lags = lag_percentiles(tenants.ids)
    everything = lags["last"] if done else math.inf
    _setup.say(
        f"burst: all {lags['count']} revoked {everything:.1f} s after the last of them expired "
        f"(the sweeps themselves ran {lags['sweeping']:.1f} s, "
        f"{lags['count'] / max(lags['sweeping'], 1e-9):.0f} revocations/s); "
        f"deadlocks during the burst: {stack.deadlocks() - before}"
    )
    return everything, done and everything <= BURST_LIMIT_SECONDS


def throughput(args, stack: Stack) -> tuple[float, float]:
    import redis
    from django.utils import timezone

    from config.celery import app
    from recovery.tasks import artifact_sweep_task

    stack.stop_beat()  # only this script's tasks from here on
    tenants = Tenants(args.tenants)
    broker = redis.Redis(port=stack.redis.port)

    def revocations() -> float:
        past = timezone.now() - timedelta(seconds=5)
        create_expiring(tenants, [past] * args.round_size)
        started = time.perf_counter()
        artifact_sweep_task.apply_async()
        while tenants.active():
            time.sleep(0.02)
        return args.round_size / (time.perf_counter() - started)

    def no_ops() -> float:
        started = time.perf_counter()
        for _ in range(args.round_size):
            app.send_task("celery.accumulate", args=(0,))
        while broker.llen("celery") or broker.hlen("unacked"):
            time.sleep(0.02)
        return args.round_size / (time.perf_counter() - started)

    no_ops()  # warm both worker processes
    revocation_rates, noop_rates = [], []
    for n in range(args.rounds):
        first, second = (revocations, no_ops) if n % 2 == 0 else (no_ops, revocations)
        for measure in (first, second):
            rate = measure()
            (revocation_rates if measure is revocations else noop_rates).append(rate)
        _setup.say(
            f"round {n + 1}: {revocation_rates[-1]:.0f} revocations/s through one sweep task, "
            f"{noop_rates[-1]:.0f} no-op tasks/s"
        )
    return _setup.median(revocation_rates), _setup.median(noop_rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=int, default=10_000)
    parser.add_argument("--spread", type=int, default=120, help="seconds")
    parser.add_argument("--interval", type=int, default=15, help="artifact-sweep, seconds")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-size", type=int, default=2_000)
    parser.add_argument("--lead", type=int, default=25, help="seconds to create the rows")
    parser.add_argument("--database", default=f"vouchsafe_bench_{NAME}")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vouchsafe-bench-revocation-"))
    stack = Stack(workdir, args.interval)
    with _http.Cleanup() as cleanup:  # last in, first out; also on an error, Ctrl-C, SIGTERM
        cleanup.add(f"dropped {args.database}", lambda: _http.drop_database(args.database))
        cleanup.add("closed the script's connections", close_connections)
        cleanup.add("stopped worker, beat and redis", stack.close)
        os.environ["TEST_CELERY_BROKER_URL"] = stack.start_redis()
        _setup.setup_django(args.database)
        stack.start_worker()
        stack.start_beat()
        _setup.say(
            f"redis {stack.redis.url}; worker (prefork x2) and beat (artifact-sweep every "
            f"{args.interval} s) started; logs in {workdir}"
        )
        p99, spread_ok = spread(args, stack)
        everything, burst_ok = burst(args, stack)
        revoke_rate, noop_rate = throughput(args, stack)
        ratio = revoke_rate / noop_rate
        limit = args.interval + LAG_SLACK_SECONDS
        _setup.say(
            f"BENCH {NAME} spread_p99_lag_s={p99:.1f} baseline={args.interval:.1f} "
            f"ratio={p99 / args.interval:.2f} target={limit / args.interval:.2f} "
            f"{_setup.verdict(spread_ok)}"
        )
        _setup.say(
            f"BENCH {NAME} burst_all_revoked_s={everything:.1f} baseline={args.interval:.1f} "
            f"ratio={everything / args.interval:.2f} "
            f"target={BURST_LIMIT_SECONDS / args.interval:.2f} {_setup.verdict(burst_ok)}"
        )
        _setup.say(
            f"BENCH {NAME} revocations_per_s={revoke_rate:.0f} baseline={noop_rate:.0f} "
            f"ratio={ratio:.2f} target={THROUGHPUT_TARGET} "
            f"{_setup.verdict(ratio >= THROUGHPUT_TARGET)}"
        )
    return 0 if spread_ok and burst_ok and ratio >= THROUGHPUT_TARGET else 1


def close_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    sys.exit(main())

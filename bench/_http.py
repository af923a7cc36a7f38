"""Shared set-up for the HTTP benchmarks: bench settings, a restricted database role, gunicorn,
a threaded load client, percentiles, and clean-up on exit.

The web processes run `config.wsgi` under `bench.settings` (the test settings plus persistent
connections, a Redis cache database of its own, raised rate limits and the bench-only baseline
app) and connect as a restricted role made by the project's own `db_roles` command, so
PostgreSQL row-level security filters every query as it does in production. The script itself
(seeding, bulk loads, clean-up) connects as the owner role.

Everything a run creates (databases, the role, gunicorn) is undone by `Cleanup` on normal exit,
on an error, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

ROOT = _setup.ROOT
SETTINGS = "bench.settings"
GUNICORN = Path(sys.executable).with_name("gunicorn")
say = _setup.say


def app_role(database: str) -> str:
    """The restricted role the web processes of `database`'s run connect as."""
    return f"{database}_app"


def role_url(role: str, database: str) -> str:
    scheme, _, rest = _setup.SERVER_URL.partition("://")
    host = rest.rsplit("@", 1)[-1].rstrip("/")
    return f"{scheme}://{role}@{host}/{database}"


def _admin(*statements: str) -> None:
    import psycopg

    with psycopg.connect(_setup.database_url("postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_role(name: str) -> None:
    _admin(f'DROP ROLE IF EXISTS "{name}"')


class Cleanup:
    """Undo steps run last-in first-out, once, whatever ends the run (SIGTERM included)."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    def add(self, label: str, step: Callable[[], None]) -> None:
        self._steps.append((label, step))

    def run(self) -> None:
        # Ctrl-C during clean-up must not leave a database behind: finish it first.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._steps:
                label, step = self._steps.pop()
                try:
                    step()
                    say(f"cleanup: {label}")
                except Exception as error:  # keep undoing the rest
                    say(f"cleanup: {label} FAILED: {error}")
        finally:
            signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.run()


def setup_django(database: str, cleanup: Cleanup, role: str | None = None) -> str:
    """Recreate `database`, migrate it under bench.settings, give it a restricted login role
    (`<database>_app` unless named). Returns the role's name. The script itself stays the owner.
    """
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["DATABASE_URL"] = _setup.database_url(database)
    role = role or app_role(database)
    say(f"database {database}: recreating and migrating …")
    started = time.perf_counter()
    cleanup.add(f"dropped role {role}", lambda: drop_role(role))
    cleanup.add(f"dropped database {database}", lambda: drop_database(database))
    _setup.recreate_database(database)

    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    cleanup.add("closed Django connections", connections.close_all)
    call_command("migrate", verbosity=0, interactive=False)
    grant_app_role(role)
    say(f"database ready in {time.perf_counter() - started:.1f} s (web role {role}, RLS on)")
    return role


def grant_app_role(role: str) -> None:
    """The project's db_roles command for the connected database, plus LOGIN for the role."""
    from django.core.management import call_command
    from django.db import connection

    call_command("db_roles", app_role=role, stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER ROLE "{role}" LOGIN')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One gunicorn serving config.wsgi with bench.settings on 127.0.0.1."""

    database_url: str
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.workers} {self.worker_class} workers{threads} on {self.base}"

    def start(self) -> None:
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="bench-gunicorn-", suffix=".log", delete=False
        )
        self.log_path = Path(log.name)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": self.database_url,
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            str(GUNICORN),
            "--chdir",
            str(ROOT),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--backlog",
            "256",
            "--timeout",
            "60",
            "config.wsgi:application",
        ]
        # A session of its own: a Ctrl-C reaches the script, which then stops gunicorn itself.
        self.process = subprocess.Popen(  # noqa: S603
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited early:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, workers too
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def serving(server: Server, cleanup: Cleanup) -> Iterator[Server]:
    cleanup.add(f"stopped gunicorn on port {server.port}", server.stop)
    server.start()
    say(f"serving: {server.describe()}")
    yield server


@dataclass
class Result:
    """One round of load on one path."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    failures: dict[int, int]
    sample_failure: str = ""
    by_tag: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def load(
    send: Callable[[Any, int], Any],
    *,
    concurrency: int,
    expect: int,
    requests_total: int | None = None,
    seconds: float | None = None,
    tag: Callable[[int], str] | None = None,
) -> Result:
    """Call `send(session, n)` from `concurrency` threads, each with its own keep-alive
    `requests.Session`, `requests_total` times in all or for `seconds`. Latency is measured
    around each call (and kept by `tag(n)` too, when given); an exception in a thread ends the
    load and is raised here."""
    import requests

    if (requests_total is None) == (seconds is None):
        raise ValueError("give requests_total or seconds")
    numbers = itertools.count()
    latencies: list[float] = []
    by_tag: dict[str, list[float]] = {}
    failures: dict[int, int] = {}
    sample: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def more(n: int) -> bool:
        if stop.is_set():
            return False
        if requests_total is not None:
            return n < requests_total
        return time.perf_counter() < deadline

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        tagged: dict[str, list[float]] = {}
        try:
            while more(n := next(numbers)):
                started = time.perf_counter()
                response = send(session, n)
                mine.append((time.perf_counter() - started) * 1000)
                if tag is not None:
                    tagged.setdefault(tag(n), []).append(mine[-1])
                if response.status_code != expect:
                    with lock:
                        failures[response.status_code] = failures.get(response.status_code, 0) + 1
                        if not sample:
                            sample.append(response.text[:300])
        except BaseException as error:
            stop.set()
            errors.append(error)
        finally:
            session.close()
            with lock:
                latencies.extend(mine)
                for key, values in tagged.items():
                    by_tag.setdefault(key, []).extend(values)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    deadline = started + (seconds or 0)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Result(len(latencies), elapsed, latencies, failures, sample[0] if sample else "", by_tag)


def check(result: Result, what: str) -> None:
    if result.failures:
        raise SystemExit(
            f"{what}: unexpected answers {result.failures}, e.g. {result.sample_failure!r}"
        )


def interleaved_rounds(
    send: Callable[[Any, int], Any],
    tag: Callable[[int], str],
    *,
    combos: int,
    requests_per_combo: int,
    rounds: int,
    warmup: int,
    concurrency: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm up, then `rounds` rounds in which every combination (database, query or page) takes
    its turn request by request; each tag's p95 and p50 per round, in milliseconds."""
    check(
        load(send, requests_total=warmup * combos, concurrency=concurrency, expect=200), "warm-up"
    )
    say(
        f"load: {requests_per_combo} requests per round and combination, interleaved; "
        f"{concurrency} client connections"
    )
    p95: dict[str, list[float]] = {}
    p50: dict[str, list[float]] = {}
    for r in range(rounds):
        result = load(
            send,
            requests_total=requests_per_combo * combos,
            concurrency=concurrency,
            expect=200,
            tag=tag,
        )
        check(result, f"round {r + 1}")
        line = []
        for key, latencies in sorted(result.by_tag.items()):
            p95.setdefault(key, []).append(percentile(latencies, 95))
            p50.setdefault(key, []).append(percentile(latencies, 50))
            line.append(f"{key.replace('|', ' ')} {p95[key][-1]:.1f}")
        say(f"round {r + 1}/{rounds} p95 ms: {', '.join(line)}")
    return p95, p50

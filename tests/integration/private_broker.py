"""A private Redis and real Celery workers on it, for tests that stop the broker or kill workers.

The suite's shared Redis (settings' `TEST_CELERY_BROKER_URL`) is never touched: each test
module starts its own `redis-server` on a free port, points this process's Celery app at it
(`celery_app_on`) and starts workers whose environment names it. Stopping that server or
SIGKILLing those workers disturbs nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import redis
from django.conf import settings
from django.db import connection
from kombu import pools

from config.celery import app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """`redis-server` on 127.0.0.1:`port`, no persistence; `stop()` and `start()` again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="vouchsafe-redis-")
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        self._process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.ConnectionError as error:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"no redis-server on port {self.port}") from error
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server, a partition)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _reset_app_connections() -> None:
    pools.reset()  # kombu's process-wide connection and producer pools, keyed by URL
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    if hasattr(app._local, "backend"):
        del app._local.backend


@contextmanager
def celery_app_on(broker_url: str, *, result_backend: str | None = "same") -> Iterator[None]:
    """This process's Celery app (`.delay()`, `apply_async`, on_commit enqueues) on `broker_url`.

    `result_backend="same"` keeps results there too (so tests can `.get()`); None is the
    production default (`CELERY_RESULT_BACKEND` unset).
    """
    saved = (app.conf.broker_url, app.conf.result_backend)
    _reset_app_connections()
    app.conf.broker_url = broker_url
    app.conf.result_backend = broker_url if result_backend == "same" else result_backend
    try:
        yield
    finally:
        _reset_app_connections()
        app.conf.broker_url, app.conf.result_backend = saved


def database_url() -> str:
    """The database this test session runs on (the test database), as a URL."""
    db = settings.DATABASES["default"]
    return (
        f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@{db['HOST']}:"
        f"{db['PORT']}/{connection.settings_dict['NAME']}"
    )


class Worker:
    """One `celery worker` process (see `worker_main` below for what it adds to the settings)."""

    def __init__(
        self,
        broker_url: str,
        *,
        queues: str = "celery",
        pool: str = "solo",
        concurrency: int = 1,
        outbox: Path | None = None,
        smtp: tuple[str, int] | None = None,
        visibility_timeout: int | None = None,
        name: str = "w",
        log: Path | None = None,
    ) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(),
            "TEST_CELERY_BROKER_URL": broker_url,
        }
        if outbox is not None:  # every email and SMS the worker sends, as files we can count
            env["TEST_EMAIL_FILE_PATH"] = str(outbox / "mail")
            env["SMS_OUTBOX_PATH"] = str(outbox / "sms.jsonl")
        if smtp is not None:  # email through a real SMTP server instead
            env["TEST_EMAIL_SMTP"] = f"{smtp[0]}:{smtp[1]}"
        if visibility_timeout is not None:
            env["TEST_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        self._log = log.open("ab") if log else None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.private_broker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                "-Q",
                queues,
                "-n",
                f"{name}-{os.getpid()}-{free_port()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT if log else None,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up, no ack, the open transaction dies with the connection."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()


@contextmanager
def running_worker(broker_url: str, **options) -> Iterator[Worker]:
    worker = Worker(broker_url, **options)
    try:
        yield worker
    finally:
        worker.stop()


def worker_main(argv: list[str]) -> None:
    """The project's Celery app as `celery worker` runs it, plus test-only knobs:

    - `TEST_EMAIL_FILE_PATH`: Django's file email backend there (the test settings' locmem
      outbox would vanish with the process), so a test can count what was sent;
    - `TEST_EMAIL_SMTP` (host:port): Django's SMTP backend to that server, plain, no login;
    - `TEST_VISIBILITY_TIMEOUT`: Redis redelivers a message a killed worker held unacked after
      this many seconds (production keeps kombu's default hour), so a test can watch it.
    """
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    if os.environ.get("TEST_EMAIL_FILE_PATH"):
        settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
        settings.EMAIL_FILE_PATH = os.environ["TEST_EMAIL_FILE_PATH"]
    if os.environ.get("TEST_EMAIL_SMTP"):
        host, port = os.environ["TEST_EMAIL_SMTP"].rsplit(":", 1)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = host, int(port)
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    if os.environ.get("TEST_VISIBILITY_TIMEOUT"):
        app.conf.broker_transport_options = {
            "visibility_timeout": int(os.environ["TEST_VISIBILITY_TIMEOUT"]),
            "unacked_restore_interval": 1,  # look for them every second, not every 100
            "unacked_restore_throttle": 1,
        }
    app.worker_main(["worker", *argv])


if __name__ == "__main__":
    worker_main(sys.argv[1:])

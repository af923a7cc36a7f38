"""A real Celery worker process on the test database, for tests where delivery matters."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from django.conf import settings
from django.db import connection


@contextmanager
def celery_worker(queue: str) -> Iterator[subprocess.Popen]:
    """Run `celery worker` on `queue` (test settings, the test database) until the block ends."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": (
            f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}@{db['HOST']}:"
            f"{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=env,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _use_routes(routes) -> None:
    from config.celery import app

    app.conf.task_routes = routes
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()  # the router caches the old table


@contextmanager
def routed_worker(tasks: tuple[str, ...], prefix: str) -> Iterator[str]:
    """A worker on a queue of its own, with `tasks` queued by this process routed to it; the
    queue's name. The routes are restored and the queue removed from the broker afterwards."""
    from config.celery import app

    queue = f"{prefix}-{uuid.uuid4().hex[:8]}"
    routes = app.conf.task_routes
    _use_routes({task: {"queue": queue} for task in tasks})
    try:
        with celery_worker(queue):
            yield queue
    finally:
        _use_routes(routes)
        with app.connection_for_write() as conn:  # leave no queue behind in the broker
            conn.default_channel.queue_delete(queue)

"""The periodic audit verifier on a real Celery worker, over real Redis, on the test database."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent
from audit.tasks import audit_verify_task

from ..factories import make_tenant


@pytest.fixture
def worker_queue(committed) -> Iterator[str]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
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
        yield queue
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_worker_verifies_every_chain_and_records_the_run(worker_queue):
    make_tenant()
    before = AuditEvent.objects.filter(action="audit.verified").count()
    started = time.monotonic()
    result = audit_verify_task.apply_async(queue=worker_queue).get(timeout=90)
    assert result["broken"] == 0
    assert result["chains"] >= 2  # the platform chain and at least our tenant's
    assert AuditEvent.objects.filter(action="audit.verified").count() == before + 1
    assert time.monotonic() - started < 90

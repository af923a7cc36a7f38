"""The periodic audit verifier on a real Celery worker, over real Redis, on the test database."""

import time
import uuid
from collections.abc import Iterator

import pytest

from audit.models import AuditEvent
from audit.tasks import audit_verify_task

from ..factories import make_tenant
from ..worker import celery_worker


@pytest.fixture
def worker_queue(committed) -> Iterator[str]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with celery_worker(queue):
        yield queue


def test_worker_verifies_every_chain_and_records_the_run(worker_queue):
    make_tenant()
    before = AuditEvent.objects.filter(action="audit.verified").count()
    started = time.monotonic()
    result = audit_verify_task.apply_async(queue=worker_queue).get(timeout=90)
    assert result["broken"] == 0
    assert result["chains"] >= 2  # the platform chain and at least our tenant's
    assert AuditEvent.objects.filter(action="audit.verified").count() == before + 1
    assert time.monotonic() - started < 90

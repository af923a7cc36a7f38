"""Long console operations: queued by a view, run by a worker, polled by the page."""

from __future__ import annotations

import pytest
from django.db import transaction

from tenants.choices import Role
from tenants.exceptions import PolicyDenied
from tenants.jobs import _RUNNERS, FAILED_MESSAGE, job_run, job_start, register_job_kind
from tenants.models import BackgroundJob, JobStatus
from tests.conftest import signed_in_client
from tests.factories import staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def counting_kind():
    """A job kind that counts to `params.n` in steps, recording each progress report."""
    seen: list[tuple[int, int]] = []

    def run(job, progress):
        n = job.params["n"]
        for i in range(1, n + 1):
            progress(i, n)
            seen.append((i, n))
        if job.params.get("refuse"):
            raise PolicyDenied("You may no longer do this.", code="job.refused")
        if job.params.get("crash"):
            raise RuntimeError("boom: internal detail")
        return {"counted": n}

    register_job_kind("test.count", run)
    yield seen
    _RUNNERS.pop("test.count")


def test_a_job_runs_once_and_stores_progress_and_result(acme, counting_kind):
    user = staff(Role.AUDITOR, tenant=acme)
    job = job_start(actor=user, tenant=acme, kind="test.count", params={"n": 3})
    job_run(job.pk, acme.pk)
    job_run(job.pk, acme.pk)  # a redelivered task finds it no longer queued
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.result) == ("done", 3, 3, {"counted": 3})
    assert job.finished_at is not None
    assert counting_kind == [(1, 3), (2, 3), (3, 3)]


def test_a_refusal_fails_the_job_with_its_message(acme, counting_kind):
    job = job_start(
        actor=staff(Role.AUDITOR, tenant=acme),
        tenant=acme,
        kind="test.count",
        params={"n": 1, "refuse": True},
    )
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "You may no longer do this. (job.refused)"


def test_an_unexpected_error_fails_the_job_without_leaking_details(acme, counting_kind):
    job = job_start(
        actor=staff(Role.AUDITOR, tenant=acme),
        tenant=acme,
        kind="test.count",
        params={"n": 1, "crash": True},
    )
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, FAILED_MESSAGE)


def test_progress_inside_a_transaction_is_refused(acme, counting_kind):
    def sloppy(job, progress):
        with transaction.atomic():
            progress(1, 1)
        return {}

    register_job_kind("test.sloppy", sloppy)
    try:
        job = job_start(
            actor=staff(Role.AUDITOR, tenant=acme), tenant=acme, kind="test.sloppy", params={}
        )
        job_run(job.pk, acme.pk)
    finally:
        _RUNNERS.pop("test.sloppy")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_unknown_kind_is_refused_and_nothing_is_queued(acme):
    from tenants.exceptions import InvalidInput

    with pytest.raises(InvalidInput):
        job_start(actor=staff(Role.AUDITOR, tenant=acme), tenant=acme, kind="nope", params={})
    assert not BackgroundJob.objects.exists()


def test_a_kind_cannot_be_registered_twice(counting_kind):
    with pytest.raises(ValueError):
        register_job_kind("test.count", lambda job, progress: {})


def test_job_page_polls_until_done_then_stops(acme, counting_kind):
    user = staff(Role.AUDITOR, tenant=acme)
    job = job_start(actor=user, tenant=acme, kind="test.count", params={"n": 2})
    client = signed_in_client(user)
    url = f"/t/{acme.slug}/jobs/{job.pk}/"
    queued = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'hx-trigger="every 1s"' in queued and "<html" not in queued
    BackgroundJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, done=1, total=2)
    running = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'value="50"' in running and "1 of 2" in running
    BackgroundJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="It broke.")
    failed = client.get(url).content.decode()
    assert "It broke." in failed and "every 1s" not in failed and "<html" in failed


def test_only_the_creator_sees_a_job_and_other_tenants_get_a_404(acme, globex, counting_kind):
    owner = staff(Role.AUDITOR, tenant=acme)
    job = job_start(actor=owner, tenant=acme, kind="test.count", params={"n": 1})
    colleague = signed_in_client(staff(Role.AUDITOR, tenant=acme))
    assert colleague.get(f"/t/{acme.slug}/jobs/{job.pk}/").status_code == 404
    outsider = signed_in_client(staff(Role.AUDITOR, tenant=globex))
    assert outsider.get(f"/t/{globex.slug}/jobs/{job.pk}/").status_code == 404
    assert signed_in_client(owner).get(f"/t/{acme.slug}/jobs/{job.pk}/").status_code == 200


def test_jobs_older_than_a_day_are_pruned(acme, counting_kind):
    from datetime import timedelta

    from django.utils import timezone

    from tenants.tasks import background_job_prune_task

    user = staff(Role.AUDITOR, tenant=acme)
    old = job_start(actor=user, tenant=acme, kind="test.count", params={"n": 1})
    fresh = job_start(actor=user, tenant=acme, kind="test.count", params={"n": 1})
    BackgroundJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    assert background_job_prune_task() == 1
    assert list(BackgroundJob.objects.values_list("pk", flat=True)) == [fresh.pk]

"""Auditor console: tenant and case timelines, chain verification, NDJSON export as a job."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import audit.jobs
from audit.context import Actor
from audit.jobs import EXPORT_KIND
from audit.models import AuditChainHead, AuditEvent
from audit.services import record
from audit.tasks import audit_verify_task
from audit.views import CASE_LABEL, PAGE_SIZE
from recovery.cases.selectors import CASE_LABEL as RECOVERY_CASE_LABEL
from recovery.cases.services import case_open
from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.jobs import job_run
from tenants.models import BackgroundJob, JobStatus, Membership
from tenants.policies import can_read_audit
from tenants.preferences import user_preferences_update
from tenants.services import membership_revoke

from ..conftest import signed_in_client
from ..factories import make_account, operator, staff
from ..pages import page

pytestmark = pytest.mark.django_db

NOT_READERS = [Role.AGENT, Role.SUPERVISOR]
READERS = [Role.AUDITOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN]


def url(tenant, rest: str = "") -> str:
    return f"/t/{tenant.slug}/audit/{rest}"


def add_events(tenant, n: int, *, action: str = "audit.verified", label: str = "robot") -> None:
    with transaction.atomic():
        for i in range(n):
            record(action=action, actor=Actor.system(label), tenant=tenant, data={"n": i})


def tamper(tenant, statement: str) -> None:
    """Edit the trail as a privileged attacker would (triggers off, then on again)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(statement.format(t=tenant.pk))
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


@pytest.fixture
def auditor(acme):
    return staff(Role.AUDITOR, tenant=acme)


@pytest.fixture
def exports(settings, tmp_path):
    settings.CONSOLE_EXPORT_DIR = tmp_path / "exports"
    return settings.CONSOLE_EXPORT_DIR


# --- tenant timeline ------------------------------------------------------------------------


def test_auditor_sees_the_trail_newest_first_with_actor_target_and_data(acme, auditor):
    with transaction.atomic():
        record(
            action="audit.exported",
            actor=Actor("7", "carol", "human", "Deskco"),
            tenant=acme,
            target=acme,
            data={"filters": {"action": "case.opened"}},
        )
    add_events(acme, 2, label="nightly-robot")
    body = signed_in_client(auditor).get(url(acme)).content.decode()
    shown = AuditEvent.objects.filter(tenant=acme).exclude(action="audit.read")  # this page's
    newest = shown.order_by("-seq")
    seqs = [f"<td>{event.seq}</td>" for event in newest]
    positions = [body.index(cell) for cell in seqs]
    assert positions == sorted(positions)  # newest first
    assert "carol" in body and "Deskco" in body and "nightly-robot" in body
    assert "tenants.Tenant" in body and "?actor_id=7" in body
    assert "<details><summary><code>{&quot;filters&quot;" in body
    assert 'aria-current="page"' in body and ">Audit</a>" in body


@pytest.mark.parametrize("role", NOT_READERS)
def test_roles_that_may_not_read_the_trail_get_403_everywhere_and_nothing_is_written(
    acme, role, exports
):
    case = case_open(
        actor=staff(Role.AGENT, tenant=acme),
        account=make_account(acme),
        case_type="unlock",
        channel="phone",
    )
    client = signed_in_client(staff(role, tenant=acme))
    for path in ("", f"cases/{case.pk}/", "chain/", "export/1/download/"):
        assert client.get(url(acme, path)).status_code == 403, path
    for path in ("chain/verify/", "export/"):
        assert client.post(url(acme, path)).status_code == 403, path
    assert not BackgroundJob.objects.exists()
    assert ">Audit</a>" not in client.get(f"/t/{acme.slug}/").content.decode()


@pytest.mark.parametrize("role", [*READERS, *NOT_READERS])
def test_the_audit_link_follows_the_read_policy(acme, role):
    client = signed_in_client(staff(role, tenant=acme))
    shown = ">Audit</a>" in client.get(f"/t/{acme.slug}/").content.decode()
    access = TenantAccess(tenant_id=acme.pk, roles=frozenset({role}))
    assert shown == bool(can_read_audit(access))


def test_another_tenants_trail_is_a_404_like_a_missing_tenant(acme, globex, auditor):
    add_events(globex, 1, label="globex-secret")
    client = signed_in_client(auditor)
    foreign, missing = client.get(url(globex)), client.get("/t/no-such-tenant/audit/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert "globex-secret" not in client.get(url(acme)).content.decode()


def test_filters_by_action_family_actor_and_target(acme, auditor):
    add_events(acme, 2, action="audit.verified", label="verifier")
    add_events(acme, 1, action="alert.raised", label="detector")
    client = signed_in_client(auditor)
    audit_only = client.get(url(acme), {"action_prefix": "audit."}).content.decode()
    assert "verifier" in audit_only and "detector" not in audit_only
    exact = client.get(url(acme), {"action": ["alert.raised"]}).content.decode()
    assert "detector" in exact and "verifier" not in exact
    by_actor = client.get(url(acme), {"actor": "DETECT"}).content.decode()
    assert "detector" in by_actor and "verifier" not in by_actor
    target = AuditEvent.objects.filter(tenant=acme).exclude(target_id="").first()
    by_target = client.get(
        url(acme), {"target_type": target.target_type, "target_id": target.target_id}
    ).content.decode()
    assert "verifier" not in by_target and f"<td>{target.seq}</td>" in by_target


def test_dates_are_read_in_the_users_time_zone(acme, auditor):
    user_preferences_update(actor=auditor, language="", time_zone="America/New_York")
    add_events(acme, 1, label="tz-probe")
    client = signed_in_client(auditor)
    now = timezone.now()
    local = (now - timedelta(minutes=5)).astimezone(ZoneInfo("America/New_York"))
    utc_wall_clock = (now - timedelta(minutes=5)).astimezone(ZoneInfo("UTC"))
    since_local = client.get(url(acme), {"since": local.strftime("%Y-%m-%dT%H:%M")})
    assert "tz-probe" in since_local.content.decode()
    # The same wall-clock figures read as UTC would include it; in New York they are hours
    # from now, so nothing matches.
    since_utc_figures = client.get(url(acme), {"since": utc_wall_clock.strftime("%Y-%m-%dT%H:%M")})
    assert "tz-probe" not in since_utc_figures.content.decode()


def test_invalid_filters_show_the_error_and_no_events(acme, auditor):
    add_events(acme, 1, label="should-not-show")
    response = signed_in_client(auditor).get(url(acme), {"since": "yesterday-ish"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "These filters are not valid" in body and "Enter a valid date/time." in body
    assert "should-not-show" not in body and "Export all matching" not in body


def test_htmx_filtering_returns_the_fragment_and_its_status(acme, auditor):
    add_events(acme, 1, label="fragment-row")
    response = signed_in_client(auditor).get(
        url(acme), {"actor": "fragment"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert "<html" not in body and "fragment-row" in body
    assert 'hx-swap-oob="innerHTML:#audit-status"' in body and "Showing 1 event" in body
    assert "HX-Request" in response["Vary"]
    assert '<input type="hidden" name="actor" value="fragment">' in body  # export keeps filters


def test_pages_follow_the_chain_by_seq(acme, auditor):
    add_events(acme, PAGE_SIZE + 5)
    client = signed_in_client(auditor)
    total = AuditEvent.objects.filter(tenant=acme).count()
    first = client.get(url(acme)).content.decode()
    assert first.count("<tr>") - 1 == PAGE_SIZE  # minus the header row
    older_than = total - PAGE_SIZE + 1
    assert f"?older_than={older_than}" in first and "Previous page" not in first
    second = client.get(url(acme), {"older_than": older_than}).content.decode()
    assert second.count("<tr>") - 1 == total - PAGE_SIZE
    assert "<td>1</td>" in second and "Next page" not in second
    assert f"?newer_than={older_than - 1}" in second
    back = client.get(url(acme), {"newer_than": older_than - 1}).content.decode()
    assert f"<td>{total}</td>" in back and f"<td>{older_than - 1}</td>" not in back


def test_timeline_query_count_does_not_grow_with_the_trail(
    acme, auditor, django_assert_num_queries
):
    client = signed_in_client(auditor)
    add_events(acme, 10)
    client.get(url(acme))
    with CaptureQueriesContext(connection) as few:
        client.get(url(acme), {"action_prefix": "audit."})
    add_events(acme, 2 * PAGE_SIZE)
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(url(acme), {"action_prefix": "audit."})
    assert response.content.decode().count("<tr>") - 1 == PAGE_SIZE


# --- case timeline --------------------------------------------------------------------------


def test_case_label_matches_recovery():
    assert CASE_LABEL == RECOVERY_CASE_LABEL


def test_case_timeline_shows_that_cases_events_oldest_first(acme, auditor):
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    other = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    with transaction.atomic():
        record(action="alert.raised", actor=Actor.system("det"), tenant=acme, target=case)
    response = signed_in_client(auditor).get(url(acme, f"cases/{case.pk}/"))
    body = response.content.decode()
    mine = AuditEvent.objects.filter(target_type=CASE_LABEL, target_id=str(case.pk))
    cells = [body.index(f"<td>{event.seq}</td>") for event in mine.order_by("seq")]
    assert response.status_code == 200 and len(cells) >= 2 and cells == sorted(cells)
    theirs = AuditEvent.objects.filter(target_type=CASE_LABEL, target_id=str(other.pk))
    assert all(f"<td>{event.seq}</td>" not in body for event in theirs)
    assert str(case) in body


def test_another_tenants_case_is_a_404_like_a_missing_one_and_is_recorded(acme, globex, auditor):
    theirs = case_open(
        actor=staff(Role.AGENT, tenant=globex),
        account=make_account(globex),
        case_type="unlock",
        channel="phone",
    )
    client = signed_in_client(auditor)
    foreign = client.get(url(acme, f"cases/{theirs.pk}/"))
    missing = client.get(url(acme, f"cases/{theirs.pk + 10_000}/"))
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    denied = AuditEvent.objects.get(tenant=globex, action="tenant.cross_access_denied")
    assert denied.actor_id == str(auditor.pk) and denied.data["requested_in"] == acme.slug


# --- chain verification ---------------------------------------------------------------------


def test_chain_page_shows_the_head_and_the_scheduled_verdict(acme, auditor):
    add_events(acme, 2)
    client = signed_in_client(auditor)
    assert "has not run yet" in client.get(url(acme, "chain/")).content.decode()
    audit_verify_task()
    head = AuditChainHead.objects.get(tenant=acme)
    body = client.get(url(acme, "chain/")).content.decode()
    assert f"#{head.seq}" in body and head.hash in body
    assert "reported no problem with this chain" in body
    tamper(acme, "UPDATE audit_auditevent SET data = '{{}}' WHERE tenant_id = {t} AND seq = 2")
    audit_verify_task()
    body = client.get(url(acme, "chain/")).content.decode()
    assert "found this chain broken at event #2" in body


def test_verify_now_reports_intact_then_the_first_broken_link(acme, auditor):
    add_events(acme, 3)
    client = signed_in_client(auditor)
    rows = AuditEvent.objects.filter(tenant=acme).count()
    response = client.post(url(acme, "chain/verify/"), follow=True)
    assert response.redirect_chain[-1][0] == url(acme, "chain/")
    assert f"The chain is intact: {rows} events checked." in response.content.decode()
    tamper(acme, "UPDATE audit_auditevent SET actor_label = 'x' WHERE tenant_id = {t} AND seq = 3")
    fragment = client.post(url(acme, "chain/verify/"), headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert "<html" not in body and "Broken" in body and "event #3" in body
    assert "?older_than=4" in body


# --- export ---------------------------------------------------------------------------------


def test_export_starts_a_job_with_the_filters_and_follows_it(acme, auditor, exports):
    user_preferences_update(actor=auditor, language="", time_zone="Europe/Paris")
    client = signed_in_client(auditor)
    response = client.post(
        url(acme, "export/"), {"action_prefix": "audit.", "since": "2025-01-01T10:00"}
    )
    job = BackgroundJob.objects.get(created_by=auditor)
    assert (job.kind, job.status, job.tenant_id) == (EXPORT_KIND, JobStatus.QUEUED, acme.pk)
    # Stored in UTC: the worker does not know the reader's time zone.
    assert job.params == {
        "filters": {"action_prefix": "audit.", "since": "2025-01-01T09:00:00+00:00"}
    }
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/jobs/{job.pk}/"
    fragment = client.post(url(acme, "export/"), headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and 'hx-trigger="every 1s"' in fragment


def test_export_with_invalid_filters_is_refused_and_nothing_is_queued(acme, auditor, exports):
    client = signed_in_client(auditor)
    response = client.post(url(acme, "export/"), {"action": "case.teleported"}, follow=True)
    assert "nothing was exported. (input.invalid)" in response.content.decode()
    assert not BackgroundJob.objects.exists()
    htmx = client.post(url(acme, "export/"), {"since": "soon"}, headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == url(acme) and not BackgroundJob.objects.exists()


def run_export(client, tenant, data: dict) -> BackgroundJob:
    client.post(url(tenant, "export/"), data)
    job = BackgroundJob.objects.filter(tenant=tenant).latest("pk")
    job_run(job.pk, tenant.pk)
    job.refresh_from_db()
    return job


def test_export_job_writes_the_filtered_trail_and_records_it(acme, auditor, exports, monkeypatch):
    monkeypatch.setattr("audit.jobs.CHUNK", 3)  # several chunks, several progress steps
    add_events(acme, 7, action="audit.verified")
    add_events(acme, 2, action="alert.raised")
    client = signed_in_client(auditor)
    expected = list(
        AuditEvent.objects.filter(tenant=acme, action__startswith="audit.")
        .order_by("seq")
        .values_list("seq", "hash")
    )
    job = run_export(client, acme, {"action_prefix": "audit."})
    assert job.status == JobStatus.DONE, job.error
    assert (job.done, job.total, job.result["events"]) == (len(expected),) * 3
    files = list(exports.joinpath(str(acme.pk)).iterdir())
    assert [f.name for f in files] == [job.result["file"]]
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in files[0].read_bytes().splitlines()]
    assert [(row["seq"], row["hash"]) for row in lines] == expected
    recorded = AuditEvent.objects.get(tenant=acme, action="audit.exported")
    assert recorded.actor_id == str(auditor.pk) and recorded.actor_org == acme.name
    assert recorded.data == {
        "filters": {"action_prefix": "audit."},
        "events": len(expected),
        "job": job.pk,
    }
    done_page = client.get(f"/t/{acme.slug}/jobs/{job.pk}/").content.decode()
    assert f"Export ready: {len(expected)} events." in done_page
    download = client.get(url(acme, f"export/{job.pk}/download/"))
    assert download.status_code == 200 and download["Content-Type"] == "application/x-ndjson"
    assert b"".join(download.streaming_content) == files[0].read_bytes()
    assert "attachment" in download["Content-Disposition"]


def test_only_the_creator_in_that_tenant_can_download(acme, globex, auditor, exports):
    job = run_export(signed_in_client(auditor), acme, {})
    assert job.status == JobStatus.DONE
    colleague = signed_in_client(staff(Role.AUDITOR, tenant=acme))
    foreign = colleague.get(url(acme, f"export/{job.pk}/download/"))
    missing = colleague.get(url(acme, f"export/{job.pk + 10_000}/download/"))
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    outsider = signed_in_client(staff(Role.AUDITOR, tenant=globex))
    assert outsider.get(url(globex, f"export/{job.pk}/download/")).status_code == 404
    assert outsider.get(url(acme, f"export/{job.pk}/download/")).status_code == 404


def test_an_unfinished_export_cannot_be_downloaded(acme, auditor, exports):
    client = signed_in_client(auditor)
    client.post(url(acme, "export/"))
    job = BackgroundJob.objects.get(created_by=auditor)
    assert client.get(url(acme, f"export/{job.pk}/download/")).status_code == 404


def test_export_stops_and_leaves_no_file_when_the_reader_loses_the_role(
    acme, auditor, exports, monkeypatch
):
    monkeypatch.setattr("audit.jobs.CHUNK", 2)
    add_events(acme, 6)
    client = signed_in_client(auditor)
    client.post(url(acme, "export/"))
    job = BackgroundJob.objects.get(created_by=auditor)
    checks = 0
    real_access_in = audit.jobs.access_in

    def revoked_after_two_chunks(user, tenant):
        nonlocal checks
        checks += 1
        if checks == 3:  # the start, the first chunk, then the role is gone
            membership_revoke(actor=operator(), membership=Membership.objects.get(user=user))
        return real_access_in(user, tenant)

    monkeypatch.setattr("audit.jobs.access_in", revoked_after_two_chunks)
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error.endswith("(tenant.no_access)")
    assert job.done == 2
    assert list(exports.joinpath(str(acme.pk)).iterdir()) == []
    assert not AuditEvent.objects.filter(tenant=acme, action="audit.exported").exists()


def test_export_files_older_than_a_day_are_pruned(acme, auditor, exports):
    import os
    import time

    from audit.tasks import audit_export_prune_task

    old = run_export(signed_in_client(auditor), acme, {})
    fresh = run_export(signed_in_client(auditor), acme, {})
    old_file = exports / str(acme.pk) / old.result["file"]
    day_ago = time.time() - 25 * 3600
    os.utime(old_file, (day_ago, day_ago))
    assert audit_export_prune_task() == 1
    assert not old_file.exists()
    assert (exports / str(acme.pk) / fresh.result["file"]).exists()

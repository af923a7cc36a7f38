"""Reading the trail is recorded (R-50): every console page, htmx swap, API list, verification,
export and export download writes exactly one event naming the reader and what was read, in
the read's transaction. When that event cannot be written the read is refused with
`audit.read_not_recorded` and no event of the trail is returned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from audit.context import Actor
from audit.models import AuditEvent
from audit.selectors import READ_VALUE_LIMIT
from audit.services import record
from audit.signals import event_recorded
from recovery.cases.services import case_open
from tenants.choices import Role
from tenants.jobs import job_run
from tenants.models import BackgroundJob, JobStatus

from ..api.conftest import api, key_client, staff_api_client
from ..conftest import signed_in_client
from ..factories import make_account, staff

pytestmark = pytest.mark.django_db

MARKER = "secret-marker-7d1f"  # a label of trail content: must never reach a refused reader
READ_ACTIONS = ("audit.read", "audit.exported", "audit.export_downloaded")
CODE = "audit.read_not_recorded"


@pytest.fixture
def auditor(acme):
    return staff(Role.AUDITOR, tenant=acme)


@pytest.fixture
def case(acme):
    agent = staff(Role.AGENT, tenant=acme)
    opened = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    with transaction.atomic():
        record(action="alert.raised", actor=Actor.system(MARKER), tenant=acme, target=opened)
    return opened


@pytest.fixture
def exports(settings, tmp_path):
    settings.CONSOLE_EXPORT_DIR = tmp_path / "exports"
    return settings.CONSOLE_EXPORT_DIR


@contextmanager
def refused(*actions: str) -> Iterator[None]:
    """The audit store refuses the events of `actions` (only): every other write still works."""

    def refuse(sender, event, **kwargs) -> None:
        if event.action in actions:
            raise RuntimeError("audit store unavailable")

    event_recorded.connect(refuse, weak=False)
    try:
        yield
    finally:
        event_recorded.disconnect(refuse)


@pytest.fixture
def reads_fail() -> Iterator[None]:
    with refused(*READ_ACTIONS):
        yield


def reads_during(tenant, do: Callable[[], object]) -> list[AuditEvent]:
    """The read events `do()` wrote in the tenant's chain."""
    before = AuditEvent.objects.filter(tenant=tenant).order_by("-seq").first().seq
    do()
    return list(
        AuditEvent.objects.filter(tenant=tenant, seq__gt=before, action__in=READ_ACTIONS).order_by(
            "seq"
        )
    )


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def console(tenant, rest: str = "") -> str:
    return f"/t/{tenant.slug}/audit/{rest}"


# --- console --------------------------------------------------------------------------------


def test_the_trail_page_records_the_reader_filters_and_cursor(acme, auditor, case):
    client = signed_in_client(auditor)
    query = {"action_prefix": "alert.", "actor": MARKER, "older_than": "10000"}
    [read] = reads_during(acme, lambda: client.get(console(acme), query))
    assert (read.action, read.actor_id, read.actor_org) == (
        "audit.read",
        str(auditor.pk),
        acme.name,
    )
    assert read.actor_label == auditor.username and read.actor_type == "human"
    assert read.data == {
        "read": "console.trail",
        "filters": {"action_prefix": "alert.", "actor": MARKER},
        "cursor": {"older_than": 10000},
        "events": 1,
    }


def test_an_htmx_swap_of_the_trail_is_one_read_of_its_own(acme, auditor, case):
    client = signed_in_client(auditor)
    swap = lambda: client.get(console(acme), {"actor": MARKER}, headers={"HX-Request": "true"})  # noqa: E731
    [first] = reads_during(acme, swap)
    [again] = reads_during(acme, swap)
    assert (
        first.data
        == again.data
        == {
            "read": "console.trail",
            "filters": {"actor": MARKER},
            "cursor": {},
            "events": 1,
        }
    )


def test_a_trail_page_with_invalid_filters_records_what_was_asked(acme, auditor):
    client = signed_in_client(auditor)
    long_value = "x" * (READ_VALUE_LIMIT + 50)
    [read] = reads_during(acme, lambda: client.get(console(acme), {"since": long_value}))
    assert read.data == {"read": "console.trail", "filters": {"since": ["x" * READ_VALUE_LIMIT]}}


def test_the_case_timeline_records_the_case(acme, auditor, case):
    client = signed_in_client(auditor)
    [read] = reads_during(acme, lambda: client.get(console(acme, f"cases/{case.pk}/")))
    shown = AuditEvent.objects.filter(target_id=str(case.pk), target_type="recovery.RecoveryCase")
    assert read.actor_id == str(auditor.pk)
    assert read.data == {
        "read": "console.case_trail",
        "case": case.pk,
        "cursor": {},
        "events": shown.exclude(pk=read.pk).count(),
    }


def test_the_chain_page_and_verify_now_are_each_one_read(acme, auditor):
    client = signed_in_client(auditor)
    [page] = reads_during(acme, lambda: client.get(console(acme, "chain/")))
    [verify] = reads_during(acme, lambda: client.post(console(acme, "chain/verify/")))
    assert (page.data, verify.data) == ({"read": "console.chain"}, {"read": "console.verification"})
    assert page.actor_id == verify.actor_id == str(auditor.pk)


def test_downloading_a_finished_export_is_recorded(acme, auditor, exports):
    client = signed_in_client(auditor)
    client.post(console(acme, "export/"))
    job = BackgroundJob.objects.get(tenant=acme)
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    [download] = reads_during(acme, lambda: client.get(console(acme, f"export/{job.pk}/download/")))
    assert download.action == "audit.export_downloaded"
    assert download.actor_id == str(auditor.pk)
    assert download.data == {"job": job.pk, "events": job.result["events"]}


def test_a_download_whose_file_is_gone_is_a_404_and_records_nothing(acme, auditor, exports):
    client = signed_in_client(auditor)
    client.post(console(acme, "export/"))
    job = BackgroundJob.objects.get(tenant=acme)
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    for path in exports.glob("*/*.ndjson"):
        path.unlink()
    assert client.get(console(acme, f"export/{job.pk}/download/")).status_code == 404
    assert not AuditEvent.objects.filter(tenant=acme, action="audit.export_downloaded").exists()


# --- API ------------------------------------------------------------------------------------


def test_an_api_page_of_events_records_the_filters_and_cursor(acme, case):
    client = key_client(acme)
    first = client.get(api(acme, "audit/events/"), {"page_size": 1})
    cursor = first.json()["next"].split("cursor=")[1].split("&")[0]
    [read] = reads_during(
        acme, lambda: client.get(api(acme, "audit/events/"), {"page_size": 1, "cursor": cursor})
    )
    assert read.actor_id == str(client.principal.pk) and read.actor_type == "integration"
    assert read.data["read"] == "api.events" and read.data["events"] == 1
    assert read.data["filters"] == {"page_size": ["1"]} and read.data["cursor"] == cursor


def test_a_staff_session_reading_alerts_and_verification_is_recorded(acme, auditor, case):
    client = staff_api_client(auditor)
    [alerts] = reads_during(acme, lambda: client.get(api(acme, "alerts/")))
    [verify] = reads_during(acme, lambda: client.get(api(acme, "audit/verification/")))
    assert alerts.data == {"read": "api.alerts", "filters": {}, "cursor": "", "events": 1}
    assert verify.data == {"read": "api.verification"}
    assert alerts.actor_id == verify.actor_id == str(auditor.pk)


def test_an_api_export_is_one_exported_event(acme):
    client = key_client(acme)
    [exported] = reads_during(
        acme, lambda: body(client.get(api(acme, "audit/export/"), {"action": "alert.raised"}))
    )
    assert exported.action == "audit.exported"
    assert exported.data == {"filters": {"action": ["alert.raised"]}}


# --- refused when the read cannot be recorded -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("get", "?action_prefix=alert."),
        ("get", "cases/{case}/"),
        ("get", "chain/"),
        ("post", "chain/verify/"),
    ],
)
def test_a_console_read_that_cannot_be_recorded_is_refused(
    acme, auditor, case, reads_fail, method, path
):
    client = signed_in_client(auditor)
    head = AuditEvent.objects.filter(tenant=acme).order_by("-seq").first()
    response = getattr(client, method)(console(acme, path.format(case=case.pk)))
    assert response.status_code == 503
    assert f"({CODE})".encode() in response.content
    assert MARKER.encode() not in response.content and head.hash.encode() not in response.content
    assert not AuditEvent.objects.filter(tenant=acme, action__in=READ_ACTIONS).exists()


def test_an_htmx_swap_that_cannot_be_recorded_is_refused(acme, auditor, case, reads_fail):
    client = signed_in_client(auditor)
    response = client.get(console(acme), {"action_prefix": "alert."}, headers={"HX-Request": "1"})
    assert response.status_code == 503 and f"({CODE})".encode() in response.content
    assert MARKER.encode() not in response.content


def test_an_export_download_that_cannot_be_recorded_is_refused(acme, auditor, exports, case):
    client = signed_in_client(auditor)
    client.post(console(acme, "export/"))
    job = BackgroundJob.objects.get(tenant=acme)
    job_run(job.pk, acme.pk)
    with refused("audit.export_downloaded"):
        response = client.get(console(acme, f"export/{job.pk}/download/"))
    assert response.status_code == 503 and not response.streaming
    assert MARKER.encode() not in response.content
    assert not AuditEvent.objects.filter(tenant=acme, action="audit.export_downloaded").exists()


@pytest.mark.parametrize(
    "path", ["audit/events/", "alerts/", "audit/verification/", "audit/export/"]
)
def test_an_api_read_that_cannot_be_recorded_is_refused(acme, case, reads_fail, path):
    response = key_client(acme).get(api(acme, path))
    content = body(response)
    assert response.status_code == 503
    assert response.json()["code"] == CODE
    assert MARKER.encode() not in content
    assert not AuditEvent.objects.filter(tenant=acme, action__in=READ_ACTIONS).exists()


def test_a_read_refused_by_the_database_itself_returns_nothing(acme, auditor, case):
    """Not a receiver this time: the database refuses every insert into the trail."""
    browser, integration = signed_in_client(auditor), key_client(acme)
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON audit_auditevent
              FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();
        """)
    page = browser.get(console(acme), {"action_prefix": "alert."})
    listed = integration.get(api(acme, "audit/events/"))
    assert (page.status_code, listed.status_code) == (503, 503)
    assert MARKER.encode() not in page.content + listed.content
    assert listed.json()["code"] == CODE

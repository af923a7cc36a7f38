"""The rows a chain finding put in doubt are marked wherever the trail is shown or handed out:
the console timelines, the API's list of events, the API export and the console export job."""

from __future__ import annotations

import pytest

from audit.integrity import untrusted_windows
from tenants.choices import Role

from ..api.conftest import key_client
from ..conftest import signed_in_client
from ..factories import staff
from . import test_fail_closed as failing

pytestmark = pytest.mark.django_db

# The tenant whose chain was broken at seq 3 and verified (tests.audit.test_fail_closed).
agent, t1_case, broken = failing.agent, failing.t1_case, failing.broken


def test_the_console_timeline_marks_the_untrusted_rows_and_shows_the_banner(acme, broken):
    first, last = broken.window
    auditor = signed_in_client(staff(Role.AUDITOR, tenant=acme))
    html = auditor.get(f"/t/{acme.slug}/audit/").content.decode()
    marked = html.count('<tr class="untrusted">')
    assert marked == min(last, 50) - first + 1  # the first page: the newest 50 events
    assert 'id="integrity-banner"' in html


def test_the_api_marks_events_and_the_export_names_the_windows(acme, broken):
    client = key_client(acme, ["audit:read"])
    events = client.get(f"/api/v1/t/{acme.slug}/audit/events/").json()["results"]
    first, last = broken.window
    for event in events:
        assert event["untrusted"] == (first <= event["seq"] <= last), event["seq"]
    export = client.get(f"/api/v1/t/{acme.slug}/audit/export/")
    assert export["X-Audit-Untrusted-Seqs"] == f"{first}-{last}"
    b"".join(export.streaming_content)


def test_nothing_is_marked_on_an_intact_chain(globex):
    assert untrusted_windows(globex) == []
    export = key_client(globex, ["audit:read"]).get(f"/api/v1/t/{globex.slug}/audit/export/")
    assert export["X-Audit-Untrusted-Seqs"] == ""
    b"".join(export.streaming_content)

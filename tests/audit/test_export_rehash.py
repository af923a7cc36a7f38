"""The product's own NDJSON exports (API and console job) pass the check script that
docs/audit.md gives auditors, run exactly as the guide prints it, on hostile content."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from audit.chain import HASHED_FIELDS
from audit.context import Actor, RequestContext, reset_request, set_request
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import EXPORT_FIELDS
from audit.services import record
from tenants.choices import Role
from tenants.jobs import job_run
from tenants.models import BackgroundJob, JobStatus

from ..api.conftest import api, key_client
from ..conftest import signed_in_client
from ..factories import staff

pytestmark = pytest.mark.django_db

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
HOSTILE = 'quote " back\\slash \\" nul\x00 tab\t line\nü 漢字 😀 \u2028 </script>'
HOSTILE_DATA = {
    "text": HOSTILE,
    "nul\x00key": ["a\x00", {"deep": {"deeper": [1, 2.5, None, True, "\\"]}}],
    "floats": [0.1, 1e-7, 1.5e300, -0.0, 1e16, 3.141592653589793, 2.0, -1234.5678],
    "ints": [0, -1, 2**53, -(2**53)],
    "empty": {"list": [], "dict": {}, "text": ""},
    "ключ": "значение",
}


def guide_script(tmp_path: Path) -> Path:
    """The check script exactly as docs/audit.md prints it (its only python block)."""
    guide = GUIDE.read_text()
    section = guide[guide.index("## Exporting rows and recomputing a hash") :]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    script = tmp_path / "check_chain.py"
    script.write_text(blocks[0])
    return script


def run_guide_script(tmp_path: Path, export: bytes, *start: str) -> list[str]:
    """The script's output lines for `export` (`start`: the seq and hash of a purged chain's
    first row, as the guide says to pass them)."""
    done = subprocess.run(
        [sys.executable, str(guide_script(tmp_path)), *start],
        input=export,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode().splitlines()


def assert_checks_out(lines: list[str], head_seq: int, head_hash: str) -> None:
    rows, last = lines[:-1], lines[-1]
    assert rows == [f"seq {seq}: ok" for seq in range(1, head_seq + 1)]
    assert last == f"last seq {head_seq}, last hash {head_hash}: compare with the chain head"


def hostile_events(tenant) -> None:
    """Events whose every text field and data hold what breaks naive encoders."""
    token = set_request(RequestContext(request_id='req-"é\\', ip="::1", user_agent=HOSTILE))
    try:
        with transaction.atomic():
            actor = Actor(id="7\x00", label=HOSTILE, type="human", organisation=HOSTILE)
            record(action="audit.verified", actor=actor, tenant=tenant, data=HOSTILE_DATA)
            record(action="alert.raised", actor=actor, tenant=tenant, target=tenant, data={})
            for n in range(3):
                record(
                    action="audit.verified",
                    actor=Actor.system(),
                    tenant=tenant,
                    data={"n": n, "x": n / 3},
                )
    finally:
        reset_request(token)


def test_an_api_export_passes_the_guides_script(acme, tmp_path):
    hostile_events(acme)
    client = key_client(acme)
    response = client.get(api(acme, "audit/export/"), HTTP_USER_AGENT=HOSTILE)
    assert response.status_code == 200
    export = b"".join(response.streaming_content)
    head = AuditChainHead.objects.get(tenant=acme)
    # The export's own `audit.exported` (with the hostile user agent) is its last line.
    assert AuditEvent.objects.get(tenant=acme, seq=head.seq).action == "audit.exported"
    assert_checks_out(run_guide_script(tmp_path, export), head.seq, head.hash)


def test_each_export_line_is_exactly_the_hashed_fields_with_their_stored_values(acme):
    hostile_events(acme)
    response = key_client(acme).get(api(acme, "audit/export/"))
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    stored = {
        row["seq"]: row for row in AuditEvent.objects.filter(tenant=acme).values(*EXPORT_FIELDS)
    }
    for line in lines:
        assert tuple(line) == (*HASHED_FIELDS, "hash", "id")  # id: ignored by the script
        row = stored[line["seq"]]
        assert line["created_at"] == row["created_at"].isoformat(timespec="microseconds")
        assert {**line, "created_at": row["created_at"]} == row
    as_stored = HOSTILE.replace("\x00", "\ufffd")  # NUL is replaced before hashing
    hostile = next(line for line in lines if line["data"].get("text") == as_stored)
    assert hostile["tenant_id"] == acme.pk and hostile["user_agent"] == as_stored
    assert hostile["actor_id"] == "7\ufffd" and hostile["data"]["nul\ufffdkey"][0] == "a\ufffd"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", hostile["created_at"])


def test_a_console_export_download_passes_the_guides_script(acme, tmp_path, settings):
    settings.CONSOLE_EXPORT_DIR = tmp_path / "exports"
    hostile_events(acme)
    client = signed_in_client(staff(Role.AUDITOR, tenant=acme))
    client.post(f"/t/{acme.slug}/audit/export/", {})
    job = BackgroundJob.objects.get(tenant=acme)
    head_at_start = AuditChainHead.objects.get(tenant=acme)  # the job exports up to here
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    download = client.get(f"/t/{acme.slug}/audit/export/{job.pk}/download/")
    assert download.status_code == 200
    export = b"".join(download.streaming_content)
    assert_checks_out(run_guide_script(tmp_path, export), head_at_start.seq, head_at_start.hash)
    after = list(
        AuditEvent.objects.filter(tenant=acme, seq__gt=head_at_start.seq)
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert after == ["audit.exported", "audit.export_downloaded"]


def test_the_guides_script_catches_a_changed_export(acme, tmp_path):
    """The check is not vacuous: one changed value in one line is reported at that seq."""
    hostile_events(acme)
    response = key_client(acme).get(api(acme, "audit/export/"))
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    lines[1]["actor_label"] += "x"
    lines[2]["created_at"] = lines[2]["created_at"][:23] + "+00:00"  # milliseconds only
    export = "".join(json.dumps(line) + "\n" for line in lines).encode()
    report = run_guide_script(tmp_path, export)
    assert report[1] == "seq 2: content does not match hash"
    assert report[2] == "seq 3: content does not match hash"
    assert (report[0], report[3]) == ("seq 1: ok", "seq 4: ok")

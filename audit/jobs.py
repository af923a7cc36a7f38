"""The console's NDJSON export of a tenant's trail, run as a background job (`audit.export`).

Files live at `<CONSOLE_EXPORT_DIR>/<tenant id>/<random name>.ndjson`: outside the web root,
created with `O_EXCL` and mode 0600 (directories 0700), named by `secrets.token_hex(16)`, and
served only by `export_open` after the console has checked the job is the reader's own.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from tenants.access import access_in
from tenants.jobs import Progress
from tenants.models import BackgroundJob
from tenants.policies import can_read_audit, enforce
from tenants.rls import tenant_scope

from .context import Actor
from .forms import AuditTrailFilter
from .integrity import untrusted_windows
from .models import AuditEvent
from .selectors import EXPORT_FIELDS, audit_event_list, export_line
from .services import record

EXPORT_KIND = "audit.export"
CHUNK = 500
_STORED_NAME = re.compile(r"[0-9a-f]{32}\.ndjson")
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _export_path(tenant_id: int, stored_name: str) -> Path:
    if not _STORED_NAME.fullmatch(stored_name):
        raise ValueError(f"Not a stored export name: {stored_name!r}")
    return Path(settings.CONSOLE_EXPORT_DIR) / str(int(tenant_id)) / stored_name


def _create(tenant_id: int) -> tuple[str, Path, IO[bytes]]:
    """A new, empty export file of the tenant: its stored name, path and open handle."""
    directory = Path(settings.CONSOLE_EXPORT_DIR) / str(int(tenant_id))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stored_name = f"{secrets.token_hex(16)}.ndjson"
    path = _export_path(tenant_id, stored_name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_FOLLOW
    return stored_name, path, os.fdopen(os.open(path, flags, 0o600), "wb")


def export_open(job: BackgroundJob) -> IO[bytes]:
    """The finished export file of `job` opened for reading; FileNotFoundError if it is gone."""
    stored_name = str(job.result.get("file", ""))
    try:
        path = _export_path(job.tenant_id, stored_name)
    except ValueError:
        raise FileNotFoundError(stored_name) from None
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NO_FOLLOW), "rb")


def _check_reader(job: BackgroundJob) -> None:
    """The job's creator must still be allowed to read the trail, now (PolicyDenied if not)."""
    enforce(can_read_audit(access_in(job.created_by, job.tenant)))


def _filtered(job: BackgroundJob) -> QuerySet[AuditEvent]:
    """The job's events, filtered as the reader asked (run inside the tenant's scope)."""
    filterset = AuditTrailFilter.from_params(
        job.params.get("filters", {}), queryset=audit_event_list(tenant=job.tenant)
    )
    if not filterset.is_valid():
        raise ValueError(f"Export job {job.pk} has invalid filters: {filterset.errors!r}")
    return filterset.qs


def audit_export_run(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
    """Write the filtered trail as NDJSON, oldest first, in short per-chunk transactions.

    The export covers the events up to the chain's seq when it starts; later events are not in
    it. The reader's right to the trail is checked before each chunk, and the export is
    recorded (`audit.exported`, as the API records its own) once the file is complete.
    """
    _check_reader(job)
    with tenant_scope([job.tenant_id]):
        snapshot = _filtered(job).aggregate(total=Count("id"), last=Max("seq"))
    total, last_seq = snapshot["total"], snapshot["last"] or 0
    progress(0, total)
    stored_name, path, file = _create(job.tenant_id)
    done = after = 0
    try:
        with file:
            while True:
                _check_reader(job)
                with tenant_scope([job.tenant_id]):
                    chunk = _filtered(job).filter(seq__gt=after, seq__lte=last_seq)
                    rows = list(chunk.order_by("seq").values(*EXPORT_FIELDS)[:CHUNK])
                if not rows:
                    break
                file.writelines(export_line(row) for row in rows)
                done, after = done + len(rows), rows[-1]["seq"]
                progress(done, total)
            file.flush()
            os.fsync(file.fileno())
        with tenant_scope([job.tenant_id]):
            untrusted = untrusted_windows(job.tenant)
            record(
                action="audit.exported",
                actor=Actor.for_user(job.created_by, organisation=job.tenant.name),
                tenant=job.tenant,
                data={"filters": job.params.get("filters", {}), "events": done, "job": job.pk},
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return {
        "file": stored_name,
        "events": done,
        "filename": f"audit-{job.tenant.slug}-{stamp}.ndjson",
        "untrusted": [list(window) for window in untrusted],
    }


def exports_prune(*, older_than: timedelta) -> int:
    """Delete every tenant's export files last written more than `older_than` ago."""
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for path in Path(settings.CONSOLE_EXPORT_DIR).glob("*/*.ndjson"):
        if _STORED_NAME.fullmatch(path.name) and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed

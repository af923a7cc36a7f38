"""Auditor console: the tenant's trail and each case's, chain verification, NDJSON export.

Every page is for readers of the trail (`can_read_audit`); anyone else gets a 403. Pages are
cut by seq (a keyset cursor), so a page costs the same queries however long the chain is.

Every answer that shows the trail, its chain or an export's file is recorded (`audit.read`,
`audit.export_downloaded`) in the page's own transaction once the page is built: one event per
request, htmx swaps included (each is a reader's new filter or page). When the record cannot
be written the transaction rolls back and the reader gets a 503 page with nothing of the trail
(R-50).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from tenants.console import tenant_view
from tenants.exceptions import CrossTenantNotFound, DomainError, InvalidInput
from tenants.jobs import job_get_visible, job_start
from tenants.models import JobStatus, Tenant
from tenants.policies import can_read_audit

from .exceptions import TrailReadNotRecorded
from .forms import AuditTrailFilter, CursorForm
from .integrity import untrusted_windows
from .integrity_views import integrity_panels
from .jobs import EXPORT_KIND, export_open
from .models import AuditEvent
from .selectors import (
    audit_event_list,
    chain_head,
    checkpoint_status,
    last_scheduled_verification,
    read_filters,
)
from .services import trail_read_record
from .verify import ChainReport, verify_chain

# The target_type of a case's events (recovery's RecoveryCase._meta.label; audit does not
# import recovery, so the label is written out and a test keeps the two equal).
CASE_LABEL = "recovery.RecoveryCase"
PAGE_SIZE = 50
SUMMARY_LENGTH = 80
CURSOR_PARAMS = ("older_than", "newer_than")
EXPORT_RESULT_TEMPLATE = "console/jobs/audit_export.html"


def read_recorded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Around `tenant_view`: a read whose record failed has rolled back; answer 503, no data."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except TrailReadNotRecorded as refused:
            context = {"message": refused.message, "code": refused.code}
            return render(request, "console/audit/read_refused.html", context, status=503)

    return wrapper


def _record_read(request: HttpRequest, data: dict[str, Any], action: str = "audit.read") -> None:
    trail_read_record(
        reader=request.user,
        access=request.tenant_access,
        tenant=request.tenant,
        data=data,
        action=action,
    )


def _require_reader(request: HttpRequest) -> None:
    decision = can_read_audit(request.tenant_access)
    if not decision:
        raise PermissionDenied(decision.detail)


def _partial(request: HttpRequest) -> bool:
    """An htmx swap asks for the fragment; a history restore needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


@dataclass(frozen=True)
class EventRow:
    """An event as a timeline row: its data cut short for the row and in full for details."""

    event: AuditEvent
    summary: str
    detail: str
    untrusted: bool  # in a window a chain finding put in doubt (`audit.integrity`)

    @classmethod
    def of(cls, event: AuditEvent, untrusted: Sequence[tuple[int, int]] = ()) -> EventRow:
        compact = json.dumps(event.data, ensure_ascii=False, sort_keys=True)
        summary = compact if len(compact) <= SUMMARY_LENGTH else f"{compact[:SUMMARY_LENGTH]}…"
        detail = json.dumps(event.data, ensure_ascii=False, sort_keys=True, indent=2)
        doubted = any(first <= event.seq <= last for first, last in untrusted)
        return cls(event=event, summary=summary, detail=detail, untrusted=doubted)

    @property
    def case_id(self) -> str | None:
        """The case this event is about, when its target is a case."""
        event = self.event
        is_case = event.target_type == CASE_LABEL and event.target_id.isdigit()
        return event.target_id if is_case else None


@dataclass(frozen=True)
class SeqPage:
    """One page of events in display order, with the cursors of the pages either side."""

    rows: list[EventRow]
    older: int | None  # `older_than` for the page of older events; None when there is none
    newer: int | None  # `newer_than` for the page of newer events; None when there is none


def seq_page(
    events: QuerySet[AuditEvent],
    cursor: dict[str, int],
    *,
    newest_first: bool,
    untrusted: Sequence[tuple[int, int]] = (),
) -> SeqPage:
    """The page of `events` the cursor points at (the first page without one), each row
    marked when it lies in one of the `untrusted` windows.

    Two queries at most: the page (one row more than shown, to know whether another page
    follows) and, past the first page, whether the other side has events.
    """
    newer_than, older_than = cursor.get("newer_than"), cursor.get("older_than")
    if newer_than is None and (older_than is not None or newest_first):
        window = events if older_than is None else events.filter(seq__lt=older_than)
        found = list(window.order_by("-seq")[: PAGE_SIZE + 1])
        more_older = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE][::-1]
        more_newer = older_than is not None and events.filter(seq__gte=older_than).exists()
    else:
        newer_than = newer_than or 0
        found = list(events.filter(seq__gt=newer_than).order_by("seq")[: PAGE_SIZE + 1])
        more_newer = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
        more_older = newer_than > 0 and events.filter(seq__lte=newer_than).exists()
    older = found[0].seq if found and more_older else None
    newer = found[-1].seq if found and more_newer else None
    if newest_first:
        found.reverse()
    rows = [EventRow.of(event, untrusted) for event in found]
    return SeqPage(rows=rows, older=older, newer=newer)


def _page_links(request: HttpRequest, page: SeqPage, *, newest_first: bool) -> dict[str, str]:
    """Query strings of the previous and next pages in display order, other parameters kept."""
    query = request.GET.copy()
    for name in CURSOR_PARAMS:
        query.pop(name, None)
    links = {}
    if page.older is not None:
        query["older_than"] = str(page.older)
        links["next" if newest_first else "previous"] = f"?{query.urlencode()}"
        query.pop("older_than")
    if page.newer is not None:
        query["newer_than"] = str(page.newer)
        links["previous" if newest_first else "next"] = f"?{query.urlencode()}"
    return links


def _filter_values(request: HttpRequest) -> list[tuple[str, str]]:
    """The page's filter parameters as (name, value) pairs, for the export form to send on."""
    return [
        (name, value)
        for name, values in request.GET.lists()
        if name not in CURSOR_PARAMS
        for value in values
    ]


@require_GET
@read_recorded
@tenant_view
def audit_timeline_view(request: HttpRequest) -> HttpResponse:
    """The tenant's trail, newest first, filtered by the GET form (which htmx also submits)."""
    _require_reader(request)
    filterset = AuditTrailFilter(request.GET, queryset=audit_event_list(tenant=request.tenant))
    context: dict[str, Any] = {"filterset": filterset, "page": None}
    cursor = CursorForm(request.GET).cursor()
    read = {"read": "console.trail", "filters": read_filters(request.GET, leave_out=CURSOR_PARAMS)}
    if filterset.is_valid():  # invalid filters show their errors, never the unfiltered trail
        untrusted = untrusted_windows(request.tenant)
        page = seq_page(filterset.qs, cursor, newest_first=True, untrusted=untrusted)
        read.update(filters=filterset.params(), cursor=cursor, events=len(page.rows))
        context.update(
            page=page,
            links=_page_links(request, page, newest_first=True),
            filter_values=_filter_values(request),
        )
    context["partial"] = _partial(request)
    template = "console/audit/_events.html" if context["partial"] else "console/audit/timeline.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    _record_read(request, read)
    return response


@require_GET
@read_recorded
@tenant_view
def audit_case_timeline_view(request: HttpRequest, case_id: int) -> HttpResponse:
    """The events whose target is one case of this tenant, oldest first."""
    _require_reader(request)
    events = audit_event_list(tenant=request.tenant).filter(
        target_type=CASE_LABEL, target_id=str(case_id)
    )
    latest = events.order_by("-seq").first()
    if latest is None:  # no case of this tenant has that id: as missing as another tenant's
        raise CrossTenantNotFound(CASE_LABEL, case_id)
    cursor = CursorForm(request.GET).cursor()
    untrusted = untrusted_windows(request.tenant)
    page = seq_page(events, cursor, newest_first=False, untrusted=untrusted)
    context = {
        "case_id": case_id,
        "case_repr": latest.target_repr,  # as the case last stood in the trail
        "page": page,
        "links": _page_links(request, page, newest_first=False),
    }
    response = render(request, "console/audit/case_timeline.html", context)
    read = {"read": "console.case_trail", "case": case_id, "cursor": cursor}
    _record_read(request, read | {"events": len(page.rows)})
    return response


def _last_run_flagged(tenant: Tenant, last_run: AuditEvent) -> AuditEvent | None:
    """The platform verifier's `audit.integrity_violation` for this chain in its last run.

    A run records its violations just before its `audit.verified` event, in one transaction
    that holds the platform chain's head: they are the `broken` seqs right before it.
    """
    broken = int(last_run.data.get("broken") or 0)
    if not broken:
        return None
    return AuditEvent.objects.filter(
        tenant__isnull=True,
        action="audit.integrity_violation",
        seq__gte=last_run.seq - broken,
        seq__lt=last_run.seq,
        data__chain=tenant.slug,
    ).first()


@require_GET
@read_recorded
@tenant_view
def audit_chain_view(request: HttpRequest) -> HttpResponse:
    """The chain's head, the scheduled verifier's last verdict on it, and "Verify now"."""
    _require_reader(request)
    last_run = last_scheduled_verification()
    head = chain_head(tenant=request.tenant)
    context = {
        "head": head,
        "checkpoints": checkpoint_status(tenant=request.tenant, head=head),
        "last_run": last_run,
        "last_run_flagged": _last_run_flagged(request.tenant, last_run) if last_run else None,
        "integrity_panels": integrity_panels(request),
    }
    response = render(request, "console/audit/chain.html", context)
    _record_read(request, {"read": "console.chain"})
    return response


def _report_message(report: ChainReport) -> str:
    if report.intact:
        return _("The chain is intact: %(rows)s events checked.") % {"rows": report.rows}
    return _(
        "The chain is broken at event #%(seq)s: %(reason)s. Events #%(first)s to #%(last)s "
        "cannot be trusted."
    ) % {
        "seq": report.first_bad_seq,
        "reason": report.reason,
        "first": report.window[0] if report.window else report.first_bad_seq,
        "last": report.window[1] if report.window else report.first_bad_seq,
    }


@require_POST
@read_recorded
@tenant_view
def audit_chain_verify_view(request: HttpRequest) -> HttpResponse:
    """Recompute the tenant's chain now, as the verification API does, and say what it found."""
    _require_reader(request)
    report = verify_chain(request.tenant.pk, request.tenant.slug, incremental=True)
    if _partial(request):
        context = {"report": report, "checked_at": timezone.now()}
        response = render(request, "console/audit/_verification.html", context)
    else:
        response = redirect("audit-chain", tenant=request.tenant.slug)
    _record_read(request, {"read": "console.verification"})
    if not _partial(request):  # the message is kept only once the read is recorded
        notify = messages.success if report.intact else messages.error
        notify(request, _report_message(report))
    return response


@require_POST
@tenant_view
def audit_export_start_view(request: HttpRequest) -> HttpResponse:
    """Queue an NDJSON export of the trail as filtered on the page; the job page follows it."""
    _require_reader(request)
    timeline = reverse("audit-timeline", kwargs={"tenant": request.tenant.slug})
    filterset = AuditTrailFilter(request.POST, queryset=audit_event_list(tenant=request.tenant))
    try:
        if not filterset.is_valid():
            raise InvalidInput(_("The filters are not valid; nothing was exported."))
        job = job_start(
            actor=request.user,
            tenant=request.tenant,
            kind=EXPORT_KIND,
            params={"filters": filterset.params()},
        )
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
        return HttpResponseClientRedirect(timeline) if request.htmx else redirect(timeline)
    if request.htmx:
        context = {"job": job, "result_template": EXPORT_RESULT_TEMPLATE}
        return render(request, "console/_job.html", context)
    return redirect("job-detail", tenant=request.tenant.slug, pk=job.pk)


@require_GET
@read_recorded
@tenant_view
def audit_export_download_view(request: HttpRequest, pk: int) -> FileResponse:
    """The file of one of the reader's own finished exports in this tenant; 404 otherwise."""
    _require_reader(request)
    job = job_get_visible(tenant=request.tenant, actor=request.user, pk=pk)
    if job.kind != EXPORT_KIND or job.status != JobStatus.DONE:
        raise Http404("Not found.")
    data = {"job": job.pk, "events": job.result.get("events")}
    _record_read(request, data, action="audit.export_downloaded")
    try:
        file = export_open(job)
    except FileNotFoundError:  # the 404 rolls the record back with it
        raise Http404("Not found.") from None
    return FileResponse(
        file,
        as_attachment=True,
        filename=str(job.result.get("filename", "audit.ndjson")),
        content_type="application/x-ndjson",
    )

"""Client admin console: the tenant's recovery policy — versions, editor, diff, simulation and
activation by a second admin.

Reads go through the policy selectors; every write calls the same service as the API
(`recovery/api/views.py`). Reading is for the tenant's admins, security officers and auditors
(`can_read_policy`); drafting and activation are for its tenant_admins (`can_administer_tenant`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import retarget

from tenants.console import tenant_view
from tenants.exceptions import DomainError
from tenants.forms import StepUpForm
from tenants.jobs import job_start
from tenants.models import Tenant
from tenants.policies import Decision, can_administer_tenant
from tenants.stepup import step_up_verify

from .choices import PolicyStatus
from .errors import PolicyError, PolicyInvalid
from .forms import DiffForm, PolicyEditorForm
from .jobs import SIMULATE_KIND, simulation_params
from .models import PolicyVersion
from .policies import can_read_policy
from .rules import DEFAULT_POLICY_FILE
from .selectors import policy_version_get_visible, policy_version_list
from .services import policy_activation_approve, policy_activation_request, policy_draft_create
from .validation import source_sha256, validate

VERSIONS_PER_PAGE = 25
DIFF_CONTEXT_LINES = 3
OPEN_STATUSES = (PolicyStatus.DRAFT, PolicyStatus.PENDING_ACTIVATION)


# --- helpers ----------------------------------------------------------------------------------


def _require(decision: Decision) -> None:
    """A role that may not use a page gets the 403 page (another tenant is already a 404)."""
    if not decision:
        raise PermissionDenied(decision.detail)


def _default_text() -> str:
    return DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def _active(tenant: Tenant) -> PolicyVersion | None:
    return policy_version_list(tenant=tenant).filter(status=PolicyStatus.ACTIVE).first()


@dataclass(frozen=True)
class SourceLine:
    """One numbered line of a policy document and the problems found on it."""

    number: int
    text: str
    errors: tuple[PolicyError, ...] = ()


def source_lines(text: str, errors: Iterable[PolicyError] = ()) -> list[SourceLine]:
    """`text` line by line, each problem under the line it points at.

    A parser may point just past the last line (an unclosed bracket at the end of the
    document); that line is shown, empty, so the problem still has a place.
    """
    lines = text.splitlines() or [""]
    end = len(lines) + 1
    by_line: dict[int, list[PolicyError]] = {}
    for error in errors:
        by_line.setdefault(min(max(error.line, 1), end), []).append(error)
    if end in by_line:
        lines.append("")
    return [
        SourceLine(number, line, tuple(by_line.get(number, ())))
        for number, line in enumerate(lines, start=1)
    ]


def _checked(form: PolicyEditorForm) -> dict[str, Any]:
    """The validation outcome of the posted text: its problems at their lines, or its hash."""
    if form.has_error("text"):
        return {}
    text = form.cleaned_data["text"]
    try:
        validate(text)
    except PolicyInvalid as invalid:
        return _problems(text, invalid)
    return {"valid_sha256": source_sha256(text)}


def _problems(text: str, invalid: PolicyInvalid) -> dict[str, Any]:
    lines = source_lines(text, invalid.errors)
    return {"problem_lines": lines, "problem_count": len(invalid.errors)}


def _editor(
    request: HttpRequest,
    form: PolicyEditorForm,
    check: dict[str, Any] | None = None,
    base: PolicyVersion | None = None,
) -> HttpResponse:
    context = {
        "form": form,
        "base": base,
        "can_admin": bool(can_administer_tenant(request.tenant_access)),
        **(check or {}),
    }
    return render(request, "console/policy/edit.html", context)


# --- reading ----------------------------------------------------------------------------------


@require_GET
@tenant_view
def policy_home_view(request: HttpRequest) -> HttpResponse:
    """The active version, and every version with its status, author and activation."""
    _require(can_read_policy(request.tenant_access))
    versions = (
        policy_version_list(tenant=request.tenant)
        .select_related("created_by", "requested_by", "approved_by")
        .defer("source", "document")
    )
    page = Paginator(versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    active = versions.filter(status=PolicyStatus.ACTIVE).first()
    context = {
        "page": page,
        "active": active,
        "default_sha256": None if active else source_sha256(_default_text()),
        "can_admin": bool(can_administer_tenant(request.tenant_access)),
    }
    return render(request, "console/policy/index.html", context)


@require_GET
@tenant_view
def policy_version_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One version: its record, its numbered source, and what an admin may do with it now."""
    version = policy_version_get_visible(tenant=request.tenant, pk=pk)
    _require(can_read_policy(request.tenant_access))
    active = _active(request.tenant)
    context = {
        "version": version,
        "lines": source_lines(version.source),
        "active": active,
        "can_admin": bool(can_administer_tenant(request.tenant_access)),
        "step_up_form": StepUpForm(),
    }
    return render(request, "console/policy/version.html", context)


@dataclass(frozen=True)
class DiffRow:
    """A line of a diff: its number on each side (None where absent) and whether it changed."""

    old: int | None
    new: int | None
    change: str  # "added", "removed" or "same"
    text: str


def diff_hunks(old: str, new: str, context: int = DIFF_CONTEXT_LINES) -> list[list[DiffRow]]:
    """A unified line diff of two texts: hunks of changed lines with `context` lines around."""
    a, b = old.splitlines(), new.splitlines()
    if a == b:
        return []
    hunks = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        rows: list[DiffRow] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [
                    DiffRow(i + 1, j + 1, "same", a[i])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                ]
                continue
            rows += [DiffRow(i + 1, None, "removed", a[i]) for i in range(i1, i2)]
            rows += [DiffRow(None, j + 1, "added", b[j]) for j in range(j1, j2)]
        hunks.append(rows)
    return hunks


def _diff_side(tenant: Tenant, pk: int | None, default: PolicyVersion | None) -> dict[str, Any]:
    """One side of a diff: a version of the tenant (404 otherwise) or the platform default."""
    version = default if pk is None else None
    if pk:
        version = policy_version_get_visible(tenant=tenant, pk=pk)
    if version is None:
        return {"pk": 0, "label": _("the platform default"), "text": _default_text()}
    label = _("version %(number)s") % {"number": version.number}
    return {"pk": version.pk, "label": label, "text": version.source}


@require_GET
@tenant_view
def policy_diff_view(request: HttpRequest) -> HttpResponse:
    """Any two versions compared line by line; by default the newest draft with the active one."""
    _require(can_read_policy(request.tenant_access))
    tenant = request.tenant
    versions = list(policy_version_list(tenant=tenant).only("pk", "number", "status"))
    active = next((v for v in versions if v.status == PolicyStatus.ACTIVE), None)
    newest_open = next((v for v in versions if v.status in OPEN_STATUSES), None)
    form = DiffForm(request.GET)
    context: dict[str, Any] = {"form": form, "versions": versions}
    if form.is_valid():
        old = _diff_side(tenant, form.cleaned_data["old"], active)
        new = _diff_side(tenant, form.cleaned_data["new"], newest_open or active)
        hunks = diff_hunks(old["text"], new["text"])
        rows = [row for hunk in hunks for row in hunk]
        context |= {
            "old": old,
            "new": new,
            "hunks": hunks,
            "added": sum(row.change == "added" for row in rows),
            "removed": sum(row.change == "removed" for row in rows),
        }
    return render(request, "console/policy/diff.html", context)


# --- editor: validate, simulate, save as draft ------------------------------------------------


@require_GET
@tenant_view
def policy_edit_view(request: HttpRequest) -> HttpResponse:
    """The editor, starting from `?from=<version>`, else the active version, else the default."""
    _require(can_read_policy(request.tenant_access))
    start = request.GET.get("from", "")
    if start and not start.isdigit():
        raise Http404("Not found.")
    base = policy_version_get_visible(tenant=request.tenant, pk=int(start)) if start else None
    base = base or _active(request.tenant)
    text = base.source if base else _default_text()
    return _editor(request, PolicyEditorForm(initial={"text": text}), base=base)


@require_POST
@tenant_view
def policy_validate_view(request: HttpRequest) -> HttpResponse:
    """Check the text without storing it: every problem shown at its line, the text kept."""
    _require(can_read_policy(request.tenant_access))
    form = PolicyEditorForm(request.POST)
    check = _checked(form)
    if request.htmx:
        return render(request, "console/policy/_validation.html", {"form": form, **check})
    return _editor(request, form, check)


@require_POST
@tenant_view
def policy_simulate_view(request: HttpRequest) -> HttpResponse:
    """Start replaying the last N days of cases under the text, as a background job."""
    _require(can_read_policy(request.tenant_access))
    form = PolicyEditorForm(request.POST)
    check = _checked(form) if form.is_valid() else {}
    if "valid_sha256" in check:
        job = job_start(
            actor=request.user,
            tenant=request.tenant,
            kind=SIMULATE_KIND,
            params=simulation_params(
                text=form.cleaned_data["text"], days=form.cleaned_data["days"]
            ),
        )
        if request.htmx:
            return render(request, "console/policy/_simulation.html", {"job": job})
        return redirect("job-detail", tenant=request.tenant.slug, pk=job.pk)
    if request.htmx:
        response = render(request, "console/policy/_validation.html", {"form": form, **check})
        return retarget(response, "#validation")
    return _editor(request, form, check)


@require_POST
@tenant_view
def policy_draft_create_view(request: HttpRequest) -> HttpResponse:
    """Store the text as the next version, in draft; refused text stays in the editor."""
    _require(can_administer_tenant(request.tenant_access))
    form = PolicyEditorForm(request.POST)
    if form.has_error("text"):
        return _editor(request, form)
    text = form.cleaned_data["text"]
    try:
        version = policy_draft_create(actor=request.user, tenant=request.tenant, text=text)
    except PolicyInvalid as invalid:
        return _editor(request, form, _problems(text, invalid))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
        return _editor(request, form)
    messages.success(request, _("Saved as draft version %(number)s.") % {"number": version.number})
    return redirect("policy-version", tenant=request.tenant.slug, pk=version.pk)


# --- activation: request, then a second admin approves with a fresh code ----------------------


@require_POST
@tenant_view
def policy_request_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Put a draft up for activation; another tenant_admin must approve it."""
    version = policy_version_get_visible(tenant=request.tenant, pk=pk)
    _require(can_administer_tenant(request.tenant_access))
    try:
        policy_activation_request(actor=request.user, version=version)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(
            request, _("Activation requested. Another tenant admin must now approve it.")
        )
    return redirect("policy-version", tenant=request.tenant.slug, pk=version.pk)


@require_POST
@tenant_view
def policy_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Activate a requested version: a second tenant_admin, with a fresh authenticator code."""
    version = policy_version_get_visible(tenant=request.tenant, pk=pk)
    _require(can_administer_tenant(request.tenant_access))
    form = StepUpForm(request.POST)
    try:
        if not form.is_valid():
            raise DomainError(_("Enter a fresh authenticator code."), code="stepup.required")
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        version = policy_activation_approve(actor=request.user, version=version, step_up=proof)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(
            request,
            _("Version %(number)s is now the active policy.") % {"number": version.number},
        )
    return redirect("policy-version", tenant=request.tenant.slug, pk=version.pk)

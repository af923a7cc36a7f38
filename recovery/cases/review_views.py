"""Review console: the approval queue, one case under review with its decision, the security queue.

Reads go through `review_selectors`; a decision goes through the same calls as the API's
`_CaseDecisionApi.decide`: the case locked by `case_get_for_change`, the fresh step-up checked by
`step_up_presented` (a passkey answer bound to the case, or a code where the policy accepts
one), then `approval_decide`. One case at a time: there is no bulk action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tenants.choices import StepUpKind
from tenants.console import tenant_view
from tenants.exceptions import DomainError, InvalidInput
from tenants.policies import Decision

from ..detection.alerts import alert_acknowledge, alert_queue, alert_resolve, may_work_alerts
from ..detection.services import review_opened
from .choices import Decision as ApprovalDecision
from .models import RecoveryCase
from .policies import (
    can_read_case_evidence,
    can_review_case,
    can_use_approval_queue,
    can_use_security_queue,
)
from .review_forms import AlertResolveForm, DecisionForm
from .review_selectors import (
    APPROVAL_SLA,
    approval_cap_reached,
    approval_queue,
    case_review,
    open_exception_list,
    repudiation_list,
    security_case_list,
)
from .selectors import CASE_LABEL, case_get, case_get_for_change
from .services import APPROVALS_PER_HOUR, approval_decide
from .services.base import requirements_for
from .services.step_up import APPROVE, DENY, step_up_presented
from .transitions import TRANSITIONS, Move

QUEUE_PAGE_SIZE = 25
SECTION_PAGE_SIZE = 10
QUEUE_COUNT_LIMIT = 250  # the approval queue counts its cases up to this many (10 pages)


class CappedPaginator(Paginator):
    """Counts at most `limit` rows (one more says there are more), so a queue of tens of
    thousands of cases pages for what a few hundred cost; pages past the limit are not offered
    (the queue is worked from its longest-waiting end)."""

    limit = QUEUE_COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        # In the list's own order (the index walk stops at the limit), without its annotations.
        return self.object_list.values("pk")[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.limit


def _allow(decision: Decision) -> None:
    """A refused page is the 403 page with the policy's explanation."""
    if not decision:
        raise PermissionDenied(decision.detail)


@dataclass(frozen=True)
class PageLinks:
    """One page of a list, with links to its neighbours that keep the other sections' pages."""

    page: Page
    target: str
    previous_url: str | None
    next_url: str | None


def _paginate(
    request: HttpRequest,
    rows: QuerySet,
    *,
    param: str,
    per_page: int,
    target: str,
    paginator: type[Paginator] = Paginator,
) -> PageLinks:
    page = paginator(rows, per_page).get_page(request.GET.get(param))

    def link(number: int) -> str:
        query = request.GET.copy()
        query[param] = str(number)
        return f"?{query.urlencode()}"

    return PageLinks(
        page=page,
        target=target,
        previous_url=link(page.previous_page_number()) if page.has_previous() else None,
        next_url=link(page.next_page_number()) if page.has_next() else None,
    )


def _sla_hours() -> dict[str, int]:
    return {tier: int(limit.total_seconds() // 3600) for tier, limit in APPROVAL_SLA.items()}


@tenant_view
def review_queue_view(request: HttpRequest) -> HttpResponse:
    """Cases waiting for this actor's decision, longest waiting first, with their SLA state."""
    _allow(can_use_approval_queue(request.tenant_access))
    cases = approval_queue(tenant=request.tenant, actor=request.user, access=request.tenant_access)
    links = _paginate(
        request,
        cases,
        param="page",
        per_page=QUEUE_PAGE_SIZE,
        target="queue",
        paginator=CappedPaginator,
    )
    return render(
        request,
        "console/review/queue.html",
        {
            "links": links,
            "sla": _sla_hours(),
            "cap_reached": approval_cap_reached(tenant=request.tenant, actor=request.user),
            "cap": APPROVALS_PER_HOUR,
        },
    )


@tenant_view
def security_queue_view(request: HttpRequest) -> HttpResponse:
    """T2 and security-route cases, exception requests, alerts and repudiations, each paged."""
    _allow(can_use_security_queue(request.tenant_access))
    tenant, access = request.tenant, request.tenant_access
    sections = {
        "cases": security_case_list(tenant=tenant, access=access),
        "exceptions": open_exception_list(tenant=tenant, access=access),
        "alerts": alert_queue(tenant=tenant),
        "repudiations": repudiation_list(tenant=tenant, access=access),
    }
    context: dict[str, Any] = {
        name: _paginate(
            request, rows, param=name, per_page=SECTION_PAGE_SIZE, target=f"section-{name}"
        )
        for name, rows in sections.items()
    }
    context["may_work_alerts"] = bool(may_work_alerts(request.user, tenant))
    for alert in context["alerts"].page:  # one form each, with ids of its own
        alert.resolve_form = AlertResolveForm(auto_id=f"alert-{alert.pk}-%s")
    context["now"] = timezone.now()
    return render(request, "console/review/security.html", {**context, "case_label": CASE_LABEL})


def _back_to_alerts(request: HttpRequest) -> HttpResponse:
    queue = reverse("review-security", kwargs={"tenant": request.tenant.slug})
    return redirect(f"{queue}#section-alerts")


@require_POST
@tenant_view
def alert_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        alert_acknowledge(actor=request.user, tenant=request.tenant, alert_id=pk)
        messages.success(request, _("Alert acknowledged."))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return _back_to_alerts(request)


@require_POST
@tenant_view
def alert_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = AlertResolveForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidInput(
                _("Choose how the alert ends and say why (at least 10 characters)."),
                code="alert.form_invalid",
            )
        alert = alert_resolve(
            actor=request.user,
            tenant=request.tenant,
            alert_id=pk,
            outcome=form.cleaned_data["outcome"],
            reason=form.cleaned_data["reason"],
        )
        messages.success(
            request, _("Alert closed: %(status)s.") % {"status": alert.get_status_display()}
        )
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return _back_to_alerts(request)


def _decision_context(
    request: HttpRequest,
    case: RecoveryCase,
    forms: dict[str, DecisionForm] | None = None,
    outcome: str = "",
) -> dict[str, Any]:
    """The decision panel: the forms when this actor could decide the case now, else why not."""
    pending = TRANSITIONS[Move.APPROVE].allows(case.status)  # the table's decision moves
    can_decide = (
        pending
        and bool(can_use_approval_queue(request.tenant_access))
        and approval_queue(tenant=request.tenant, actor=request.user, access=request.tenant_access)
        .filter(pk=case.pk)
        .exists()
    )
    return {
        "case": case,
        "pending": pending,
        "can_decide": can_decide,
        "cap_reached": can_decide
        and approval_cap_reached(tenant=request.tenant, actor=request.user),
        "forms": forms or {d: DecisionForm(prefix=d) for d in ApprovalDecision.values},
        "outcome": outcome,
        # The code field shows only where the policy accepts a code (never at T2, R-23).
        "totp_accepted": can_decide and StepUpKind.TOTP in requirements_for(case).step_up_kinds,
    }


def _render_review(
    request: HttpRequest, case: RecoveryCase, forms: dict[str, DecisionForm] | None = None
) -> HttpResponse:
    context = _decision_context(request, case, forms)
    if context["can_decide"]:
        review_opened(actor=request.user, case=case)
    context["review"] = case_review(tenant=request.tenant, access=request.tenant_access, case=case)
    context["sla"] = _sla_hours()
    context["may_read_files"] = bool(
        can_read_case_evidence(
            request.tenant_access, route=case.route, tier=case.tier, case_type=case.case_type
        )
    )
    return render(request, "console/review/case.html", context)


@tenant_view
def review_case_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One case: evidence, risk signals, account history, what the policy needs, the decision."""
    case = case_get(tenant=request.tenant, pk=pk)
    _allow(can_review_case(request.tenant_access, case))
    return _render_review(request, case)


@require_POST
@tenant_view
def review_decide_view(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Approve or deny one case with a reason and a fresh step-up (passkey, or a code where the
    policy accepts one).

    Success: back to the queue with a message (htmx: the decision panel shows the outcome).
    A refusal is shown on the form with its code; nothing is recorded but what the services
    record on purpose (a failed step-up, a `policy.violation`).
    """
    case = case_get_for_change(tenant=request.tenant, pk=pk)
    _allow(can_review_case(request.tenant_access, case))
    form = DecisionForm(request.POST, prefix=decision)
    if form.is_valid():
        try:
            proof = step_up_presented(
                actor=request.user,
                case=case,
                action=APPROVE if decision == ApprovalDecision.APPROVED else DENY,
                assertion=form.cleaned_data["step_up_assertion"],
                otp=form.cleaned_data["token"],
            )
            approval_decide(
                actor=request.user,
                case=case,
                decision=decision,
                reason=form.cleaned_data["reason"],
                step_up=proof,
            )
        except DomainError as error:
            form.add_error(None, f"{error.message} ({error.code})")
        else:
            return _decided(request, case_get(tenant=request.tenant, pk=pk), decision)
    case = case_get(tenant=request.tenant, pk=pk)
    forms = {d: form if d == decision else DecisionForm(prefix=d) for d in ApprovalDecision.values}
    if request.htmx:
        return render(
            request, "console/review/_decision.html", _decision_context(request, case, forms)
        )
    return _render_review(request, case, forms)


def _decided(request: HttpRequest, case: RecoveryCase, decision: str) -> HttpResponse:
    if decision == ApprovalDecision.DENIED:
        text = _("You denied case %(case)s.") % {"case": case.pk}
    else:
        text = _("You approved case %(case)s; it is now %(status)s.") % {
            "case": case.pk,
            "status": case.get_status_display().lower(),
        }
    if request.htmx:
        return render(
            request, "console/review/_decision.html", _decision_context(request, case, None, text)
        )
    messages.success(request, text)
    return redirect("review-queue", tenant=request.tenant.slug)

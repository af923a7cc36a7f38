"""The agent console: the workspace (find an account, open a case, my open cases) and the case
page (live checklist, the verifier actions, evidence with the verifier behind each row, context,
files, notes and the actions of each state). The attended session page is `attended_views`.

Every view runs in `tenants.console.tenant_view`. Reads start from the tenant; every write is
the service the REST API calls, on the case locked with `case_get_for_change`. A refusal is
shown with its code and the agent's input kept; what the service recorded about it commits,
because the view answers instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.utils.translation import ngettext
from django.views import View
from django.views.decorators.http import require_GET, require_POST
from django.views.defaults import permission_denied

from audit.models import AuditEvent
from tenants.access import TenantAccess
from tenants.console import tenant_view
from tenants.exceptions import DomainError, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import Decision

from ..api.filters import AccountFilter
from ..challenges.choices import ChallengeKind, ChallengeStatus
from ..challenges.selectors import challenge_get_visible, challenge_list
from ..challenges.services import (
    CHANNEL_OF_KIND,
    attestation_request,
    challenge_send,
    challenge_verify,
)
from ..choices import ContactKind
from ..delegation.policies import SHARED_KINDS, case_types_for
from ..delegation.selectors import delegation_of_case
from ..detection.services import caller_flag_suspicious
from ..models import ProtectedAccount
from ..owner.binding import case_owner_bindings
from ..owner.case_page import owner_signals_context
from ..owner.idp_sign_in import idp_sign_in_context
from ..policy.rules import Requirements
from ..policy.selectors import policy_active, policy_for_case
from ..proofing.attended import attended_list, attended_start
from ..proofing.models import ProofingSession
from ..proofing.services import proofing_start
from ..selectors import account_get_visible, account_list
from .access_rules import CASE_WORKERS, grant_case_types, tier_in_grant
from .choices import CaseStatus, EvidenceResult, SignalClass
from .forms import (
    AccountSearchForm,
    AttachmentForm,
    AttendedStartForm,
    CaseForm,
    CaseOpenForm,
    ChallengeSendForm,
    ChallengeVerifyForm,
    ContainmentStepForm,
    ContextForm,
    EndCaseForm,
    ExecuteForm,
    ManualStepForm,
    NoteForm,
    SuspiciousCallerForm,
    contacts_on_record,
    verify_prefix,
)
from .methods import CATALOGUE, Method
from .models import CaseExecution, CaseNote, Evidence, EvidenceAttachment, RecoveryCase
from .policies import (
    can_open_case_page,
    can_read_case_evidence,
    can_referee_case,
    can_work_case,
)
from .revert_panel import case_revert
from .review_selectors import evidence_with_verifiers
from .selectors import (
    CASE_LABEL,
    account_cases,
    case_get,
    case_get_for_change,
    case_get_visible,
    case_timeline,
    cases_open_for,
)
from .services import (
    CaseNeeds,
    case_cancel,
    case_needs,
    case_open,
    case_submit,
    case_take,
    context_record,
)
from .services.attachments import attachment_add, attachment_open, note_add
from .services.containment import (
    METHOD_REMOVE,
    SESSIONS_REVOKE,
    TEMPORARY_ACCESS_REVOKE,
    containment_pending,
    containment_step_record,
)
from .services.execution import case_close, case_execute, case_manual_step_record
from .services.repudiation import revert_pending
from .services.step_up import EXECUTE, step_up_options, step_up_presented
from .steps import RECORDED
from .transitions import TRANSITIONS, Move, Party, moves_allowed

PAGE_SIZE = 20
PRIOR_CASES = 10
# The forms of the case page, by prefix: a refused one comes back bound, with its errors.
CASE_FORMS: dict[str, type[CaseForm]] = {
    form.prefix: form
    for form in (
        ContextForm,
        ChallengeSendForm,
        AttendedStartForm,
        AttachmentForm,
        NoteForm,
        SuspiciousCallerForm,
        EndCaseForm,
        ExecuteForm,
        ManualStepForm,
        ContainmentStepForm,
    )
}

# --- reads ----------------------------------------------------------------------------------


def account_search(*, tenant: Tenant, query: str) -> QuerySet[ProtectedAccount]:
    """Accounts of `tenant` whose name, username or external id contains `query`, each with
    its contacts on record in `current_contacts` (one more query for a whole page)."""
    accounts = AccountFilter(data={"q": query}, queryset=account_list(tenant=tenant)).qs
    contacts = Prefetch(
        "contact_methods", queryset=contacts_on_record(tenant), to_attr="current_contacts"
    )
    return accounts.prefetch_related(contacts)


# --- who may use which page -----------------------------------------------------------------


def _require_case_page(access: TenantAccess, case: RecoveryCase) -> None:
    decision = can_open_case_page(access, case)
    if not decision:
        raise PermissionDenied(decision.detail)


def _require_case_worker(access: TenantAccess) -> None:
    if not access.roles & CASE_WORKERS:
        raise PermissionDenied(
            _("The agent workspace is for agents, supervisors and security officers.")
        )


def _case_types(access: TenantAccess) -> list[str]:
    """The case types the actor may open (a delegation grant may limit them)."""
    return grant_case_types(access)


def _open_form(request: HttpRequest, account: ProtectedAccount, data: Any = None) -> CaseOpenForm:
    """The case types the actor may open that the account's kind allows (a shared mailbox has
    no password or MFA recovery), and the shared mailboxes a mailbox access case may name."""
    types = case_types_for(account, _case_types(request.tenant_access))
    mailboxes = account_list(tenant=request.tenant).filter(mailbox_type__in=sorted(SHARED_KINDS))
    return CaseOpenForm(data, case_types=types, mailboxes=mailboxes.exclude(pk=account.pk))


def _refused(request: HttpRequest, form: forms.Form, error: DomainError) -> None:
    """Show a service refusal with its code; its field errors go on the form's own fields."""
    messages.error(request, f"{error.message} ({error.code})")
    for field, errors in error.field_errors.items():
        if field in form.fields:
            form.add_error(field, errors)


def _query_without(request: HttpRequest, param: str) -> str:
    """The current query string minus `param`, ready to prefix a pager link's own value."""
    params = request.GET.copy()
    params.pop(param, None)
    encoded = params.urlencode()
    return f"{encoded}&" if encoded else ""


# --- the workspace --------------------------------------------------------------------------


@tenant_view
def workspace_view(request: HttpRequest) -> HttpResponse:
    """Find an account (htmx updates the results as the agent types) and the agent's open
    cases."""
    access = request.tenant_access
    _require_case_worker(access)
    search = AccountSearchForm(request.GET)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    results = None
    if query:
        matches = account_search(tenant=request.tenant, query=query)
        results = Paginator(matches, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "search": search,
        "query": query,
        "results": results,
        "results_keep": _query_without(request, "page"),
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "console/cases/_account_results_htmx.html", context)
    else:
        mine = cases_open_for(tenant=request.tenant, actor=request.user, access=access)
        context["my_cases"] = Paginator(mine, PAGE_SIZE).get_page(request.GET.get("cases"))
        context["cases_keep"] = _query_without(request, "cases")
        response = render(request, "console/cases/workspace.html", context)
    patch_vary_headers(response, ("HX-Request",))  # a cache must not mix page and partial
    return response


def _account_page(
    request: HttpRequest,
    account: ProtectedAccount,
    form: CaseOpenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    access = request.tenant_access
    tier, tier_reasons = policy_active(request.tenant).compute_tier(account)
    context = {
        "account": account,
        "tier": tier,
        "tier_reasons": tier_reasons,
        "tier_decision": tier_in_grant(access, tier),
        "form": form or _open_form(request, account),
        "contacts": contacts_on_record(request.tenant).filter(account=account),
        "prior_cases": account_cases(tenant=request.tenant, access=access, account=account)[
            :PRIOR_CASES
        ],
    }
    return render(request, "console/cases/account.html", context, status=status)


@tenant_view
def workspace_account_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One account: masked contacts, prior attempts, and the form to open a case."""
    account = account_get_visible(tenant=request.tenant, pk=pk)
    _require_case_worker(request.tenant_access)
    return _account_page(request, account)


@require_POST
@tenant_view
def case_open_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Open a case on the account (`case_open`, as the API does) and go to its page."""
    account = account_get_visible(tenant=request.tenant, pk=pk)
    _require_case_worker(request.tenant_access)
    form = _open_form(request, account, request.POST)
    if form.is_valid():
        try:
            case = case_open(actor=request.user, account=account, **form.cleaned_data)
        except DomainError as error:
            _refused(request, form, error)
        else:
            messages.success(request, _("Case %(pk)s opened.") % {"pk": case.pk})
            return redirect("case-detail", tenant=request.tenant.slug, pk=case.pk)
    return _account_page(request, account, form, status=400)


# --- the case page --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    """One thing the policy asks of a case, met or not, in words."""

    met: bool
    text: str
    detail: str = ""
    until: datetime | None = None


def _duration(seconds: int) -> str:
    if seconds and seconds % 86_400 == 0:
        days = seconds // 86_400
        return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}
    if seconds and seconds % 3_600 == 0:
        hours = seconds // 3_600
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    if seconds and seconds % 60 == 0:
        minutes = seconds // 60
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}


def checklist(case: RecoveryCase, req: Requirements, needs: CaseNeeds) -> list[ChecklistItem]:
    """What the case's policy asks, item by item, and whether each is met now."""
    classes = ", ".join(req.accepted_classes)
    if needs.evidence_met:
        evidence = ChecklistItem(
            True,
            _("Evidence: complete (accepted classes: %(have)s).")
            % {"have": ", ".join(needs.accepted_classes)},
        )
    else:
        missing = max(needs.classes_missing, 1)
        evidence = ChecklistItem(
            False,
            ngettext(
                "Evidence: %(n)d more distinct signal class from %(classes)s.",
                "Evidence: %(n)d more distinct signal classes from %(classes)s.",
                missing,
            )
            % {"n": missing, "classes": classes},
            _("A completed S4 on its own is also enough.") if req.s4_alone_suffices else "",
        )
    items = [evidence, ChecklistItem(case.submitted_at is not None, _("Sent for approval."))]
    if needs.approvals_required:
        items.append(
            ChecklistItem(
                needs.approvals >= needs.approvals_required,
                _("Approvals: %(have)d of %(need)d.")
                % {"have": needs.approvals, "need": needs.approvals_required},
                _("Never by the opener, the subject or the same person under another account."),
            )
        )
    if needs.security_officer_approvals_required:
        items.append(
            ChecklistItem(
                needs.security_officer_approvals >= needs.security_officer_approvals_required,
                _("Approvals by a security officer: %(have)d of %(need)d.")
                % {
                    "have": needs.security_officer_approvals,
                    "need": needs.security_officer_approvals_required,
                },
            )
        )
    if req.tenant_approver_required_when_msp and case.opened_via_provider_id:
        items.append(
            ChecklistItem(
                not needs.tenant_approver_missing,
                _("One approver from the tenant's own staff (a service provider opened the case)."),
            )
        )
    if req.cooling_off_seconds:
        items.append(
            ChecklistItem(
                case.status in (CaseStatus.READY, CaseStatus.EXECUTED, CaseStatus.CLOSED),
                _("Cooling-off: %(duration)s after approval, once the owner is notified.")
                % {"duration": _duration(req.cooling_off_seconds)},
                until=case.cooling_off_until if case.status == CaseStatus.COOLING_OFF else None,
            )
        )
    return items


@dataclass(frozen=True)
class MethodOffer:
    """A catalogue method as the case page shows it, and whether this case's policy takes it."""

    method: Method
    accepted: bool


def verifier_menu(req: Requirements) -> dict[str, list[MethodOffer]]:
    """The catalogue by verifier action: what each action proves and what it cannot, and the
    methods whose verifier is not built yet (listed, with no control)."""
    groups: dict[str, list[MethodOffer]] = {
        "code": [],
        "attestation": [],
        "proofing": [],
        "attended": [],
        "saved_code": [],
        "confirmation": [],
        "idp": [],
        "unavailable": [],
    }
    # The owner portal verifies three methods, each with its own action on the page.
    group_of_method = {
        "recovery_code": "saved_code",
        "passkey": "confirmation",
        "idp_sign_in": "idp",
    }
    group_of = {
        "challenge": "code",
        "attestation": "attestation",
        "proofing_provider": "proofing",
        "attended_session": "attended",
    }
    for method in CATALOGUE:
        group = (
            group_of_method.get(method.name) or group_of.get(method.verifier)
            if method.available
            else "unavailable"
        )
        accepted = (
            method.signal_class in req.accepted_classes and method.name in req.accepted_methods
        )
        groups[group or "unavailable"].append(MethodOffer(method, accepted))
    return groups


# --- containment after a cloud recovery (R-34) -----------------------------------------------

CONTAINMENT_OPERATIONS = {
    METHOD_REMOVE: _l("Remove a lost sign-in method"),
    SESSIONS_REVOKE: _l("End every session and refresh token"),
    TEMPORARY_ACCESS_REVOKE: _l("Delete the owner's one-time pass"),
}


@dataclass(frozen=True)
class ContainmentStep:
    """One containment step as the case page shows it: done by the connector (with its path),
    done by a person (who recorded it, when), or pending (the words for a person)."""

    id: str
    operation: str
    target: str
    connector: str = ""
    path: str = ""
    code: str = ""
    manual_step: str = ""
    recorded_at: datetime | None = None
    recorded_by: str = ""

    @property
    def label(self) -> str:
        return str(CONTAINMENT_OPERATIONS.get(self.operation, self.operation))


@dataclass(frozen=True)
class Containment:
    """The owner's one-time pass (when it was given and until when; never the pass, which no
    row holds) and the containment steps, by who did them."""

    pass_given_at: datetime | None
    pass_expires_at: datetime | None
    done_at: datetime | None
    done: list[ContainmentStep]
    recorded: list[ContainmentStep]
    pending: list[ContainmentStep]


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def case_containment(case: RecoveryCase, execution: CaseExecution | None) -> Containment | None:
    """The pass and containment of a recovery (None when the execution gave no pass, ran no
    containment and left no step to a person: a role suspension's or a window undo's).
    Steps the connector did come from their `containment.step_done` events (one query); steps
    left to a person from the execution, with the username of whoever recorded each (one more
    query once one is recorded)."""
    if execution is None or not (
        execution.temporary_pass or execution.containment_done_at or execution.containment_steps
    ):
        return None
    given = execution.temporary_pass or {}
    done_events = (
        AuditEvent.objects.filter(
            tenant_id=case.tenant_id,
            target_type=CASE_LABEL,
            target_id=str(case.pk),
            action="containment.step_done",
        )
        .order_by("seq")
        .values_list("data", flat=True)
    )
    done = [
        ContainmentStep(
            id=f"{data['operation']}:{data['target']}",
            operation=data["operation"],
            target=data["target"],
            connector=data.get("connector", ""),
            path=data.get("path", ""),
        )
        for data in done_events
    ]
    manual = execution.containment_steps
    recorders = {step["recorded_by"] for step in manual if step["recorded_by"]}
    usernames = dict(User.objects.filter(pk__in=recorders).values_list("pk", "username"))
    steps = [
        ContainmentStep(
            id=step["id"],
            operation=step["operation"],
            target=step["target"],
            code=step["code"],
            manual_step=step["manual_step"],
            recorded_at=_moment(step["recorded_at"]),
            recorded_by=usernames.get(step["recorded_by"], ""),
        )
        for step in manual
    ]
    recorded_ids = {step["id"] for step in manual if step["state"] == RECORDED}
    return Containment(
        pass_given_at=_moment(given.get("started_at")),
        pass_expires_at=_moment(given.get("expires_at")),
        done_at=execution.containment_done_at,
        done=done,
        recorded=[step for step in steps if step.id in recorded_ids],
        pending=[step for step in steps if step.id not in recorded_ids],
    )


# What the "Next step" panel says when the table offers this user no move from the status.
NEXT_STEP_HINTS = {
    CaseStatus.COLLECTING_EVIDENCE: _l("Evidence is being collected by the case's workers."),
    CaseStatus.PENDING_APPROVAL: _l("Waiting for approval by someone other than you."),
    CaseStatus.COOLING_OFF: _l(
        "Approved; waiting for the cooling-off to end before it can be executed."
    ),
    CaseStatus.READY: _l("Ready to execute, by someone other than you."),
}


def _actions(
    case: RecoveryCase,
    user: User,
    access: TenantAccess,
    work: Decision,
    execution: CaseExecution | None,
    *,
    taken: bool,
) -> dict[str, bool]:
    """Which forms the case page offers now: exactly the moves the transition table allows
    from the case's status that this user's policy lets them make (`moves_allowed`); the
    services check again on every POST.

    An AI-drafted case nobody has taken yet offers "take this case" and no verifier action
    (R-66: nothing a model drafted sends a code or a notice)."""
    allowed = moves_allowed(case, user, access)

    def may(move: Move, party: Party) -> bool:
        return party in allowed.get(move, ())

    detail = execution.detail if execution else {}
    collecting = may(Move.COLLECT, Party.WORKER)
    return {
        "collect": collecting,
        "verify": collecting and taken,
        "submit": may(Move.SUBMIT, Party.WORKER),
        "awaiting_taker": not taken and TRANSITIONS[Move.TAKE].allows(case.status),
        "take": not taken and may(Move.TAKE, Party.WORKER),
        "decide": may(Move.APPROVE, Party.APPROVER),
        "execute": may(Move.EXECUTE, Party.EXECUTOR),
        "close": may(Move.CLOSE, Party.WORKER),
        "cancel": may(Move.CANCEL, Party.WORKER),
        # A trusted referee runs attended sessions; the service checks certification and
        # independence from the case when the session starts.
        "referee": taken and may(Move.COLLECT, Party.REFEREE),
        "note": bool(work),  # notes are no move: any status, by whoever works the case
        "manual": may(Move.RECORD_MANUAL_STEP, Party.WORKER)
        and bool(detail.get("requires_confirmation"))
        and not detail.get("path_used"),
        # a containment step left to a person, recorded like a manual step
        "containment": may(Move.RECORD_MANUAL_STEP, Party.WORKER)
        and bool(containment_pending(execution)),
        # a revert step of a repudiated recovery left to a person
        "revert": may(Move.RECORD_REVERT_STEP, Party.WORKER) and bool(revert_pending(execution)),
    }


def _case_context(
    request: HttpRequest, case: RecoveryCase, bound: dict[str, forms.Form]
) -> dict[str, Any]:
    tenant, access = request.tenant, request.tenant_access
    req = policy_for_case(case).requirements(case.tier, case.case_type)
    needs = case_needs(case, req)
    work = can_work_case(access, route=case.route, tier=case.tier, case_type=case.case_type)
    execution = CaseExecution.objects.for_tenant(tenant).filter(case=case).first()
    contacts = list(contacts_on_record(tenant).filter(account_id=case.account_id))
    challenges = list(challenge_list(tenant=tenant, case=case))
    now = timezone.now()  # for display only: the service checks expiry by database time
    for challenge in challenges:
        prefix = verify_prefix(challenge.pk)
        challenge.verify_form = (
            bound[prefix] if prefix in bound else ChallengeVerifyForm(prefix=prefix)
        )
        challenge.lapsed = challenge.status == ChallengeStatus.OPEN and challenge.expires_at <= now
        challenge.awaiting_code = (
            challenge.kind == ChallengeKind.CODE
            and challenge.status == ChallengeStatus.OPEN
            and not challenge.lapsed
        )
    managers = [c for c in contacts if c.kind == ContactKind.MANAGER]
    taken = case.taken_by_id is not None  # an AI-drafted case has no taker yet
    actions = _actions(case, request.user, access, work, execution, taken=taken)
    return {
        "case": case,
        "needs": needs,
        "checklist": checklist(case, req, needs),
        "work": work,
        "is_worker": bool(access.roles & CASE_WORKERS),
        "taken": taken,
        "actions": actions,
        "next_step_hint": NEXT_STEP_HINTS.get(
            case.status, _("This case has ended; you can still add notes.")
        ),
        "may_referee": actions["referee"],
        "menu": verifier_menu(req),
        "s4": SignalClass.S4,
        "proofing_sessions": ProofingSession.objects.for_tenant(tenant)
        .filter(case=case)
        .order_by("created_at", "pk"),
        "attended_sessions": attended_list(tenant=tenant, case=case),
        "may_read_files": bool(
            can_read_case_evidence(
                access, route=case.route, tier=case.tier, case_type=case.case_type
            )
        ),
        "code_contacts": [c for c in contacts if c.kind in CHANNEL_OF_KIND],
        # the one attestation_request writes to: the longest held
        "manager_contact": min(managers, key=lambda c: (c.registered_at, c.pk), default=None),
        "challenges": challenges,
        "evidence": evidence_with_verifiers(tenant=tenant, case=case),
        "attachments": EvidenceAttachment.objects.for_tenant(tenant)
        .filter(case=case)
        .select_related("uploaded_by")
        .order_by("pk"),
        "notes": CaseNote.objects.for_tenant(tenant)
        .filter(case=case)
        .select_related("author")
        .order_by("created_at", "pk"),
        "execution": execution,
        "containment": case_containment(case, execution),
        "revert": case_revert(case, execution),
        "delegation": delegation_of_case(case) if case.case_type == "mailbox_access" else None,
        **owner_signals_context(case, req, bound),
        **idp_sign_in_context(case),
        "owner_bindings": case_owner_bindings(tenant=tenant, case=case) if execution else [],
        "timeline": case_timeline(tenant=tenant, case=case),
        "prior_cases": account_cases(
            tenant=tenant, access=access, account=case.account, exclude=case.pk
        )[:PRIOR_CASES],
        "forms": {
            prefix: bound[prefix] if prefix in bound else form(case=case)
            for prefix, form in CASE_FORMS.items()
        },
    }


def _case_page(
    request: HttpRequest,
    case: RecoveryCase,
    *,
    bound: dict[str, forms.Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The case page; for an htmx POST only its live section, with the messages out of band
    (htmx swaps 200 answers only, so a refusal answers 200 there)."""
    context = _case_context(request, case, bound or {})
    if request.method == "POST" and request.htmx:
        return render(request, "console/cases/_case_live_htmx.html", context)
    return render(request, "console/cases/case.html", context, status=status)


@tenant_view
def case_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The case page."""
    case = case_get(tenant=request.tenant, pk=pk)
    _require_case_page(request.tenant_access, case)
    return _case_page(request, case)


def evidence_outcome(evidence: Evidence) -> tuple[int, str]:
    """How a recorded signal is reported: accepted, context only, or rejected with its reason."""
    if evidence.result == EvidenceResult.ACCEPTED:
        return messages.SUCCESS, _("Signal %(cls)s accepted.") % {"cls": evidence.signal_class}
    if evidence.result == EvidenceResult.CONTEXT:
        return messages.WARNING, _("Kept as context only: this is not evidence.")
    return messages.WARNING, _("Recorded, but it does not count: %(reason)s.") % {
        "reason": evidence.reason_code
    }


class CaseAction(View):
    """A POST that changes one case through one service call.

    Locks the case (`case_get_for_change`), finds what the URL names (another tenant's or
    case's id is a 404), refuses with 403 before anything is written whoever may not use the
    case page, validates the form and calls `perform`. Then it redirects to the case page or,
    for htmx, answers with the re-rendered live section. A refusal keeps the agent's input and
    shows the message with its code.
    """

    http_method_names = ["post"]
    form_class: type[CaseForm] = CaseForm
    case: RecoveryCase

    def post(self, request: HttpRequest, pk: int, **kwargs: Any) -> HttpResponse:
        self.case = case_get_for_change(tenant=request.tenant, pk=pk)
        self.find(**kwargs)
        self.check_role()
        _require_case_page(request.tenant_access, self.case)
        form = self.get_form()
        if form.is_valid():
            try:
                level, text = self.perform(form.cleaned_data)
            except DomainError as error:
                _refused(request, form, error)
            else:
                messages.add_message(request, level, text)
                return self.done(request)
        else:
            messages.error(request, _("Nothing was saved: correct the marked fields."))
        fresh = case_get(tenant=request.tenant, pk=pk)
        return _case_page(request, fresh, bound={form.prefix: form}, status=400)

    def find(self, **kwargs: Any) -> None:
        """Look up what the URL names besides the case (a 404 before anything else)."""

    def check_role(self) -> None:
        """A 403 before anything is written for whoever may not use this action at all."""
        _require_case_worker(self.request.tenant_access)

    def done(self, request: HttpRequest) -> HttpResponse:
        """After success: back to the case page (htmx: its live section)."""
        if not request.htmx:
            return redirect("case-detail", tenant=request.tenant.slug, pk=self.case.pk)
        return _case_page(request, case_get(tenant=request.tenant, pk=self.case.pk))

    def get_form(self) -> forms.Form:
        return self.form_class(self.request.POST, self.request.FILES, case=self.case)

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        """Call the service; return the message level and text to show."""
        raise NotImplementedError


class ContextView(CaseAction):
    """What the caller said, kept as context: never counted, whatever the topic."""

    form_class = ContextForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        item = context_record(
            actor=self.request.user,
            case=self.case,
            topic=data["topic"],
            statement=data["statement"],
        )
        if item.details.get("secrets_masked"):
            return messages.WARNING, _(
                "Kept as context only, never counted. Something that looked like a secret was "
                "masked and the case's trail records it."
            )
        return messages.SUCCESS, _("Kept as context only: it never counts as evidence.")


class TakeView(CaseAction):
    """A person takes a case an AI assistant drafted; only then can codes and notices go."""

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        case_take(actor=self.request.user, case=self.case)
        return messages.SUCCESS, _(
            "You took this case. You can now verify the caller with the actions below."
        )


class ProofingStartView(CaseAction):
    """Start identity proofing at the configured provider and show the page the person opens."""

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        started = proofing_start(actor=self.request.user, case=self.case)
        return messages.SUCCESS, format_html(
            '{} <a href="{}" class="proofing-link" rel="noreferrer">{}</a> {}',
            _("Identity proofing started. Give the person this address to open:"),
            started.redirect_url,
            started.redirect_url,
            _("The result arrives from the provider by itself; this page shows it once it is in."),
        )


class AttendedStartView(CaseAction):
    """A trusted referee starts an attended session, then runs it on its own page."""

    form_class = AttendedStartForm

    def check_role(self) -> None:
        decision = can_referee_case(self.request.tenant_access, self.case)
        if not decision:
            raise PermissionDenied(decision.detail)

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        self.session = attended_start(
            actor=self.request.user, case=self.case, mode=data["mode"], reason=data["reason"]
        )
        return messages.SUCCESS, _(
            "Attended session started. Ask the person to perform the live challenge shown here."
        )

    def done(self, request: HttpRequest) -> HttpResponse:
        """To the session's own page (htmx: a full navigation there, not a swap)."""
        target = redirect(
            "case-attended", tenant=request.tenant.slug, pk=self.case.pk, session_pk=self.session.pk
        )
        if not request.htmx:
            return target
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target.url
        return response


class ChallengeSendView(CaseAction):
    form_class = ChallengeSendForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        challenge = challenge_send(
            actor=self.request.user, case=self.case, contact_method=data["contact_method"]
        )
        return messages.SUCCESS, _(
            "A code was sent to %(contact)s. Ask the owner to read it back to you."
        ) % {"contact": challenge.contact_hint}


class ChallengeVerifyView(CaseAction):
    def find(self, *, challenge_pk: int, **kwargs: Any) -> None:
        self.challenge = challenge_get_visible(
            tenant=self.request.tenant, case=self.case, pk=challenge_pk
        )

    def get_form(self) -> forms.Form:
        return ChallengeVerifyForm(self.request.POST, prefix=verify_prefix(self.challenge.pk))

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        evidence = challenge_verify(
            actor=self.request.user, case=self.case, challenge=self.challenge, code=data["code"]
        )
        return evidence_outcome(evidence)


class AttestationView(CaseAction):
    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        challenge = attestation_request(actor=self.request.user, case=self.case)
        return messages.SUCCESS, _(
            "The manager was asked to attest from their own signed-in session; the link went "
            "to %(contact)s."
        ) % {"contact": challenge.contact_hint}


class AttachmentView(CaseAction):
    form_class = AttachmentForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        upload = data["file"]
        attachment = attachment_add(
            actor=self.request.user,
            case=self.case,
            name=upload.name,
            content=upload.read(),
            evidence=data["evidence"],
        )
        return messages.SUCCESS, _("File %(name)s attached.") % {"name": attachment.original_name}


class NoteView(CaseAction):
    form_class = NoteForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        note = note_add(actor=self.request.user, case=self.case, text=data["text"])
        if not note.flagged:
            return messages.SUCCESS, _("Note added.")
        return messages.WARNING, ngettext(
            "Note added; %(n)d secret was masked and the note is flagged for review.",
            "Note added; %(n)d secrets were masked and the note is flagged for review.",
            note.secrets_masked,
        ) % {"n": note.secrets_masked}


class SuspiciousCallerView(CaseAction):
    form_class = SuspiciousCallerForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        watched = caller_flag_suspicious(
            actor=self.request.user, case=self.case, reason=data["reason"]
        )
        return messages.SUCCESS, ngettext(
            "%(n)d caller identifier went on the watch-list.",
            "%(n)d caller identifiers went on the watch-list.",
            len(watched),
        ) % {"n": len(watched)}


class SubmitView(CaseAction):
    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        case = case_submit(actor=self.request.user, case=self.case)
        return messages.SUCCESS, _("Submitted. The case is now: %(status)s.") % {
            "status": case.get_status_display()
        }


class CancelView(CaseAction):
    form_class = EndCaseForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        case_cancel(actor=self.request.user, case=self.case, reason=data["reason"])
        return messages.SUCCESS, _("Case cancelled.")


class ExecuteView(CaseAction):
    """Execute with the executor's fresh passkey step-up, bound to the case (the service
    decides)."""

    form_class = ExecuteForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        proof = step_up_presented(
            actor=self.request.user,
            case=self.case,
            action=EXECUTE,
            assertion=data["step_up_assertion"],
        )
        case = case_execute(actor=self.request.user, case=self.case, step_up=proof)
        execution = CaseExecution.objects.for_tenant(case.tenant).get(case=case)
        if execution.detail.get("requires_confirmation"):
            return messages.SUCCESS, _(
                "Executed. Follow the steps shown in the other console, then record the exact "
                "path you used."
            )
        return messages.SUCCESS, _("Executed through the %(connector)s connector.") % {
            "connector": execution.connector
        }


class ManualStepView(CaseAction):
    form_class = ManualStepForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        case_manual_step_record(actor=self.request.user, case=self.case, path_used=data["path"])
        return messages.SUCCESS, _("The path you followed is recorded.")


class ContainmentStepView(CaseAction):
    """Record one pending containment step as done in the directory's console, with the
    person's fresh passkey step-up for "execute" on this case (the service decides, and
    refuses no step-up)."""

    form_class = ContainmentStepForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        proof = step_up_presented(
            actor=self.request.user,
            case=self.case,
            action=EXECUTE,
            assertion=data["step_up_assertion"],
        )
        execution = containment_step_record(
            actor=self.request.user, case=self.case, step=data["step"], step_up=proof
        )
        left = len(containment_pending(execution))
        if not left:
            return messages.SUCCESS, _(
                "Step recorded as done. No containment step is pending: the case can be closed."
            )
        return messages.SUCCESS, ngettext(
            "Step recorded as done. %(n)d containment step is still pending.",
            "Step recorded as done. %(n)d containment steps are still pending.",
            left,
        ) % {"n": left}


class CloseView(CaseAction):
    form_class = EndCaseForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        case_close(actor=self.request.user, case=self.case, reason=data["reason"])
        return messages.SUCCESS, _("Case closed; its active recovery artifacts were revoked.")


case_context_view = tenant_view(ContextView.as_view())
case_take_view = tenant_view(TakeView.as_view())
case_proofing_start_view = tenant_view(ProofingStartView.as_view())
case_attended_start_view = tenant_view(AttendedStartView.as_view())
case_challenge_send_view = tenant_view(ChallengeSendView.as_view())
case_challenge_verify_view = tenant_view(ChallengeVerifyView.as_view())
case_attestation_view = tenant_view(AttestationView.as_view())
case_attachment_add_view = tenant_view(AttachmentView.as_view())
case_note_view = tenant_view(NoteView.as_view())
case_submit_view = tenant_view(SubmitView.as_view())
case_cancel_view = tenant_view(CancelView.as_view())
case_suspicious_caller_view = tenant_view(SuspiciousCallerView.as_view())
case_execute_view = tenant_view(ExecuteView.as_view())
case_manual_step_view = tenant_view(ManualStepView.as_view())
case_containment_record_view = tenant_view(ContainmentStepView.as_view())
case_close_view = tenant_view(CloseView.as_view())


@require_GET
@tenant_view
def case_step_up_options_view(request: HttpRequest, pk: int) -> HttpResponse:
    """WebAuthn request options over a challenge issued for `?action=approve|execute` on this
    case as it stands (`step_up_options`); static/staff/passkey.js asks for them when a form
    marked `data-passkey-step-up` is sent. A refusal is JSON with its code."""
    case = case_get_visible(tenant=request.tenant, access=request.tenant_access, pk=pk)
    try:
        options = step_up_options(
            actor=request.user, case=case, action=request.GET.get("action", "")
        )
    except DomainError as error:
        status = 403 if isinstance(error, PolicyDenied) else 400
        return JsonResponse({"code": error.code, "detail": error.message}, status=status)
    response = HttpResponse(options, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


@tenant_view
def case_attachment_view(request: HttpRequest, pk: int, attachment_pk: int) -> HttpResponse:
    """Download one file of the case through `attachment_open` (checked, verified, audited).

    A refusal is answered, not raised, so the `policy.violation` or integrity failure the
    service recorded commits.
    """
    case = case_get(tenant=request.tenant, pk=pk)
    try:
        opened = attachment_open(actor=request.user, case=case, attachment_id=attachment_pk)
    except PolicyDenied as error:
        return permission_denied(request, PermissionDenied(f"{error.message} ({error.code})"))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
        return redirect("case-detail", tenant=request.tenant.slug, pk=case.pk)
    return FileResponse(
        iter([opened.content]),
        as_attachment=True,
        filename=opened.attachment.original_name,
        content_type="application/octet-stream",
    )

"""The attended session page (S4 by a trusted referee, R-06, R-07, R-09): the live challenge,
the mandatory coercion question, the session record with its outcome, and the fraud flag.

Only the session's referee opens the page (403 for anyone else who may see the case); another
case's or tenant's session id is the same 404 as a missing one. Every POST locks the case,
re-reads the session, calls the attended service and redirects back to the page; a refusal is
shown with its code, the referee's input kept. The complete form stays disabled until the
coercion question is answered, and a POST to it before then is refused here, before the
service (which refuses it too).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import View

from tenants.console import tenant_view
from tenants.exceptions import DomainError, PolicyDenied

from ..proofing.attended import (
    attended_coercion_answer,
    attended_complete,
    attended_fraud_flag,
    attended_get_visible,
)
from ..proofing.choices import AttendedMode, AttendedStatus
from ..proofing.models import AttendedSession
from .forms import AttendedCompleteForm, CoercionForm, FraudFlagForm
from .models import RecoveryCase
from .selectors import case_get, case_get_for_change

SESSION_FORMS: dict[str, type[forms.Form]] = {
    form.prefix: form for form in (CoercionForm, AttendedCompleteForm, FraudFlagForm)
}


def _require_referee(request: HttpRequest, session: AttendedSession) -> None:
    """The page and its actions are the session's referee's alone."""
    if session.referee_id != request.user.pk:
        raise PermissionDenied(_("Only the referee who runs this attended session can open it."))


def _session_page(
    request: HttpRequest,
    case: RecoveryCase,
    session: AttendedSession,
    *,
    bound: forms.Form | None = None,
    status: int = 200,
) -> HttpResponse:
    is_open = session.status == AttendedStatus.OPEN
    context: dict[str, Any] = {
        "case": case,
        "session": session,
        "is_open": is_open,
        "answered": session.coercion_observed is not None,
        "onsite": session.mode == AttendedMode.ONSITE,
        "may_flag": session.status != AttendedStatus.FRAUD_FLAGGED,
        "forms": {
            prefix: bound if bound is not None and bound.prefix == prefix else form()
            for prefix, form in SESSION_FORMS.items()
        },
    }
    return render(request, "console/cases/attended.html", context, status=status)


@tenant_view
def attended_session_view(request: HttpRequest, pk: int, session_pk: int) -> HttpResponse:
    """The session page."""
    case = case_get(tenant=request.tenant, pk=pk)
    session = attended_get_visible(tenant=request.tenant, case=case, pk=session_pk)
    _require_referee(request, session)
    return _session_page(request, case, session)


class SessionAction(View):
    """A POST on an attended session: case locked first, then the session read (404 when it
    is not this case's), 403 for anyone but its referee, the form validated, one service call,
    then back to the page."""

    http_method_names = ["post"]
    form_class: type[forms.Form]

    def post(self, request: HttpRequest, pk: int, session_pk: int) -> HttpResponse:
        self.case = case_get_for_change(tenant=request.tenant, pk=pk)
        self.session = attended_get_visible(tenant=request.tenant, case=self.case, pk=session_pk)
        _require_referee(request, self.session)
        form = self.form_class(request.POST)
        if form.is_valid():
            try:
                text = self.perform(form.cleaned_data)
            except DomainError as error:
                messages.error(request, f"{error.message} ({error.code})")
                for field, errors in error.field_errors.items():
                    if field in form.fields:
                        form.add_error(field, errors)
            else:
                messages.success(request, text)
                return redirect(
                    "case-attended", tenant=request.tenant.slug, pk=pk, session_pk=session_pk
                )
        else:
            messages.error(request, _("Nothing was saved: correct the marked fields."))
        case = case_get(tenant=request.tenant, pk=pk)
        session = attended_get_visible(tenant=request.tenant, case=case, pk=session_pk)
        return _session_page(request, case, session, bound=form, status=400)

    def perform(self, data: dict[str, Any]) -> str:
        raise NotImplementedError


class CoercionView(SessionAction):
    form_class = CoercionForm

    def perform(self, data: dict[str, Any]) -> str:
        session = attended_coercion_answer(
            actor=self.request.user,
            session=self.session,
            observed=data["observed"],
            note=data["note"],
        )
        if session.status == AttendedStatus.FAILED:
            return _(
                "Coercion observed: the session has ended, nothing counts from it, and the "
                "security queue has an alert."
            )
        return _("Answer recorded. Record what was presented and the outcome.")


class CompleteView(SessionAction):
    form_class = AttendedCompleteForm

    def perform(self, data: dict[str, Any]) -> str:
        # nothing goes on before the coercion question is answered (the service and the
        # database refuse it too).
        if self.session.status == AttendedStatus.OPEN and self.session.coercion_observed is None:
            raise PolicyDenied(
                _("Answer the coercion question before the session can go on (R-07)."),
                code="attended.coercion_unanswered",
            )
        evidence = attended_complete(
            actor=self.request.user,
            session=self.session,
            documents_presented=data["documents"],
            steps_completed=data["steps"],
            live_challenge_passed=data["live_challenge_passed"],
            biometric_compared=data["biometric_compared"],
            outcome_note=data["outcome_note"],
        )
        if evidence is None:
            return _("Session ended: the live challenge was not passed, so nothing counts.")
        if evidence.result == "accepted":
            return _("Session completed: signal S4 accepted.")
        return _("Session completed, but the signal does not count: %(reason)s.") % {
            "reason": evidence.reason_code
        }


class FraudView(SessionAction):
    form_class = FraudFlagForm

    def perform(self, data: dict[str, Any]) -> str:
        attended_fraud_flag(actor=self.request.user, session=self.session, reason=data["reason"])
        return _("Fraud flagged: the case is frozen and the security queue has an alert.")


attended_coercion_view = tenant_view(CoercionView.as_view())
attended_complete_view = tenant_view(CompleteView.as_view())
attended_fraud_view = tenant_view(FraudView.as_view())

"""The agent's owner-signal actions on the case page: check a saved recovery code read back
(S1), ask for an in-app confirmation (S5), and the confirmation's live status (htmx polls it).

Each POST is a `CaseAction` calling the same service the API calls.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from tenants.console import tenant_view

from ..cases.selectors import case_get
from ..cases.views import CaseAction, _require_case_page, evidence_outcome
from .case_page import RecoveryCodeForm, confirmation_view
from .confirmation import confirmation_request
from .signals import recovery_code_check


class RecoveryCodeView(CaseAction):
    """The saved code the caller reads out; a match records S1."""

    form_class = RecoveryCodeForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        evidence = recovery_code_check(actor=self.request.user, case=self.case, code=data["code"])
        return evidence_outcome(evidence)


class ConfirmationRequestView(CaseAction):
    """Ask the owner to confirm in the app; the number to read out is shown on the page."""

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        confirmation = confirmation_request(actor=self.request.user, case=self.case)
        return messages.SUCCESS, _(
            "The owner was asked to confirm. Read this number to the caller: %(number)s. "
            "They type it on their page and confirm with their passkey."
        ) % {"number": confirmation.number}


@tenant_view
@require_GET
def confirmation_status_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The latest in-app confirmation of the case (the page polls it while it is open)."""
    case = case_get(tenant=request.tenant, pk=pk)
    _require_case_page(request.tenant_access, case)
    return render(
        request,
        "console/cases/_confirmation.html",
        {"case": case, "confirmation": confirmation_view(case)},
    )


case_recovery_code_view = tenant_view(RecoveryCodeView.as_view())
case_confirmation_request_view = tenant_view(ConfirmationRequestView.as_view())

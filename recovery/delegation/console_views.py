"""The case page's part of a mailbox delegation: record a pending grant or removal step done in
the mail system's console, with the person's passkey step-up ("execute" on the case). Thin: the
service decides."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.utils.translation import gettext as _

from tenants.console import tenant_view

from ..cases.forms import CaseForm
from ..cases.review_forms import step_up_assertion_field
from ..cases.services.step_up import EXECUTE, step_up_presented
from ..cases.views import CaseAction
from .services import delegation_step_record


class DelegationStepForm(CaseForm):
    """A pending delegation step's id ("grant" or "remove") and the passkey's answer."""

    prefix = "delegation"

    step = forms.CharField(max_length=16, widget=forms.HiddenInput)
    step_up_assertion = step_up_assertion_field()


class DelegationStepView(CaseAction):
    form_class = DelegationStepForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        proof = step_up_presented(
            actor=self.request.user,
            case=self.case,
            action=EXECUTE,
            assertion=data["step_up_assertion"],
        )
        delegation = delegation_step_record(
            actor=self.request.user, case=self.case, step=data["step"], step_up=proof
        )
        if data["step"] == "grant":
            return messages.SUCCESS, _(
                "Recorded: the delegation is in place until %(expires)s; it is removed then."
            ) % {"expires": delegation.expires_at}
        return messages.SUCCESS, _("Recorded: the delegation is removed; the case can be closed.")


case_delegation_step_view = tenant_view(DelegationStepView.as_view())

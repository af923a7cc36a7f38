"""Console POSTs of a repudiated recovery's revert and of an account's freeze (R-37, R-41):
record a revert step done by hand (passkey step-up bound to the case), and a security
officer's "lift the freeze" (reason and authenticator code). Thin: the services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from tenants.console import tenant_view
from tenants.exceptions import DomainError
from tenants.stepup import step_up_verify

from ..selectors import account_get_visible
from .forms import CONTAINMENT_STEP_ID_MAX, CaseForm
from .review_forms import step_up_assertion_field
from .services.repudiation import (
    UNFREEZE_REASON_MIN,
    account_unfreeze,
    revert_pending,
    revert_step_record,
)
from .services.step_up import EXECUTE, step_up_presented
from .views import CaseAction


class RevertStepForm(CaseForm):
    """A pending revert step (its id, hidden) done in the directory's console; the person's
    passkey over a challenge issued for "execute" on the case as it stands."""

    prefix = "revert"

    step = forms.CharField(max_length=CONTAINMENT_STEP_ID_MAX, widget=forms.HiddenInput)
    step_up_assertion = step_up_assertion_field()


class RevertStepView(CaseAction):
    form_class = RevertStepForm

    def perform(self, data: dict[str, Any]) -> tuple[int, str]:
        proof = step_up_presented(
            actor=self.request.user,
            case=self.case,
            action=EXECUTE,
            assertion=data["step_up_assertion"],
        )
        execution = revert_step_record(
            actor=self.request.user, case=self.case, step=data["step"], step_up=proof
        )
        left = len(revert_pending(execution))
        if not left:
            return messages.SUCCESS, _("Step recorded as done. Every change is reverted.")
        return messages.SUCCESS, ngettext(
            "Step recorded as done. %(n)d revert step is still pending.",
            "Step recorded as done. %(n)d revert steps are still pending.",
            left,
        ) % {"n": left}


class UnfreezeForm(forms.Form):
    reason = forms.CharField(
        label=_l("Why the account may be used again"),
        min_length=UNFREEZE_REASON_MIN,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    token = forms.CharField(
        label=_l("Fresh authenticator code"),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@require_POST
@tenant_view
def account_unfreeze_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A security officer lifts the account's freeze; the service refuses anyone else, and
    while a revert step or a window change is pending."""
    account = account_get_visible(tenant=request.tenant, pk=pk)
    form = UnfreezeForm(request.POST)
    try:
        if not form.is_valid():
            raise DomainError(
                _("Give a reason (at least 10 characters) and a fresh authenticator code."),
                code="account.unfreeze_input_invalid",
            )
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        account_unfreeze(
            actor=request.user,
            account=account,
            reason=form.cleaned_data["reason"],
            step_up=proof,
        )
        messages.success(request, _("The freeze is lifted: cases can be opened again."))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return redirect("workspace-account", tenant=request.tenant.slug, pk=account.pk)


case_revert_record_view = tenant_view(RevertStepView.as_view())

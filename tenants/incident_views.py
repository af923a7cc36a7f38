"""Console: the tenant's incident switches (`tenants.incident`): AI assistance and the
recovery freeze, each flipped with a reason and a fresh step-up (an authenticator code)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from .console import tenant_view_own_scope
from .exceptions import DomainError, InvalidInput
from .forms import StepUpForm
from .incident import REASON_MIN, SWITCHES, incident_state, incident_switch, may_control
from .rls import tenant_scope
from .stepup import step_up_verify

DONE = {
    "ai_off": gettext_lazy("AI assistance switched off."),
    "ai_on": gettext_lazy("AI assistance switched back on."),
    "freeze": gettext_lazy("Recoveries frozen."),
    "unfreeze": gettext_lazy("Recovery freeze lifted."),
}


class SwitchForm(StepUpForm):
    switch = forms.ChoiceField(choices=[(name, name) for name in SWITCHES])
    reason = forms.CharField(
        label=gettext_lazy("Why"), min_length=REASON_MIN, max_length=300, strip=True
    )


@require_GET
@tenant_view_own_scope
def incident_view(request: HttpRequest) -> HttpResponse:
    decision = may_control(request.user, request.tenant)
    if not decision:
        raise PermissionDenied(decision.detail)
    with tenant_scope([request.tenant.pk]):
        state = incident_state(request.tenant)
    return render(request, "console/incident.html", {"state": state, "form": SwitchForm()})


@require_POST
@tenant_view_own_scope
def incident_switch_view(request: HttpRequest) -> HttpResponse:
    """Flip one switch; back to the page with what happened or the refusal and its code."""
    form = SwitchForm(request.POST)
    try:
        decision = may_control(request.user, request.tenant)
        if not decision:  # refused before an authenticator code is spent
            raise PermissionDenied(decision.detail)
        if not form.is_valid():
            raise InvalidInput(
                _("Give a reason of at least %(min)s characters and a fresh authenticator code.")
                % {"min": REASON_MIN},
                code="incident.form_invalid",
            )
        switch = form.cleaned_data["switch"]
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        incident_switch(
            actor=request.user,
            tenant=request.tenant,
            switch=switch,
            reason=form.cleaned_data["reason"],
            step_up=proof,
        )
        messages.success(request, str(DONE[switch]))
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    return redirect("incident", tenant=request.tenant.slug)

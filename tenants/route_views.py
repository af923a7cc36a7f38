"""Console: where the tenant's alerts go (`tenants.routes`): its security contacts and alert
routes, each added or removed by one tenant admin and approved by a second with a fresh code."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from .choices import RouteKind
from .console import tenant_view_own_scope
from .exceptions import DomainError, InvalidInput
from .forms import StepUpForm
from .models import AlertRoute
from .policies import can_administer_tenant
from .rls import tenant_scope
from .routes import (
    MAX_LABEL,
    REASON_MIN,
    can_read_routes,
    route_approve,
    route_get_visible,
    route_list,
    route_propose,
    route_reject,
    route_removal_propose,
    route_shown_target,
    route_withdraw,
)
from .stepup import step_up_verify


class ProposeForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=RouteKind.choices)
    target = forms.CharField(
        label=gettext_lazy("Address or URL"),
        max_length=2000,
        help_text=gettext_lazy(
            "An email address, or the https URL of the webhook (Slack and Teams give one when "
            "you add an incoming webhook or workflow to a channel)."
        ),
    )
    label = forms.CharField(
        label=gettext_lazy("Label"), max_length=MAX_LABEL, required=False, strip=True
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why"), min_length=REASON_MIN, max_length=300, strip=True
    )


@require_GET
@tenant_view_own_scope
def routes_view(request: HttpRequest) -> HttpResponse:
    decision = can_read_routes(request.tenant_access)
    if not decision:
        raise PermissionDenied(decision.detail)
    with tenant_scope([request.tenant.pk]):
        routes = [(route, route_shown_target(route)) for route in route_list(request.tenant)]
    return render(
        request,
        "console/alert_routes.html",
        {
            "routes": routes,
            "may_change": bool(can_administer_tenant(request.tenant_access)),
            "propose_form": ProposeForm(),
        },
    )


def _back(request: HttpRequest) -> HttpResponse:
    return redirect("alert-routes", tenant=request.tenant.slug)


def _refused(request: HttpRequest, error: DomainError) -> HttpResponse:
    messages.error(request, f"{error.message} ({error.code})")
    return _back(request)


@require_POST
@tenant_view_own_scope
def route_propose_view(request: HttpRequest) -> HttpResponse:
    form = ProposeForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidInput(
                _("Choose a kind and give an address or URL."), code="alert_route.invalid"
            )
        route_propose(actor=request.user, tenant=request.tenant, **form.cleaned_data)
    except DomainError as error:
        return _refused(request, error)
    messages.success(request, _("Route proposed: a second tenant admin must approve it."))
    return _back(request)


def _route(request: HttpRequest, pk: int) -> AlertRoute:
    with tenant_scope([request.tenant.pk]):
        return route_get_visible(tenant=request.tenant, pk=pk)


@require_POST
@tenant_view_own_scope
def route_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    form = StepUpForm(request.POST)
    try:
        route = _route(request, pk)
        if not form.is_valid():
            raise InvalidInput(
                _("Enter a fresh code from your authenticator app."), code="stepup.token_missing"
            )
        proof = step_up_verify(user=request.user, token=form.cleaned_data["token"])
        route, secret = route_approve(actor=request.user, route=route, step_up=proof)
    except DomainError as error:
        return _refused(request, error)
    if secret:
        messages.warning(
            request,
            _(
                "Route approved. Its signing key, shown only now: %(secret)s — give it to the "
                "receiver to check the Vouchsafe-Signature header."
            )
            % {"secret": secret},
        )
    else:
        messages.success(request, _("Approved."))
    return _back(request)


def _with_reason(
    act: Callable[..., AlertRoute], done: str
) -> Callable[[HttpRequest, int], HttpResponse]:
    """A view that applies `act(actor, route, reason)` to one route, reason from the form."""

    @require_POST
    @tenant_view_own_scope
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        form = ReasonForm(request.POST)
        try:
            route = _route(request, pk)
            reason = form.cleaned_data["reason"] if form.is_valid() else ""
            act(actor=request.user, route=route, reason=reason)
        except DomainError as error:
            return _refused(request, error)
        messages.success(request, str(done))
        return _back(request)

    return view


route_remove_view = _with_reason(
    route_removal_propose, gettext_lazy("Removal proposed: a second tenant admin must approve it.")
)
route_reject_view = _with_reason(route_reject, gettext_lazy("Rejected."))
route_withdraw_view = _with_reason(route_withdraw, gettext_lazy("Withdrawn."))

"""Console: simulating the detection rules over past cases, as a background job.

The page is for the tenant's own security officers, admins and auditors
(`can_simulate_detection`); the job runs `recovery.detection.jobs.simulation_run`, and its
result shows on the job's page (templates/console/jobs/detection_simulate.html).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from tenants.console import tenant_view
from tenants.jobs import job_start

from .forms import DetectionSimulateForm
from .jobs import SIMULATE_KIND, simulation_params
from .policies import can_simulate_detection
from .rules import RULES
from .simulate import SIMULATED_RULES


@require_http_methods(["GET", "POST"])
@tenant_view
def detection_simulate_view(request: HttpRequest) -> HttpResponse:
    """The form; a valid one starts the replay and shows (or redirects to) its progress."""
    decision = can_simulate_detection(request.tenant_access)
    if not decision:
        raise PermissionDenied(decision.detail)
    form = DetectionSimulateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = job_start(
            actor=request.user,
            tenant=request.tenant,
            kind=SIMULATE_KIND,
            params=simulation_params(days=form.cleaned_data["days"], overrides=form.overrides()),
        )
        if request.htmx:
            return render(request, "console/detection/_simulation.html", {"job": job})
        return redirect("job-detail", tenant=request.tenant.slug, pk=job.pk)
    if request.htmx:  # a refused form replaces itself, with its problems
        response = render(request, "console/detection/_form.html", {"form": form})
        return reswap(retarget(response, "#simulate-form"), "outerHTML")
    rules = [RULES[name] for name in SIMULATED_RULES]
    return render(request, "console/detection/simulate.html", {"form": form, "rules": rules})

"""The provider's verdict endpoint (no session: the signature is the credential) and the
development provider's vendor page.

`POST /proofing/<provider>/verdict/` answers JSON: 200 when the verdict was applied to its
session (passed, failed or mismatch), 400 with the refusal's code otherwise. The vendor page
(`/dev-proofing/<nonce>/`) is served only while the development provider is configured; its
buttons sign a verdict as a vendor would and send it through the same service.
"""

from __future__ import annotations

import secrets

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from tenants.exceptions import DomainError

from .choices import ProofingStatus
from .models import ProofingSession
from .providers import DevProofingProvider, provider_get
from .services import proofing_session_by_nonce, proofing_verdict_receive

DEV_PROVIDER = "dev"
# The vendor page's buttons: what the "vendor" concluded.
DEV_OUTCOMES = ("match", "no_match", "cannot_proof")


@csrf_exempt
@never_cache
@require_POST
def verdict_view(request: HttpRequest, provider: str) -> JsonResponse:
    try:
        session = proofing_verdict_receive(
            provider=provider, body=request.body, headers=request.headers
        )
    except DomainError as refused:
        return JsonResponse({"code": refused.code, "message": refused.message}, status=400)
    return JsonResponse({"code": "proofing.verdict_applied", "status": session.status})


def _masked_name(name: str) -> str:
    """The subject as the vendor page shows it: initials only (R-14)."""
    return " ".join(f"{word[:1]}***" for word in name.split()) or "***"


def _dev_verdict(
    provider: DevProofingProvider, session: ProofingSession, choice: str
) -> tuple[bytes, dict[str, str]]:
    if choice == "match":
        outcome, reference = "pass", session.case.account.enrolment_reference
    elif choice == "no_match":
        outcome, reference = "pass", f"dev-someone-else-{secrets.token_hex(6)}"
    else:
        outcome, reference = "fail", ""
    return provider.verdict_for(session, outcome=outcome, subject_reference=reference)


@never_cache
@require_http_methods(["GET", "POST"])
def dev_vendor_view(request: HttpRequest, nonce: str) -> HttpResponse:
    provider = provider_get(DEV_PROVIDER)
    if not isinstance(provider, DevProofingProvider):
        raise Http404("The development proofing provider is not configured.")
    template = "proofing/dev_vendor.html"
    session = proofing_session_by_nonce(provider=DEV_PROVIDER, nonce=nonce)
    if session is None:
        return render(request, template, {"state": "invalid"}, status=404)
    context = {
        "subject": _masked_name(session.case.account.display_name),
        "tenant_name": session.tenant.name,
        "level": session.level,
        "expires_at": session.expires_at,
    }
    if request.method == "GET":
        if session.status != ProofingStatus.STARTED:
            return render(request, template, {**context, "state": "closed"}, status=410)
        return render(request, template, {**context, "state": "ask"})
    choice = request.POST.get("outcome", "")
    if choice not in DEV_OUTCOMES:
        return render(request, template, {**context, "state": "ask"}, status=400)
    body, headers = _dev_verdict(provider, session, choice)
    try:
        session = proofing_verdict_receive(provider=DEV_PROVIDER, body=body, headers=headers)
    except DomainError as refused:
        return render(
            request,
            template,
            {**context, "state": "refused", "code": refused.code, "message": refused.message},
            status=400,
        )
    return render(
        request,
        template,
        {**context, "state": "done", "status": session.status, "choice": choice},
    )

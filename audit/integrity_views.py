"""Console: the integrity state of the tenant's chain and the platform's, and the audit_admin's
acknowledgement of a finding with a passkey step-up (issue 15 part 3, R-44, R-48).

The chain page (`audit_chain_view`) shows both states (`integrity_panels`) to readers of the
trail, with an "Acknowledge this finding" form for whoever may acknowledge it. The form proves
a passkey the way the console's other privileged acts do (static/staff/passkey.js, marked
`data-passkey-step-up`): it asks `integrity_step_up_options_view` for options over a challenge
bound to the chain and the finding on the page, kept in the session and answered once, then
posts the answer with the finding's seq to `integrity_acknowledge_view`, which verifies it and
calls `integrity_acknowledge`. The chain is named by the URL's tenant (`tenant`) or the platform
(`platform`), never by a key from the request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from tenants.console import tenant_view
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied, StepUpFailed
from tenants.models import Tenant
from tenants.passkeys import staff_assertion_options
from tenants.policies import Decision
from tenants.stepup import StepUpProof, step_up_passkey_verify, step_up_verify

from .chain import chain_key
from .integrity import PLATFORM, integrity_acknowledge, may_acknowledge_integrity
from .models import ChainIntegrity

STEP_UP_ACTION = "audit.integrity_acknowledge"
SESSION_KEY = "audit_integrity:step_up"
TENANT_CHAIN = "tenant"
CHAINS = ((TENANT_CHAIN, gettext_lazy("this tenant")), (PLATFORM, gettext_lazy("the platform")))


def _chain_of(tenant: Tenant, chain: str) -> str:
    """The key of the chain a form names: the URL's tenant's own, or the platform's."""
    return PLATFORM if chain == PLATFORM else chain_key(tenant.pk)


def _may_acknowledge(request: HttpRequest, chain: str) -> Decision:
    """Whether the signed-in person may acknowledge a finding of `chain` (the service decides
    again, by the same rule)."""
    return may_acknowledge_integrity(request.user, chain, request.tenant)


@dataclass(frozen=True)
class IntegrityPanel:
    """One chain's integrity as the chain page shows it."""

    chain: str  # the form's name for it: `tenant` or `platform`
    label: str
    state: ChainIntegrity | None  # None: the verifier never found anything wrong with it
    may_acknowledge: bool


def integrity_panels(request: HttpRequest) -> list[IntegrityPanel]:
    """The tenant's chain and the platform's, each with its finding (if any) and whether the
    reader may acknowledge it now (an unacknowledged finding and the right role)."""
    keys = {_chain_of(request.tenant, chain): chain for chain, _label in CHAINS}
    states = {
        keys[state.key]: state
        for state in ChainIntegrity.objects.filter(key__in=keys).select_related("acknowledged_by")
    }
    panels = []
    for chain, label in CHAINS:
        state = states.get(chain)
        failing = state is not None and state.failing
        may = failing and bool(_may_acknowledge(request, chain))
        panels.append(
            IntegrityPanel(chain=chain, label=str(label), state=state, may_acknowledge=may)
        )
    return panels


# the step-up


class AcknowledgeForm(forms.Form):
    """The finding the page showed, and the step-up that confirms acknowledging it."""

    chain = forms.ChoiceField(choices=CHAINS)
    finding = forms.IntegerField(min_value=1)
    step_up_assertion = forms.CharField(required=False, strip=True)
    token = forms.CharField(required=False, strip=True)  # refused: a code is not a passkey


def _step_up_challenge(key: str, finding: int, nonce: str) -> bytes:
    """What the passkey signs: this act on this finding of this chain, with a server nonce."""
    return hashlib.sha256(f"{STEP_UP_ACTION}|{key}|{finding}|{nonce}".encode()).digest()


def _step_up_inputs(key: str, finding: int, nonce: str) -> dict[str, object]:
    return {"action": STEP_UP_ACTION, "chain": key, "finding": finding, "nonce": nonce}


@require_GET
@tenant_view
def integrity_step_up_options_view(request: HttpRequest) -> HttpResponse:
    """WebAuthn request options over a challenge for acknowledging `?chain=…&finding=…`, kept
    in the session for one answer; static/staff/passkey.js asks for them when the form is sent.
    A refusal is JSON with its code (403 for someone who may not acknowledge)."""
    form = AcknowledgeForm(request.GET)
    try:
        if not form.is_valid():
            raise InvalidInput(
                _("Reload the page: it does not name a finding."),
                code="audit.integrity_form_invalid",
            )
        chain, finding = form.cleaned_data["chain"], form.cleaned_data["finding"]
        decision = _may_acknowledge(request, chain)
        if not decision:
            raise PolicyDenied(decision.detail, code=decision.code)
        key, nonce = _chain_of(request.tenant, chain), secrets.token_hex(32)
        challenge = _step_up_challenge(key, finding, nonce)
        options = staff_assertion_options(user=request.user, challenge=challenge)
    except DomainError as error:
        status = 403 if isinstance(error, PolicyDenied) else 400
        return JsonResponse({"code": error.code, "message": error.message}, status=status)
    request.session[SESSION_KEY] = {"chain": key, "finding": finding, "nonce": nonce}
    response = HttpResponse(options, content_type="application/json")
    add_never_cache_headers(response)
    return response


def _passkey_proof(request: HttpRequest, key: str, finding: int, assertion: str) -> StepUpProof:
    """Verify the passkey answer to the session's challenge for this finding, spending it."""
    issued = request.session.pop(SESSION_KEY, None) or {}
    if (issued.get("chain"), issued.get("finding")) != (key, finding):
        raise StepUpFailed(
            _("This passkey answer was not made for this finding; confirm again."),
            code="stepup.challenge_unknown",
        )
    nonce = str(issued.get("nonce", ""))
    return step_up_passkey_verify(
        user=request.user,
        challenge=_step_up_challenge(key, finding, nonce),
        credential_json=assertion,
        inputs=_step_up_inputs(key, finding, nonce),
    )


def _step_up_presented(request: HttpRequest, key: str, form: AcknowledgeForm) -> StepUpProof | None:
    """The step-up the form presents, verified now (a passkey answer, else an authenticator
    code, which the service refuses); None when it presents neither. Nothing is verified or
    spent for someone who may not acknowledge: the service refuses them first."""
    data = form.cleaned_data
    if not _may_acknowledge(request, data["chain"]):
        return None
    if data["step_up_assertion"]:
        return _passkey_proof(request, key, data["finding"], data["step_up_assertion"])
    if data["token"]:
        return step_up_verify(user=request.user, token=data["token"])
    return None


@require_POST
@tenant_view
def integrity_acknowledge_view(request: HttpRequest) -> HttpResponse:
    """Acknowledge the finding the page showed (`integrity_acknowledge`); back to the chain page
    with what happened. Someone who may not acknowledge gets a 403 (their attempt is recorded in
    the platform chain); any other refusal comes back as a message with its code."""
    form = AcknowledgeForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidInput(
                _("Reload the page: it does not name a finding."),
                code="audit.integrity_form_invalid",
            )
        key = _chain_of(request.tenant, form.cleaned_data["chain"])
        state = integrity_acknowledge(
            actor=request.user,
            chain=key,
            finding=form.cleaned_data["finding"],
            step_up=_step_up_presented(request, key, form),
        )
    except PolicyDenied as refused:  # answered, not raised: the recorded refusal commits
        context = {"exception": f"{refused.message} ({refused.code})"}
        return render(request, "403.html", context, status=403)
    except DomainError as error:
        messages.error(request, f"{error.message} ({error.code})")
    else:
        messages.success(
            request,
            _(
                "Finding acknowledged (entry %(seq)s): recorded in the platform chain as entry "
                "%(event)s. Its entries stay marked untrusted."
            )
            % {"seq": state.first_bad_seq, "event": state.acknowledged_event_seq},
        )
    return redirect("audit-chain", tenant=request.tenant.slug)

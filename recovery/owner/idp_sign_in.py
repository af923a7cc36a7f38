"""An account owner signs in with the tenant's identity provider: S5 on a case, or to enrol.

Two ways in, one return:

- **Case signal** (`idp_sign_in_request`): an agent asks; Vouchsafe sends a one-time link to
  the owner's addresses on record (the case notices' rule, R-38 / R-04) and keeps only its
  SHA-256. The owner opens it, sees who asks and why, and POSTs to go on
  (`idp_sign_in_start_for_case`).
- **Enrolment** (`idp_sign_in_start_for_enrolment`): the owner starts from the tenant's portal
  page; the `sub` the provider returns names the account.

Starting draws `state`, `nonce`, a PKCE verifier and a browser token (256 bits each). The row
keeps the SHA-256 of `state`, `nonce` and the browser token (the browser holds the token in a
short-lived cookie, so a callback from another browser is refused: login CSRF) and the verifier
until the flow ends. The browser goes to the provider's authorization endpoint
(`recovery.owner.oidc`).

`idp_sign_in_complete` is the verifier: the callback's `state` names the sign-in; it must still
be waiting and unexpired (by database time), from the same browser, with the issuer we sent it
to (RFC 9207); the code is exchanged with the verifier and the client secret, and the ID token
validated (signature, `iss`, `aud`, `exp`, `iat`, `nonce`). Then, for a case, `sub` must be the
account's `idp_subject` from the system of record: a sign-in whose `amr`/`acr` show an
authenticator already bound records the accepted S5 `idp_sign_in`; a sign-in with a password
alone is recorded as the same signal *rejected* (`idp_sign_in_without_bound_authenticator`),
so the agent sees it happened and that it does not count. For enrolment the bound
authenticator is required (a password alone never yields an enrolment, R-12), the account must
be free to enrol (`recovery.owner.enrolment.enrolment_problem`), and an `idp_enrolment` portal
session starts. A sign-in completes once: a second callback with its state is refused.

Every function owns its transaction and records its audit events in it; refusals commit
before they are raised. The code exchange runs outside any lock, and the sign-in is locked
again (case first) to apply its result, so two callbacks cannot both complete it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.services import record
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope, tenant_scope

from ..cases.channels import channel_problem
from ..cases.choices import CaseStatus, SignalClass, Verifier
from ..cases.models import Evidence, RecoveryCase
from ..cases.services import VerifiedSignal, case_taken_decision, evidence_from_verifier
from ..cases.services.base import (
    alert_raise,
    audit_actor_of,
    case_locked,
    db_now,
    requirements_for,
    work_access,
)
from ..cases.services.repudiation import case_repudiate
from ..cases.transitions import Move, transition_require
from ..choices import ContactKind
from ..models import ContactMethod, ProtectedAccount
from ..notifications.models import NoticeEvent, OwnerNotice
from ..notifications.services import link_notices_send
from ..policy.rules import Requirements
from .choices import IdpConfigStatus, IdpSignInPurpose, IdpSignInStatus, PortalSessionKind
from .enrolment import EnrolmentRefused, enrolment_problem
from .idp_config import idp_config_active
from .models import IdpSignIn, OwnerIdpConfig, OwnerPortalSession
from .oidc import (
    IdpUnavailable,
    IdTokenRefused,
    ValidatedIdToken,
    authorization_url,
    bound_authenticator,
    code_exchange,
    digest,
    discovery,
    id_token_validate,
)
from .sessions import OWNER

IDP_METHOD = "idp_sign_in"
NOT_BOUND = "idp_sign_in_without_bound_authenticator"
LINK_PATH = "owner/idp"
# Our choices: how long the owner has to open an agent's link, and how long a flow may stay
# at the provider (from the redirect to the callback).
LINK_LIFETIME = timedelta(minutes=30)
FLOW_LIFETIME = timedelta(minutes=10)
MAX_REQUESTS_PER_CASE = 5  # the refusal "idp.request_limit" says 5
SECRET_BYTES = 32
BROWSER_COOKIE = "vs_idp"
BROWSER_COOKIE_PATH = "/owner/idp/"
OWNER_CONTACT_KINDS = (ContactKind.EMAIL, ContactKind.MOBILE)  # what can carry a link
# Refusals of the ID token that mean someone forged or replayed one: raise an alert.
ALERTING = frozenset(
    {
        "idp.alg_not_allowed",
        "idp.bad_signature",
        "idp.unknown_kid",
        "idp.nonce_mismatch",
        "idp.wrong_subject",
        "idp.replayed",
        "idp.wrong_issuer",
    }
)

LINK_INVALID = _("This sign-in link is not valid, was already used or has expired.")
REFUSALS = {
    "case.not_taken": _(
        "An AI assistant drafted this case; a person must take it before anything is sent "
        "for it (R-66)."
    ),
    "evidence.class_not_accepted": _("The policy does not accept S5 for this case."),
    "evidence.method_not_accepted": _(
        "The policy does not accept a sign-in with the identity provider for this case."
    ),
    "idp.not_configured": _(
        "This organisation has no active identity provider for account owners; a tenant admin "
        "configures one, and a second approves it."
    ),
    "idp.no_subject": _(
        "The system of record holds no identity provider subject for this account, so a "
        "sign-in cannot be matched to it."
    ),
    "idp.no_address": _("No address the system of record held before the case can carry the link."),
    "idp.delivery_failed": _(
        "The sign-in link could not be sent to any address on record; nothing is waiting for "
        "the owner."
    ),
    "idp.request_limit": _(
        "This case has asked for 5 identity provider sign-ins; a new case is needed."
    ),
    "idp.unavailable": _(
        "The identity provider did not answer; nothing was started. Try again in a moment."
    ),
    # The owner's side: what the portal page says.
    "idp.link_invalid": LINK_INVALID,
    "idp.unknown_state": _("This sign-in is not known here. Start again from the beginning."),
    "idp.browser_mismatch": _(
        "This sign-in was started in another browser (or its cookie is gone). For your "
        "protection it was stopped; start again from the beginning in one browser."
    ),
    "idp.expired": _("This sign-in took too long and has expired. Start again."),
    "idp.replayed": _("This sign-in was already used."),
    "idp.config_inactive": _("Sign-in with your organisation is no longer set up here."),
    "idp.provider_error": _("The identity provider did not sign you in."),
    "idp.case_not_collecting": _(
        "The recovery no longer waits for this sign-in; the service desk can ask again."
    ),
    "idp.wrong_subject": _(
        "You signed in with an account that is not the one being recovered. Nothing was "
        "recorded for the recovery."
    ),
    "idp.unknown_subject": _("No account of this organisation matches the one you signed in with."),
    "idp.ambiguous_subject": _(
        "More than one account matches the one you signed in with; ask your service desk."
    ),
    "idp.no_bound_authenticator": _(
        "You signed in with a password alone. Setting up account recovery needs a sign-in with "
        "your security key, authenticator app or another second factor."
    ),
}
UNVERIFIED_ANSWER = _("The identity provider's answer could not be verified. Nothing was recorded.")
# Refusals of what was sent (400); every other one is a policy refusal (403).
_INPUT_CODES = frozenset({"idp.link_invalid", "idp.unknown_state"})


class IdpSignInRefused(PolicyDenied):
    """A stable `code` and a sentence for the person (never which check of a token failed)."""

    code = "idp.refused"

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(str(message or REFUSALS.get(code, UNVERIFIED_ANSWER)), code=code)


def _refusal(code: str) -> DomainError:
    if code in _INPUT_CODES:
        return InvalidInput(str(REFUSALS[code]), code=code)
    return IdpSignInRefused(code)


def _expired_now() -> ExpressionWrapper:
    return ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField())


def _target(sign_in: IdpSignIn) -> Any:
    return sign_in.case or sign_in.account or sign_in


def _refused(sign_in: IdpSignIn, code: str, **data: object) -> IdpSignInRefused:
    """Put a refused sign-in on the trail (its case's, else its account's); return the refusal."""
    record(
        action="owner.idp_sign_in_refused",
        actor=OWNER,
        tenant=sign_in.tenant,
        target=_target(sign_in),
        data={"sign_in": sign_in.pk, "purpose": sign_in.purpose, "reason": code, **data},
    )
    if sign_in.case is not None and code in ALERTING:
        alert_raise(sign_in.case, "idp_sign_in_refused", sign_in=sign_in.pk, reason=code)
    return IdpSignInRefused(code)


def _end(sign_in: IdpSignIn, status: str, refusal: str = "") -> None:
    """End a locked sign-in: its final status, why, and the PKCE verifier forgotten."""
    sign_in.status, sign_in.refusal = status, refusal[:64]
    sign_in.code_verifier = ""
    sign_in.completed_at = timezone.now()
    sign_in.save(update_fields=["status", "refusal", "code_verifier", "completed_at"])


# --- reads --------------------------------------------------------------------------------------


def idp_sign_in_find_by_link(token: str) -> IdpSignIn | None:
    """The case sign-in a link names, across tenants (the token names the tenant), with
    `expired` by database time; None for an unknown link."""
    if not token:
        return None
    with system_scope():
        return (
            IdpSignIn.objects.select_related(
                "tenant", "config", "case", "case__account", "requested_by"
            )
            .annotate(expired=_expired_now())
            .filter(link_hash=digest(token), purpose=IdpSignInPurpose.CASE_SIGNAL)
            .first()
        )


def idp_sign_in_link_usable(sign_in: IdpSignIn | None) -> bool:
    """Whether the owner can still go on from the link (for the page a GET shows)."""
    return (
        sign_in is not None
        and sign_in.status == IdpSignInStatus.STARTED
        and not sign_in.state_hash
        and not sign_in.expired
        and sign_in.case is not None
        and sign_in.case.status == CaseStatus.COLLECTING_EVIDENCE
    )


def idp_sign_in_latest(case: RecoveryCase) -> IdpSignIn | None:
    """The case's newest IdP sign-in (for the case page), with `expired` by database time."""
    return (
        IdpSignIn.objects.for_tenant(case.tenant)
        .annotate(expired=_expired_now())
        .filter(case=case)
        .order_by("-created_at", "-pk")
        .first()
    )


def idp_sign_in_context(case: RecoveryCase) -> dict[str, Any]:
    """What the case page shows of IdP sign-in: whether the tenant has a provider, whether the
    account has an IdP subject, and the case's latest sign-in with its status by database
    time."""
    latest = idp_sign_in_latest(case)
    status = latest.status if latest else ""
    if latest is not None and status == IdpSignInStatus.STARTED and latest.expired:
        status = IdpSignInStatus.EXPIRED
    return {
        "idp_configured": idp_config_active(case.tenant) is not None,
        "idp_subject_known": bool(case.account.idp_subject),
        "idp_sign_in": latest,
        "idp_sign_in_status": IdpSignInStatus(status).label if status else "",
    }


def agent_name(user: User | None) -> str:
    """How the owner's page names the agent who asked."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


# --- the agent asks (case signal) ---------------------------------------------------------------


def _request_problem(
    case: RecoveryCase, req: Requirements, config: OwnerIdpConfig | None
) -> str | None:
    if not case_taken_decision(case):
        return "case.not_taken"
    if SignalClass.S5 not in req.accepted_classes:
        return "evidence.class_not_accepted"
    if IDP_METHOD not in req.accepted_methods:
        return "evidence.method_not_accepted"
    if config is None:
        return "idp.not_configured"
    if not case.account.idp_subject:
        return "idp.no_subject"
    asked = IdpSignIn.objects.for_tenant(case.tenant).filter(case=case)
    if asked.count() >= MAX_REQUESTS_PER_CASE:
        return "idp.request_limit"
    return None


def _owner_addresses(case: RecoveryCase, req: Requirements) -> list[ContactMethod]:
    """The owner's own addresses that may carry the link: the case notices' rule (R-38, R-04).
    Never the manager or a security contact: the link is the owner's alone."""
    held = (
        ContactMethod.objects.for_tenant(case.tenant)
        .filter(
            account_id=case.account_id,
            is_notification=True,
            replaced_at__isnull=True,
            registered_at__lt=case.created_at,
            kind__in=OWNER_CONTACT_KINDS,
        )
        .order_by("pk")
    )
    now = timezone.now()
    return [c for c in held if channel_problem(case, c, req.quarantine_seconds, now=now) is None]


def _message(sign_in: IdpSignIn, link: str, not_me: str) -> tuple[str, str]:
    """What the owner receives: who asks, what for, and the way out."""
    case = sign_in.case
    assert case is not None
    until = sign_in.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    subject = str(NoticeEvent.IDP_SIGN_IN_REQUESTED.label)
    body = (
        f"{case.tenant.name}'s service desk ({agent_name(sign_in.requested_by)}) asks you to "
        f"sign in with your organisation's account to confirm a recovery of your account "
        f"{case.account.username} ({case.get_case_type_display()}, case {case.pk}).\n\n"
        f"If you asked the service desk for help, open this page and sign in as usual:\n{link}\n"
        f"It works once, until {until}.\n\n"
        f"If this wasn't you, do not sign in. Open {not_me}: we will freeze the account, stop "
        "the recovery and alert your security team. Nobody from the service desk will ever ask "
        "you for a code, a link or a password."
    )
    return subject, body


def idp_sign_in_request(*, actor: User, case: RecoveryCase) -> IdpSignIn:
    """Ask the owner to sign in with the tenant's identity provider (S5).

    Refused, and recorded as `owner.idp_sign_in_refused` with the reason, when no person has
    taken the case (`case.not_taken`), the policy does not take S5 or this method here, the
    tenant has no active configuration (`idp.not_configured`), the system of record holds no
    IdP subject for the account (`idp.no_subject`), the case asked too often
    (`idp.request_limit`), or no address on record can carry the link (`idp.no_address`,
    `idp.delivery_failed`). A new request ends the one still waiting.
    """
    enforce(ai_blocked(actor, "ask for an identity provider sign-in"))
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.COLLECT)
        who = audit_actor_of(actor, access, case.tenant)
        req = requirements_for(case)
        config = idp_config_active(case.tenant)
        problem = _request_problem(case, req, config)
        contacts = _owner_addresses(case, req) if problem is None else []
        if problem is None and not contacts:
            problem = "idp.no_address"
        if problem is not None:
            record(
                action="owner.idp_sign_in_refused",
                actor=who,
                tenant=case.tenant,
                target=case,
                data={"reason": problem, "stage": "request"},
            )
            refusal = _refusal(problem)
        else:
            assert config is not None
            waiting = IdpSignIn.objects.for_tenant(case.tenant).filter(
                case=case, status=IdpSignInStatus.STARTED
            )
            superseded = list(waiting.values_list("pk", flat=True))
            waiting.update(
                status=IdpSignInStatus.EXPIRED,
                refusal="superseded",
                code_verifier="",
                completed_at=Now(),
            )
            token = secrets.token_urlsafe(SECRET_BYTES)
            sign_in = IdpSignIn.objects.create(
                tenant=case.tenant,
                config=config,
                purpose=IdpSignInPurpose.CASE_SIGNAL,
                account=case.account,
                case=case,
                requested_by=actor,
                link_hash=digest(token),
                expires_at=db_now(case) + LINK_LIFETIME,
            )
            sign_in.case = case
            link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/{LINK_PATH}/{token}/"
            sent, failed = link_notices_send(
                case=case,
                event=NoticeEvent.IDP_SIGN_IN_REQUESTED,
                contacts=contacts,
                compose=lambda not_me: _message(sign_in, link, not_me),
            )
            del token
            if not sent:
                _end(sign_in, IdpSignInStatus.REFUSED, "idp.delivery_failed")
                record(
                    action="owner.idp_sign_in_refused",
                    actor=who,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "sign_in": sign_in.pk,
                        "reason": "idp.delivery_failed",
                        "stage": "request",
                        "failed": failed,
                    },
                )
                refusal = _refusal("idp.delivery_failed")
            else:
                record(
                    action="owner.idp_sign_in_requested",
                    actor=who,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "sign_in": sign_in.pk,
                        "config": config.pk,
                        "issuer": config.issuer,
                        "expires_at": sign_in.expires_at,
                        "sent_to": [n.contact.masked for n in sent if n.contact],
                        "failed": failed,
                        "superseded": superseded,
                    },
                )
    if refusal is not None:
        raise refusal
    return sign_in


def idp_sign_in_repudiate(*, token: str) -> RecoveryCase:
    """ "This wasn't me" on the sign-in page: the case is repudiated through the notices' own
    path (R-41). Works while the link is known, whatever the sign-in's state; idempotent."""
    found = idp_sign_in_find_by_link(token)
    if found is None or found.case is None:
        raise _refusal("idp.link_invalid")
    with tenant_scope([found.tenant_id]):
        case = case_locked(found.case)
        notice = (
            OwnerNotice.objects.for_tenant(case.tenant)
            .filter(case=case, event=NoticeEvent.IDP_SIGN_IN_REQUESTED)
            .select_related("case", "tenant")
            .order_by("-pk")
            .first()
        )
        if notice is None:
            raise _refusal("idp.link_invalid")
        sign_in = IdpSignIn.objects.for_tenant(case.tenant).select_for_update().get(pk=found.pk)
        sign_in.case = case
        if sign_in.status == IdpSignInStatus.STARTED:
            _end(sign_in, IdpSignInStatus.REFUSED, "repudiated")
        record(
            action="owner.idp_sign_in_refused",
            actor=OWNER,
            tenant=case.tenant,
            target=case,
            data={"sign_in": sign_in.pk, "reason": "repudiated", "notice": notice.pk},
        )
        return case_repudiate(notice=notice)


# --- the owner goes to the provider -------------------------------------------------------------


@dataclass(frozen=True)
class IdpStart:
    """Where to send the browser, and the token its cookie must carry back."""

    sign_in: IdpSignIn
    redirect_url: str
    browser_token: str


def _flow_secrets(sign_in: IdpSignIn) -> tuple[str, str, str, str]:
    """Draw state, nonce, PKCE verifier and browser token; the row keeps what it needs."""
    state = secrets.token_urlsafe(SECRET_BYTES)
    nonce = secrets.token_urlsafe(SECRET_BYTES)
    verifier = secrets.token_urlsafe(48)  # 64 characters (RFC 7636: 43 to 128)
    browser = secrets.token_urlsafe(SECRET_BYTES)
    sign_in.state_hash = digest(state)
    sign_in.nonce = digest(nonce)
    sign_in.code_verifier = verifier
    sign_in.browser_hash = digest(browser)
    return state, nonce, verifier, browser


def _authorize(config: OwnerIdpConfig, state: str, nonce: str, verifier: str) -> str:
    try:
        return authorization_url(
            issuer=config.issuer,
            client_id=config.client_id,
            state=state,
            nonce=nonce,
            code_verifier=verifier,
        )
    except IdpUnavailable as down:
        raise IdpSignInRefused("idp.unavailable") from down


def _started(sign_in: IdpSignIn, **data: object) -> None:
    record(
        action="owner.idp_sign_in_started",
        actor=OWNER,
        tenant=sign_in.tenant,
        target=_target(sign_in),
        data={
            "sign_in": sign_in.pk,
            "purpose": sign_in.purpose,
            "config": sign_in.config_id,
            "expires_at": sign_in.expires_at,
            **data,
        },
    )


def idp_sign_in_start_for_case(*, token: str) -> IdpStart:
    """The owner, on the agent's link, goes on to the provider: the link is used up.

    Refused like an unknown link (`idp.link_invalid`) when it was used, has expired, or its case
    no longer collects evidence; `idp.config_inactive` when the configuration was retired since.
    """
    found = idp_sign_in_find_by_link(token)
    if found is None or found.case is None:
        raise _refusal("idp.link_invalid")
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        case = case_locked(found.case)
        sign_in = (
            IdpSignIn.objects.for_tenant(case.tenant)
            .select_for_update(of=("self",))
            .select_related("config", "tenant", "account")
            .annotate(expired=_expired_now(), db_now=Now())
            .get(pk=found.pk)
        )
        sign_in.case = case
        if sign_in.status != IdpSignInStatus.STARTED or sign_in.state_hash:
            refusal = _refused(sign_in, "idp.link_invalid", stage="start", status=sign_in.status)
        elif sign_in.expired:
            _end(sign_in, IdpSignInStatus.EXPIRED, "idp.expired")
            refusal = _refused(sign_in, "idp.link_invalid", stage="start", status="expired")
        elif case.status != CaseStatus.COLLECTING_EVIDENCE:
            _end(sign_in, IdpSignInStatus.REFUSED, "idp.case_not_collecting")
            refusal = _refused(sign_in, "idp.case_not_collecting", stage="start")
        elif sign_in.config.status != IdpConfigStatus.ACTIVE:
            _end(sign_in, IdpSignInStatus.REFUSED, "idp.config_inactive")
            refusal = _refused(sign_in, "idp.config_inactive", stage="start")
        else:
            state, nonce, verifier, browser = _flow_secrets(sign_in)
            sign_in.expires_at = min(sign_in.expires_at, sign_in.db_now + FLOW_LIFETIME)
            url = _authorize(sign_in.config, state, nonce, verifier)
            sign_in.save(
                update_fields=[
                    "state_hash",
                    "nonce",
                    "code_verifier",
                    "browser_hash",
                    "expires_at",
                ]
            )
            _started(sign_in, issuer=sign_in.config.issuer)
    if refusal is not None:
        raise refusal
    return IdpStart(sign_in=sign_in, redirect_url=url, browser_token=browser)


def idp_sign_in_start_for_enrolment(*, tenant: Tenant) -> IdpStart:
    """An owner starts signing in to enrol, from the tenant's portal page (no account yet: the
    `sub` the provider returns names it). `idp.not_configured` without an active
    configuration; `idp.unavailable` when the provider's discovery does not answer."""
    with tenant_scope([tenant.pk]):
        config = idp_config_active(tenant)
        if config is None:
            raise IdpSignInRefused("idp.not_configured")
        now = (
            OwnerIdpConfig.objects.for_tenant(tenant)
            .filter(pk=config.pk)
            .annotate(db_now=Now())
            .values_list("db_now", flat=True)
            .get()
        )
        sign_in = IdpSignIn(
            tenant=tenant,
            config=config,
            purpose=IdpSignInPurpose.ENROLMENT,
            expires_at=now + FLOW_LIFETIME,
        )
        state, nonce, verifier, browser = _flow_secrets(sign_in)
        url = _authorize(config, state, nonce, verifier)
        sign_in.save()
        _started(sign_in, issuer=config.issuer)
    return IdpStart(sign_in=sign_in, redirect_url=url, browser_token=browser)


# --- the provider sends the browser back: the verifier ------------------------------------------


@dataclass(frozen=True)
class Callback:
    """What came back to /owner/idp/callback/ (query parameters and the binding cookie)."""

    state: str
    code: str = ""
    iss: str = ""
    error: str = ""
    browser_token: str = ""


def _by_state(state: str) -> IdpSignIn | None:
    if not state:
        return None
    with system_scope():
        return (
            IdpSignIn.objects.select_related("tenant", "case")
            .filter(state_hash=digest(state))
            .first()
        )


def _locked_sign_in(found: IdpSignIn) -> tuple[IdpSignIn, RecoveryCase | None]:
    """The sign-in (after its case, the fixed order), locked, with `expired` by database time."""
    case = case_locked(found.case) if found.case_id else None
    sign_in = (
        IdpSignIn.objects.for_tenant(found.tenant)
        .select_for_update(of=("self",))
        .select_related("config", "tenant", "account", "requested_by")
        .annotate(expired=_expired_now())
        .get(pk=found.pk)
    )
    sign_in.case = case
    return sign_in, case


def _return_problem(sign_in: IdpSignIn, back: Callback) -> tuple[str, str]:
    """Why the callback cannot go on to the code exchange ("" when it can), and the status the
    sign-in takes (an ended sign-in keeps its own)."""
    if sign_in.status != IdpSignInStatus.STARTED:
        return "idp.replayed", ""
    if sign_in.expired:
        return "idp.expired", IdpSignInStatus.EXPIRED
    if not back.browser_token or not hmac.compare_digest(
        digest(back.browser_token), sign_in.browser_hash
    ):
        return "idp.browser_mismatch", IdpSignInStatus.REFUSED
    if back.error:
        return "idp.provider_error", IdpSignInStatus.REFUSED
    if back.iss and back.iss != sign_in.config.issuer:
        return "idp.wrong_issuer", IdpSignInStatus.REFUSED
    if sign_in.config.status != IdpConfigStatus.ACTIVE:
        return "idp.config_inactive", IdpSignInStatus.REFUSED
    if not back.code or not sign_in.code_verifier:
        return "idp.provider_error", IdpSignInStatus.REFUSED
    return "", ""


def _exchange(sign_in: IdpSignIn, config: OwnerIdpConfig, back: Callback) -> ValidatedIdToken:
    """The code for tokens, and the ID token validated (network; no lock is held). A provider
    that names itself in its redirects (RFC 9207) must have done so: a redirect without `iss`
    may come from another provider the browser talked to (mix-up)."""
    if discovery(config.issuer).get("authorization_response_iss_parameter_supported") and (
        not back.iss
    ):
        raise IdTokenRefused("idp.wrong_issuer", "the redirect did not name its issuer")
    tokens = code_exchange(
        issuer=config.issuer,
        client_id=config.client_id,
        client_secret_env=config.client_secret_env,
        code=back.code,
        code_verifier=sign_in.code_verifier,
    )
    return id_token_validate(
        tokens["id_token"],
        issuer=config.issuer,
        client_id=config.client_id,
        nonce_digest=sign_in.nonce,
    )


def _keep_token(sign_in: IdpSignIn, token: ValidatedIdToken) -> None:
    sign_in.sub, sign_in.amr, sign_in.acr = token.sub, list(token.amr), token.acr[:255]
    sign_in.id_token_hash = token.sha256
    sign_in.save(update_fields=["sub", "amr", "acr", "id_token_hash"])


def _token_data(token: ValidatedIdToken, bound: bool) -> dict[str, Any]:
    return {
        "sub": token.sub,
        "amr": list(token.amr),
        "acr": token.acr,
        "id_token_sha256": token.sha256,
        "bound_authenticator": bound,
    }


def _case_signal(
    sign_in: IdpSignIn, case: RecoveryCase, token: ValidatedIdToken
) -> tuple[str, Evidence | None]:
    """Apply a validated sign-in to its case: the S5 evidence (accepted or rejected), or a
    refusal code."""
    account = case.account
    if case.status != CaseStatus.COLLECTING_EVIDENCE:
        return "idp.case_not_collecting", None
    subject = account.idp_subject
    if not subject or not hmac.compare_digest(token.sub.encode(), subject.encode()):
        return "idp.wrong_subject", None
    config = sign_in.config
    bound = bound_authenticator(
        token, allowed_amr=config.allowed_amr, allowed_acr=config.allowed_acr
    )
    assert sign_in.requested_by is not None
    evidence = evidence_from_verifier(
        case=case,
        signal=VerifiedSignal(
            method=IDP_METHOD,
            verifier=Verifier.OWNER_PORTAL,
            verifier_ref=sign_in.pk,
            contact_method=None,
            details={"issuer": config.issuer, **_token_data(token, bound)},
            refusal="" if bound else NOT_BOUND,
        ),
        collected_by=sign_in.requested_by,
        who=OWNER,
    )
    return "", evidence


def _enrolment(
    sign_in: IdpSignIn,
    token: ValidatedIdToken,
    on_enrolled: Callable[[OwnerPortalSession], None],
) -> tuple[str, OwnerPortalSession | None]:
    """Apply a validated sign-in to enrolment: the account `sub` names, free to enrol, and a
    bound authenticator; then the portal session starts (`on_enrolled` sets its cookie)."""
    config = sign_in.config
    if not bound_authenticator(
        token, allowed_amr=config.allowed_amr, allowed_acr=config.allowed_acr
    ):
        return "idp.no_bound_authenticator", None
    matches = list(
        ProtectedAccount.objects.for_tenant(sign_in.tenant)
        .select_for_update()
        .filter(idp_subject=token.sub)[:2]
    )
    if not matches:
        return "idp.unknown_subject", None
    if len(matches) > 1:
        return "idp.ambiguous_subject", None
    account = matches[0]
    sign_in.account = account
    sign_in.save(update_fields=["account"])
    if problem := enrolment_problem(account):
        return problem, None
    session = OwnerPortalSession.objects.create(
        tenant=sign_in.tenant, account=account, kind=PortalSessionKind.IDP_ENROLMENT
    )
    session.tenant, session.account = sign_in.tenant, account
    on_enrolled(session)
    return "", session


@dataclass(frozen=True)
class IdpOutcome:
    sign_in: IdpSignIn
    evidence: Evidence | None = None
    session: OwnerPortalSession | None = None


def idp_sign_in_complete(
    *,
    back: Callback,
    on_enrolled: Callable[[OwnerPortalSession], None] = lambda session: None,
) -> IdpOutcome:
    """The provider's answer at /owner/idp/callback/: the verifier of `idp_sign_in`.

    Refused, recorded as `owner.idp_sign_in_refused` with the reason, and the sign-in ended:
    an unknown `state` (`idp.unknown_state`, nothing to record it on); a sign-in already
    ended (`idp.replayed`) or expired (`idp.expired`); another browser than the one that
    started it (`idp.browser_mismatch`); the provider's own error (`idp.provider_error`); a
    callback naming another issuer or a retired configuration; a failed code exchange
    (`idp.token_exchange_failed`) or ID token check (`idp.bad_signature`, `idp.wrong_issuer`,
    `idp.wrong_audience`, `idp.token_expired`, `idp.nonce_mismatch`, …); for a case, a `sub`
    other than the account's (`idp.wrong_subject`, with an alert) or a case no longer
    collecting; for enrolment, a password-only sign-in (`idp.no_bound_authenticator`), no or
    several accounts with that `sub`, or an account not free to enrol (`enrolment.*`).
    """
    found = _by_state(back.state)
    if found is None:
        raise _refusal("idp.unknown_state")
    refusal: DomainError | None = None
    with tenant_scope([found.tenant_id]):
        sign_in, case = _locked_sign_in(found)
        problem, status = _return_problem(sign_in, back)
        if problem:
            if status:
                _end(sign_in, status, problem)
            extra = {"provider_error": back.error[:64]} if back.error else {}
            refusal = _refused(sign_in, problem, stage="callback", **extra)
    if refusal is not None:
        raise refusal
    config = sign_in.config
    try:
        token: ValidatedIdToken | None = _exchange(sign_in, config, back)
        failure, detail = "", ""
    except (IdpUnavailable, IdTokenRefused) as error:
        token, failure, detail = None, error.code, error.detail
    outcome: IdpOutcome | None = None
    with tenant_scope([found.tenant_id]):
        sign_in, case = _locked_sign_in(found)
        if sign_in.status != IdpSignInStatus.STARTED:  # another callback got here first
            refusal = _refused(sign_in, "idp.replayed", stage="complete")
        elif token is None:
            _end(sign_in, IdpSignInStatus.REFUSED, failure)
            refusal = _refused(sign_in, failure, stage="token", detail=detail)
        else:
            _keep_token(sign_in, token)
            if sign_in.purpose == IdpSignInPurpose.CASE_SIGNAL:
                assert case is not None
                problem, evidence = _case_signal(sign_in, case, token)
                session = None
            else:
                problem, session = _enrolment(sign_in, token, on_enrolled)
                evidence = None
            bound = bound_authenticator(
                token, allowed_amr=config.allowed_amr, allowed_acr=config.allowed_acr
            )
            if problem:
                _end(sign_in, IdpSignInStatus.REFUSED, problem)
                refusal = _refused(sign_in, problem, stage="complete", **_token_data(token, bound))
                if problem.startswith("enrolment."):
                    refusal = EnrolmentRefused(problem)
            else:
                _end(sign_in, IdpSignInStatus.COMPLETED)
                if evidence is not None:
                    sign_in.evidence = evidence
                    sign_in.save(update_fields=["evidence"])
                record(
                    action="owner.idp_sign_in_completed",
                    actor=OWNER,
                    tenant=sign_in.tenant,
                    target=_target(sign_in),
                    data={
                        "sign_in": sign_in.pk,
                        "purpose": sign_in.purpose,
                        "issuer": config.issuer,
                        **_token_data(token, bound),
                        "evidence": evidence.pk if evidence else None,
                        "result": evidence.result if evidence else "",
                        "reason": evidence.reason_code if evidence else "",
                        "session": session.pk if session else None,
                    },
                )
                outcome = IdpOutcome(sign_in=sign_in, evidence=evidence, session=session)
    if refusal is not None:
        raise refusal
    assert outcome is not None
    return outcome

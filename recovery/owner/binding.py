"""After execution, the owner binds the new credential (R-10, R-11, R-12).

The recovery artifact (the emailed link, or the temporary access pass typed at /owner/pass/)
opens a portal session of kind `artifact`, bound to the artifact's case and purpose:

- a `password` session lets the owner choose the new password (`passwords.password_check`:
  the tenant's length, the breached lists) and the tenant's connector set it; nobody else
  ever sees it, and nothing stores or records it;
- an `mfa` session lets the owner register the new authenticator, a passkey; for a T2
  account only a phishing-resistant one (`authenticator_allowed`);
- neither does the other's job (R-12: a password alone never yields an MFA enrolment).

One binding per session. Each is recorded (`owner.password_set` / `owner.authenticator_bound`,
target the case, so every address held before the case hears of it, R-38) with the artifact
hash, the credential id and the connector result, and marked on the session (`bound_at`,
`bound_detail`), which is all the agent's case page shows. A refusal (a rule, the breached
list, the connector, the wrong session) is recorded as `owner.binding_refused` with its reason
and changes nothing else: the session stays usable until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from webauthn.helpers import bytes_to_base64url

from audit.context import Actor
from audit.services import record
from tenants.choices import Tier
from tenants.exceptions import DomainError, PolicyDenied
from tenants.policies import ALLOW, Decision
from tenants.rls import tenant_scope

from ..artifacts.models import ArtifactPurpose, ArtifactStatus, RecoveryArtifact
from ..artifacts.services import artifact_consume
from ..cases.choices import CaseStatus
from ..cases.models import RecoveryCase
from ..cases.services.base import case_locked as _case_locked
from ..connectors.base import CAPABILITY_MISSING, Capability
from ..policy.selectors import policy_active, policy_for_case
from . import webauthn
from .choices import PasskeyStatus, PortalSessionKind, PortalSessionStatus
from .models import OwnerPasskey, OwnerPortalSession
from .passkeys import passkey_store
from .passwords import PasswordRefused, password_check
from .sessions import portal_session_activate

OWNER = Actor.system("account-owner")

# What an owner could bind as a new authenticator, and whether it is phishing-resistant
# (NIST SP 800-63B §5.2.5: the authenticator output is bound to the site it was made for).
# A passkey is: the WebAuthn signature covers the origin and the RP id, so a look-alike site
# gets nothing it can replay. A code typed or read by a person (an authenticator app, SMS, a
# voice call) or a push approval is not: a look-alike site can relay it in real time.
AUTHENTICATOR_METHODS: dict[str, bool] = {
    "passkey": True,
    "totp": False,
    "sms": False,
    "voice": False,
    "push": False,
}
PHISHING_RESISTANT = frozenset(m for m, resistant in AUTHENTICATOR_METHODS.items() if resistant)
# What the portal itself registers in an mfa session (the others are the directory's own).
BINDABLE_HERE = frozenset({"passkey"})
TIER_RANK = {tier: rank for rank, tier in enumerate(Tier.values)}
T = TypeVar("T")


class BindingRefused(PolicyDenied):
    code = "binding.refused"


_MESSAGES = {
    "binding.wrong_purpose": _(
        "This recovery link does not allow that: a password reset cannot add a sign-in "
        "method, and a sign-in method reset cannot change the password."
    ),
    "binding.already_bound": _("This recovery is already complete; the link cannot be used again."),
    "binding.session_expired": _("Your recovery session has ended. Ask the service desk again."),
    "binding.session_superseded": _(
        "A newer recovery link or pass was sent to you; use that one instead."
    ),
    "binding.case_ended": _("This recovery is no longer in progress. Ask the service desk again."),
    "binding.not_phishing_resistant": _(
        "For this account only a phishing-resistant sign-in method (a passkey) can be added."
    ),
    "binding.method_unavailable": _("Only a passkey can be added here."),
    "binding.unknown_method": _("Unknown sign-in method."),
    "binding.passkey_refused": _(
        "The passkey could not be registered. Nothing was saved; try again."
    ),
    "binding.passkey_taken": _("This passkey is already registered."),
    CAPABILITY_MISSING: _(
        "Your organisation's directory does not let this service set your password. Set it "
        "at your organisation's own sign-in page: it asks for a new one."
    ),
    "binding.connector_failed": _(
        "Your new password could not be set in your organisation's directory; nothing was "
        "changed. Try again in a few minutes, or call the service desk."
    ),
}


def _refusal(code: str, message_key: str | None = None) -> BindingRefused:
    return BindingRefused(str(_MESSAGES[message_key or code]), code=code)


# --- pure decisions -------------------------------------------------------------------------


def authenticator_allowed(*, tier: str, method: str) -> Decision:
    """May an owner of a `tier` account bind `method` in an mfa recovery session?

    T2 accepts only phishing-resistant authenticators (R-11); the portal itself registers only
    passkeys, which are.
    """
    if method not in AUTHENTICATOR_METHODS:
        return Decision(False, "binding.unknown_method", str(_MESSAGES["binding.unknown_method"]))
    if tier == Tier.T2 and method not in PHISHING_RESISTANT:
        code = "binding.not_phishing_resistant"
        return Decision(False, code, str(_MESSAGES[code]))
    if method not in BINDABLE_HERE:
        code = "binding.method_unavailable"
        return Decision(False, code, str(_MESSAGES[code]))
    return ALLOW


def session_binding_problem(
    session: OwnerPortalSession,
    case: RecoveryCase,
    *,
    purpose: str,
    live: bool,
    superseded: bool,
) -> str | None:
    """Why `session` may not bind a credential for `purpose` now (None when it may)."""
    if session.kind != PortalSessionKind.ARTIFACT or session.artifact_id is None:
        return "binding.wrong_purpose"
    if not live or session.status != PortalSessionStatus.ACTIVE:
        return "binding.session_expired"
    if session.purpose != purpose:
        return "binding.wrong_purpose"  # R-12, both ways
    artifact = session.artifact
    if (
        artifact.case_id != session.case_id
        or artifact.account_id != session.account_id
        or artifact.purpose != session.purpose
        or artifact.status != ArtifactStatus.CONSUMED
    ):
        return "binding.wrong_purpose"
    if session.bound_at is not None:
        return "binding.already_bound"
    if superseded:
        return "binding.session_superseded"
    if case.status != CaseStatus.EXECUTED or case.account.frozen_at is not None:
        return "binding.case_ended"
    return None


def effective_tier(case: RecoveryCase) -> str:
    """The case's tier, or the account's tier now if it rose since (the higher wins)."""
    now, _rules = policy_for_case(case).compute_tier(case.account)
    return max(case.tier, now, key=lambda tier: TIER_RANK[tier])


# --- reads ----------------------------------------------------------------------------------


def case_owner_bindings(*, tenant: Any, case: RecoveryCase) -> list[dict[str, Any]]:
    """What the agent's case page may show of the owner's binding: what and when, nothing else
    (never the password, which no row holds; never the credential itself)."""
    rows = (
        OwnerPortalSession.objects.for_tenant(tenant)
        .filter(case=case, kind=PortalSessionKind.ARTIFACT, bound_at__isnull=False)
        .order_by("bound_at")
        .values_list("bound_at", "bound_detail")
    )
    return [{"at": at, "credential": detail.get("credential", "")} for at, detail in rows]


# --- opening the session --------------------------------------------------------------------


def artifact_session_open(
    *, token: str, purpose: str, response: HttpResponse
) -> OwnerPortalSession:
    """Consume the artifact and open its portal session (cookie set on `response`).

    One transaction: if the session cannot be started, the artifact is not used up. A refused
    artifact raises `ArtifactRefused` after its refusal is recorded (by `artifact_consume`).
    """
    refusal: DomainError | None = None
    session = None
    with transaction.atomic():
        try:
            artifact = artifact_consume(token=token, purpose=purpose)
        except DomainError as refused:  # recorded inside; keep the record, then raise
            refusal = refused
        else:
            with tenant_scope([artifact.tenant_id]):
                session = OwnerPortalSession.objects.create(
                    tenant=artifact.tenant,
                    account=artifact.account,
                    kind=PortalSessionKind.ARTIFACT,
                    case=artifact.case,
                    artifact=artifact,
                    purpose=artifact.purpose,
                    sent_to_id=artifact.sent_to_id,
                )
                portal_session_activate(session, response)
    if refusal is not None:
        raise refusal
    assert session is not None
    return session


# --- shared machinery -----------------------------------------------------------------------


def _locked_session(session: OwnerPortalSession) -> tuple[OwnerPortalSession, bool, bool]:
    """The session row locked, whether it is live by database time, whether superseded."""
    rows = OwnerPortalSession.objects.for_tenant(session.tenant)
    locked = (
        rows.select_for_update(of=("self",))
        .select_related("tenant", "account", "artifact", "case")
        .get(pk=session.pk)
    )
    live = rows.filter(
        pk=session.pk, status=PortalSessionStatus.ACTIVE, expires_at__gt=Now()
    ).exists()
    superseded = (
        locked.artifact_id is not None
        and RecoveryArtifact.objects.for_tenant(session.tenant)
        .filter(account_id=locked.account_id, pk__gt=locked.artifact_id)
        .exists()
    )
    return locked, live, superseded


def _refused(
    session: OwnerPortalSession, case: RecoveryCase, purpose: str, reasons: list[str], **extra: Any
) -> None:
    """Record one refusal (never the password or credential offered)."""
    record(
        action="owner.binding_refused",
        actor=OWNER,
        tenant=session.tenant,
        target=case,
        data={
            "session": session.pk,
            "purpose": purpose,
            "session_purpose": session.purpose,
            "reason": reasons[0],
            "reasons": reasons,
            **extra,
        },
    )


def _begin(session: OwnerPortalSession, purpose: str) -> tuple[OwnerPortalSession, RecoveryCase]:
    """Lock the case, then the session (case first, as every service does), and check."""
    if session.case_id is None:  # not an artifact session: nothing to lock or record against
        raise _refusal("binding.wrong_purpose")
    case = _case_locked(session.case)
    locked, live, superseded = _locked_session(session)
    problem = session_binding_problem(
        locked, case, purpose=purpose, live=live, superseded=superseded
    )
    if problem is not None:
        _refused(locked, case, purpose, [problem])
        raise _Deferred(_refusal(problem))
    return locked, case


class _Deferred(Exception):
    """A refusal to raise once the transaction holding its record has committed."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.code)
        self.error = error


def _in_session_scope(session: OwnerPortalSession, work: Callable[[], T]) -> T:
    """Run `work` in one transaction in the session's tenant; a `_Deferred` refusal leaves it
    normally (so its `owner.binding_refused` record commits) and is raised afterwards."""
    deferred: _Deferred | None = None
    with tenant_scope([session.tenant_id]):
        try:
            result = work()
        except _Deferred as refusal:
            deferred = refusal
    if deferred is not None:
        raise deferred.error
    return result


def _bound(
    session: OwnerPortalSession,
    case: RecoveryCase,
    *,
    action: str,
    detail: dict[str, Any],
    data: dict[str, Any],
) -> None:
    session.bound_at = timezone.now()
    session.bound_detail = detail
    session.save(update_fields=["bound_at", "bound_detail"])
    record(
        action=action,
        actor=OWNER,
        tenant=session.tenant,
        target=case,  # a case event: every address held before the case hears of it
        data={
            "session": session.pk,
            "artifact": session.artifact_id,
            "artifact_hash": session.artifact.secret_hash,
            **data,
        },
    )


# --- password session -----------------------------------------------------------------------


def owner_password_set(*, session: OwnerPortalSession, password: str) -> OwnerPortalSession:
    """The owner's chosen password, checked and set through the tenant's connector.

    Raises `PasswordRefused` (a rule or the breached list), `BindingRefused` (wrong session,
    expired, superseded, already bound, case ended, the connector cannot or did not set it).
    Every refusal is recorded first; the password is in no record, row or message.
    """
    from ..connectors import connector_for

    def work() -> OwnerPortalSession:
        locked, case = _begin(session, ArtifactPurpose.PASSWORD)
        rules = policy_active(case.tenant).owner_portal
        try:
            password_check(
                password, username=case.account.username, min_length=rules.password_min_length
            )
        except PasswordRefused as refused:
            _refused(locked, case, "password", [p.code for p in refused.problems])
            raise _Deferred(refused) from None
        result = connector_for(case.tenant).password_set(account=case.account, password=password)
        if not result.ok:
            code = result.detail.get("code") or "binding.connector_failed"
            _refused(
                locked,
                case,
                "password",
                [code],
                connector={
                    "kind": result.connector,
                    "path": result.path,
                    "error": result.error.replace(password, "***"),
                },
            )
            raise _Deferred(
                _refusal(code, code if code in _MESSAGES else "binding.connector_failed")
            )
        _bound(
            locked,
            case,
            action="owner.password_set",
            detail={"credential": "password", "connector": result.connector, "path": result.path},
            data={
                "credential": "password",
                "credential_id": result.path,  # the directory entry that holds it
                "connector": {
                    "kind": result.connector,
                    "ok": True,
                    "path": result.path,
                    "detail": result.detail,
                },
            },
        )
        return locked

    return _in_session_scope(session, work)


def connector_sets_passwords(session: OwnerPortalSession) -> bool:
    """Whether the tenant's connector can set the password at all (what the page offers)."""
    from ..connectors import connector_for

    with tenant_scope([session.tenant_id]):
        return Capability.PASSWORD_SET in connector_for(session.tenant).capabilities


# --- mfa session ----------------------------------------------------------------------------


def registration_challenge(session: OwnerPortalSession) -> bytes:
    """The WebAuthn challenge of this session's one registration, derived server-side from the
    session's secret cookie digest (never from anything the browser sends). A session binds
    once, so a challenge that repeats within it cannot be replayed into a second binding."""
    key = settings.SECRET_KEY.encode()
    message = f"owner-binding:{session.pk}:{session.token_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def owner_passkey_options(*, session: OwnerPortalSession) -> str:
    """Options for `navigator.credentials.create()` in an mfa session (refused otherwise)."""

    def work() -> str:
        locked, case = _begin(session, ArtifactPurpose.MFA)
        existing = list(
            OwnerPasskey.objects.for_tenant(case.tenant).filter(
                account=case.account, status=PasskeyStatus.ACTIVE
            )
        )
        options, _random = webauthn.registration_options(case.account, existing)
        # The library drew its own challenge; the session's (kept server-side) replaces it.
        parsed = json.loads(options)
        parsed["challenge"] = bytes_to_base64url(registration_challenge(locked))
        return json.dumps(parsed)

    return _in_session_scope(session, work)


def owner_authenticator_bind(
    *, session: OwnerPortalSession, method: str, credential_json: str
) -> OwnerPasskey:
    """Register the owner's new authenticator in an mfa session (R-11).

    `method` names what the browser offers; only a passkey is registered here, and a T2
    account accepts nothing that is not phishing-resistant. The WebAuthn answer is verified
    against the session's own challenge (user verification required; the tenant's allowed
    attestation formats). Raises `BindingRefused` with a stable code, recorded first.
    """

    def work() -> OwnerPasskey:
        locked, case = _begin(session, ArtifactPurpose.MFA)
        tier = effective_tier(case)
        allowed = authenticator_allowed(tier=tier, method=method)
        if not allowed:
            _refused(locked, case, "mfa", [allowed.code], method=method[:32], tier=tier)
            raise _Deferred(BindingRefused(allowed.detail, code=allowed.code))
        rules = policy_active(case.tenant).owner_portal
        try:
            passkey = webauthn.registration_verify(
                credential_json,
                registration_challenge(locked),
                rules.allowed_attestation_formats,
            )
        except webauthn.PasskeyRefused as refused:
            _refused(locked, case, "mfa", [f"passkey.{refused.reason}"], method=method)
            raise _Deferred(
                _refusal(f"passkey.{refused.reason}", "binding.passkey_refused")
            ) from None
        if OwnerPasskey.objects.filter(credential_id=passkey.credential_id).exists():
            _refused(locked, case, "mfa", ["passkey.already_registered"], method=method)
            raise _Deferred(_refusal("passkey.already_registered", "binding.passkey_taken"))
        bound = passkey_store(
            session=locked, account=case.account, registered=passkey, label="Recovery"
        )
        credential = {
            "method": method,
            "phishing_resistant": method in PHISHING_RESISTANT,
            "passkey": bound.pk,
            "credential_id": passkey.credential_id,
            "aaguid": passkey.aaguid,
            "attestation_format": passkey.fmt,
            "user_verified": passkey.user_verified,
        }
        _bound(
            locked,
            case,
            action="owner.authenticator_bound",
            detail={"credential": "passkey", **credential},
            data={
                "credential": "passkey",
                **credential,
                "tier": tier,
                # Vouchsafe holds this passkey itself: no connector call was made.
                "connector": None,
            },
        )
        return bound

    return _in_session_scope(session, work)

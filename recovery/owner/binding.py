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

With a cloud connector (one that issues the vendor's one-time pass, `Capability.TEMPORARY_PASS`:
an Entra Temporary Access Pass) the owner binds at the identity provider itself:

- the page shows the pass once, inside this session only (`owner_temporary_pass_issue`): the
  connector issues it for the tenant's pass lifetime (R-31) and it is never stored, recorded,
  sent or shown to staff (R-10, R-12); one pass per session;
- with it the owner sets up a new sign-in method at the provider's own sign-in page, then
  says so here (`owner_cloud_binding_confirm`). What counts is what the connector reports:
  a method created at or after the pass began (not the pass, not a password). Then
  containment runs (R-34, `recovery.cases.services.containment`): the methods from before
  the pass are removed (an mfa recovery only; a password recovery never removes MFA, R-12),
  sessions and refresh tokens end, and the pass is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
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
from tenants.choices import CaseType, Tier
from tenants.exceptions import DomainError, PolicyDenied
from tenants.policies import ALLOW, Decision
from tenants.rls import tenant_scope

from ..artifacts.models import ArtifactPurpose, ArtifactStatus, RecoveryArtifact
from ..artifacts.services import artifact_consume
from ..cases.choices import CaseStatus
from ..cases.models import CaseExecution, RecoveryCase
from ..cases.services.base import case_locked as _case_locked
from ..cases.services.base import requirements_for
from ..cases.services.containment import (
    PASSWORD_KINDS,
    containment_pending,
    containment_record,
    containment_run,
)
from ..connectors.base import CAPABILITY_MISSING, Capability, CloudConnector, ExecutionResult
from ..connectors.cloud import MAX_PASS_MINUTES, AuthMethod, TemporaryPass
from ..connectors.vendor_http import VendorError
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
# Recoveries a cloud connector completes with a one-time pass the owner binds with (an unlock
# needs no new credential, and must not cost the owner their methods).
PASS_CASE_TYPES = frozenset(
    {CaseType.PASSWORD_RESET, CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS}
)
PASS_PURPOSES = frozenset({ArtifactPurpose.MFA, ArtifactPurpose.PASSWORD})
# an agent-issued temporary pass lives at most 8 hours, whatever the policy says.


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
    "binding.pass_unavailable": _(
        "Your organisation's directory does not give one-time passes through this page. "
        "Call the service desk."
    ),
    "binding.pass_already_issued": _(
        "Your one-time pass was already shown on this page, and it is shown only once. If you "
        "did not keep it, call the service desk to start again."
    ),
    "binding.pass_failed": _(
        "Your organisation's directory did not give a one-time pass just now; nothing was "
        "changed. Try again in a few minutes, or call the service desk."
    ),
    "binding.no_pass": _(
        "First show your one-time pass on this page, then set up your new sign-in method with it."
    ),
    "binding.methods_unreadable": _(
        "We could not ask your organisation's directory about your sign-in methods just now; "
        "nothing was changed. Try again in a few minutes."
    ),
    "binding.no_new_method": _(
        "Your organisation's directory shows no new sign-in method set up since your pass was "
        "given. Set one up with the pass at your organisation's sign-in page, then press the "
        "button again."
    ),
    "binding.new_method_not_phishing_resistant": _(
        "For this account the new sign-in method must resist phishing: a passkey or a "
        "security key. The one you set up does not; add one that does, then press the button "
        "again."
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
    """What the agent's case page may show of the owner's binding: what and when, who verified
    it (the connector, for a method bound at the provider) and the kinds of the new methods;
    nothing else (never the password, which no row holds; never the credential itself)."""
    rows = (
        OwnerPortalSession.objects.for_tenant(tenant)
        .filter(case=case, kind=PortalSessionKind.ARTIFACT, bound_at__isnull=False)
        .order_by("bound_at")
        .values_list("bound_at", "bound_detail")
    )
    return [
        {
            "at": at,
            "credential": detail.get("credential", ""),
            "verified_by": detail.get("verified_by", ""),
            "kinds": [method.get("kind", "") for method in detail.get("methods", [])],
        }
        for at, detail in rows
    ]


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


# --- cloud connector: a one-time pass, and the binding the connector reports ---------------

CONTAINMENT = Actor.system("containment")


def temporary_pass_minutes(policy_seconds: int) -> int:
    """The owner's pass lifetime in whole minutes: the policy's agent-issued pass lifetime
    (R-31, one hour by default), never above eight hours, never below a minute."""
    return max(1, min(policy_seconds // 60, MAX_PASS_MINUTES))


def methods_bound_since(
    methods: list[AuthMethod], *, started: datetime, pass_id: str
) -> list[AuthMethod]:
    """The methods the connector reports created at or after the pass began: the owner's new
    ones. Never the pass itself nor a password; a method without a creation time proves
    nothing, so it does not count."""
    return [
        method
        for method in methods
        if method.id != pass_id
        and method.kind not in PASSWORD_KINDS
        and method.created_at is not None
        and method.created_at >= started
    ]


def _cloud_connector(case: RecoveryCase) -> CloudConnector | None:
    """The tenant's connector when it completes this recovery with a one-time pass."""
    from ..connectors import connector_for

    connector = connector_for(case.tenant)
    if (
        Capability.TEMPORARY_PASS not in connector.capabilities
        or case.case_type not in PASS_CASE_TYPES
    ):
        return None
    return connector  # type: ignore[return-value] - the capability promises the cloud methods


def connector_issues_passes(session: OwnerPortalSession) -> bool:
    """Whether the recovery page offers the one-time pass instead of the portal's own form."""
    if session.case_id is None or session.purpose not in PASS_PURPOSES:
        return False
    with tenant_scope([session.tenant_id]):
        return _cloud_connector(session.case) is not None


def cloud_binding_status(session: OwnerPortalSession) -> dict[str, Any]:
    """What the page may say of this session's pass (its id and expiry, never the pass) and
    whether containment left steps for the service desk."""
    with tenant_scope([session.tenant_id]):
        execution = (
            CaseExecution.objects.for_tenant(session.tenant).filter(case_id=session.case_id).first()
        )
    issued = execution.temporary_pass if execution is not None else None
    if not issued or issued.get("session") != session.pk:
        return {"issued": None, "cleanup_pending": False}
    expires = issued.get("expires_at")
    return {
        "issued": {
            "id": issued["id"],
            "expires_at": datetime.fromisoformat(expires) if expires else None,
        },
        "cleanup_pending": bool(containment_pending(execution)),
    }


def _begin_cloud(
    session: OwnerPortalSession,
) -> tuple[OwnerPortalSession, RecoveryCase, CloudConnector, CaseExecution]:
    """`_begin` for either purpose a pass serves, then the connector and the execution row
    (locked after the case and the session)."""
    purpose = session.purpose if session.purpose in PASS_PURPOSES else ArtifactPurpose.MFA
    locked, case = _begin(session, purpose)
    connector = _cloud_connector(case)
    if connector is None:
        _refused(locked, case, purpose, ["binding.pass_unavailable"])
        raise _Deferred(_refusal("binding.pass_unavailable"))
    execution = CaseExecution.objects.for_tenant(case.tenant).select_for_update().get(case=case)
    return locked, case, connector, execution


def _pass_start(issued: TemporaryPass, result: ExecutionResult, asked_at: datetime) -> datetime:
    """When the pass began, by the vendor's clock when its answer tells (expiry less lifetime),
    so that comparing it with the vendor's method times needs no agreement between clocks;
    else by ours, read before the call."""
    minutes = result.detail.get("lifetime_minutes")
    if issued.expires_at is not None and isinstance(minutes, int):
        return issued.expires_at - timedelta(minutes=minutes)
    return asked_at


def _sessions_ended_first(connector: CloudConnector, case: RecoveryCase) -> ExecutionResult | None:
    """End the account's sessions before a pass is issued (None: the connector cannot, and
    containment leaves it to a person after the binding)."""
    if Capability.SESSIONS_REVOKE not in connector.capabilities:
        return None
    return connector.sessions_revoke(account=case.account)


def owner_temporary_pass_issue(*, session: OwnerPortalSession) -> TemporaryPass:
    """The vendor's one-time pass for the owner, issued by the tenant's cloud connector inside
    the owner's artifact session only (R-10, R-12), for the policy's pass lifetime (R-31).

    The caller shows `secret` once and keeps it nowhere: it is in no row, record, log or
    message. The account's sessions end first. One pass per session
    (`binding.pass_already_issued`); the connector's failure (ending the sessions or issuing
    the pass) is `binding.pass_failed`, with its answer in the record. Every refusal is
    recorded first.
    """

    def work() -> TemporaryPass:
        locked, case, connector, execution = _begin_cloud(session)
        if execution.temporary_pass is not None:
            code = "binding.pass_already_issued"
            _refused(locked, case, locked.purpose, [code], pass_id=execution.temporary_pass["id"])
            raise _Deferred(_refusal(code))
        minutes = temporary_pass_minutes(requirements_for(case).lifetimes.temporary_access_pass)
        asked_at = timezone.now()
        # Every session and refresh token ends before the pass exists: a session someone else
        # still holds could otherwise add a method after it, which would count as the owner's.
        ended = _sessions_ended_first(connector, case)
        result, issued = (
            connector.temporary_pass_issue(
                account=case.account, case_type=case.case_type, lifetime_minutes=minutes
            )
            if ended is None or ended.ok
            else (ended, None)
        )
        if not result.ok or issued is None:
            connector_answer = {
                "kind": result.connector,
                "path": result.path,
                "code": result.detail.get("code", ""),
                "error": result.error,
            }
            _refused(
                locked, case, locked.purpose, ["binding.pass_failed"], connector=connector_answer
            )
            raise _Deferred(_refusal("binding.pass_failed"))
        expires = issued.expires_at.isoformat() if issued.expires_at else None
        execution.temporary_pass = {
            "session": locked.pk,
            "id": issued.id,
            "started_at": _pass_start(issued, result, asked_at).isoformat(),
            "expires_at": expires,
            "usable_once": issued.usable_once,
        }
        execution.save(update_fields=["temporary_pass"])
        record(
            action="owner.temporary_pass_issued",
            actor=OWNER,
            tenant=case.tenant,
            target=case,
            data={
                "session": locked.pk,
                "artifact": locked.artifact_id,
                "pass_id": issued.id,
                "expires_at": expires,
                "lifetime_minutes": minutes,
                "usable_once": issued.usable_once,
                "connector": {"kind": result.connector, "path": result.path},
                "sessions_ended_first": ended.path if ended is not None else None,
            },
        )
        return issued

    return _in_session_scope(session, work)


def _snapshot_methods(execution: CaseExecution) -> dict[str, str]:
    """The methods the execution's snapshot held, id -> kind (none when it held none)."""
    methods = (execution.snapshot or {}).get("methods") or []
    return {method["id"]: method.get("kind", "") for method in methods}


def _reported(method: AuthMethod) -> dict[str, Any]:
    created = method.created_at.isoformat() if method.created_at else None
    return {
        "id": method.id,
        "kind": method.kind,
        "created_at": created,
        "phishing_resistant": method.phishing_resistant,
    }


def owner_cloud_binding_confirm(*, session: OwnerPortalSession) -> OwnerPortalSession:
    """The owner says they set up a new sign-in method with their pass; the connector decides.

    Bound means the connector lists a method created at or after the pass began (and, for a
    T2 account, a phishing-resistant one, R-11); otherwise the refusal is recorded and
    nothing else changes. Once bound (`owner.authenticator_bound`, verified_by connector),
    containment runs (R-34): see `recovery.cases.services.containment`. An mfa recovery
    removes the methods from before the pass; a password recovery keeps them (R-12).

    Only the session the pass was shown in may confirm, and it binds once, so containment
    runs once. Every connector call comes before the first record: a crash before the commit
    leaves nothing recorded, and confirming again repeats nothing the directory already did
    (a removed method is no longer listed, and is reported once as done).
    """

    def work() -> OwnerPortalSession:
        locked, case, connector, execution = _begin_cloud(session)
        purpose = locked.purpose
        issued = execution.temporary_pass
        if issued is None or issued.get("session") != locked.pk:
            _refused(locked, case, purpose, ["binding.no_pass"])
            raise _Deferred(_refusal("binding.no_pass"))
        try:
            listed = connector.methods_list(account=case.account)
        except VendorError as error:
            answer = {"kind": connector.kind, "path": "methods_list", "error": str(error)}
            _refused(locked, case, purpose, ["binding.methods_unreadable"], connector=answer)
            raise _Deferred(_refusal("binding.methods_unreadable")) from None
        started = datetime.fromisoformat(issued["started_at"])
        new = methods_bound_since(listed, started=started, pass_id=issued["id"])
        if not new:
            _refused(
                locked,
                case,
                purpose,
                ["binding.no_new_method"],
                pass_id=issued["id"],
                methods_listed=len(listed),
            )
            raise _Deferred(_refusal("binding.no_new_method"))
        tier = effective_tier(case)
        if tier == Tier.T2 and not any(method.phishing_resistant for method in new):
            code = "binding.new_method_not_phishing_resistant"
            kinds = sorted({method.kind for method in new})
            _refused(locked, case, purpose, [code], tier=tier, kinds=kinds)
            raise _Deferred(_refusal(code))
        outcomes = containment_run(
            connector=connector,
            account=case.account,
            listed=listed,
            kept=frozenset(method.id for method in new),
            snapshot_methods=_snapshot_methods(execution),
            pass_id=issued["id"],
            remove_methods=purpose == ArtifactPurpose.MFA,
        )
        reported = [_reported(method) for method in new]
        _bound(
            locked,
            case,
            action="owner.authenticator_bound",
            detail={"credential": "authenticator", "methods": reported, "verified_by": "connector"},
            data={
                "credential": "authenticator",
                "methods": reported,
                "verified_by": "connector",
                "phishing_resistant": any(method.phishing_resistant for method in new),
                "tier": tier,
                "pass_id": issued["id"],
                "connector": {"kind": connector.kind, "path": "methods_list"},
            },
        )
        containment_record(case=case, execution=execution, outcomes=outcomes, actor=CONTAINMENT)
        return locked

    return _in_session_scope(session, work)

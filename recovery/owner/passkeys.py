"""Passkeys the owner registers in the portal: register, list, remove, and disable a clone.

Each passkey is also a `ContactMethod` (kind passkey, source owner_portal, registered now), so
the quarantine applies to it as to a new phone number (R-04), and adding or removing one is
recorded (`owner.passkey_added` / `owner.passkey_removed`), which sends an R-38 notice to the
account's existing addresses (recovery.notifications). Registration needs user verification
and an attestation format the tenant's policy allows.

The registration challenge is kept server-side, in the cache under the session's id, and is
taken (read and deleted) once: a second answer to the same options finds none.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.context import Actor
from audit.services import record
from tenants.exceptions import InvalidInput
from tenants.rls import tenant_scope

from ..choices import ContactKind
from ..models import ContactMethod, ProtectedAccount
from ..policy.selectors import policy_active
from . import webauthn
from .choices import PasskeyStatus
from .enrolment import EnrolmentRefused, change_check, session_live
from .models import OWNER_PORTAL_SOURCE, OwnerPasskey, OwnerPortalSession
from .sessions import ENROLLED_KINDS, OWNER

CHALLENGE_SECONDS = webauthn.TIMEOUT_MS // 1000 + 60
MAX_PASSKEYS = 10
LABEL_MAX = 64


def _reason_messages() -> dict[str, str]:
    return {
        "challenge_missing": _(
            "This request has expired or was already used. Start again from the button."
        ),
        "origin_mismatch": _(
            "The passkey was created for another website address. Open this page from the "
            "link you received and try again."
        ),
        "rp_id_mismatch": _("The passkey was created for another website. Try again."),
        "user_not_verified": _(
            "Your device did not verify you (PIN, fingerprint or face). Passkeys here need it."
        ),
        "attestation_format_not_allowed": _(
            "Your organisation does not accept this kind of security key or device."
        ),
        "already_registered": _("This passkey is already registered."),
        "too_many": _("You already have the most passkeys allowed. Remove one first."),
    }


class PasskeyRegistrationRefused(InvalidInput):
    code = "passkey.refused"

    def __init__(self, reason: str) -> None:
        message = _reason_messages().get(
            reason, _("The passkey could not be verified. Nothing was saved; try again.")
        )
        super().__init__(message, code=f"passkey.{reason}")
        self.reason = reason


@dataclass(frozen=True)
class PasskeyView:
    """What the owner sees of a passkey (never the key)."""

    pk: int
    label: str
    created_at: object
    last_used_at: object
    backed_up: bool
    synced: bool


def _challenge_key(session: OwnerPortalSession) -> str:
    return f"owner:webauthn:register:{session.pk}"


def _challenge_take(session: OwnerPortalSession) -> bytes | None:
    """The registration challenge of this session, once (a concurrent second take gets None)."""
    key = _challenge_key(session)
    value = cache.get(key)
    if value is None or not cache.delete(key):
        return None
    return base64.b64decode(value)


def _active(account: ProtectedAccount):
    return OwnerPasskey.objects.for_tenant(account.tenant).filter(
        account=account, status=PasskeyStatus.ACTIVE
    )


def passkey_list(*, account: ProtectedAccount) -> list[PasskeyView]:
    return [
        PasskeyView(
            pk=p.pk,
            label=p.label,
            created_at=p.created_at,
            last_used_at=p.last_used_at,
            backed_up=p.backup_state,
            synced=p.backup_eligible,
        )
        for p in _active(account).order_by("created_at")
    ]


def passkey_registration_begin(*, session: OwnerPortalSession) -> str:
    """Registration options (JSON) for the session's account; the challenge stays here."""
    with tenant_scope([session.tenant_id]):
        session = session_live(session, ENROLLED_KINDS)
        account = session.account
        change_check(session, account)
        existing = list(_active(account))
        if len(existing) >= MAX_PASSKEYS:
            raise PasskeyRegistrationRefused("too_many")
        options, challenge = webauthn.registration_options(account, existing)
    cache.set(
        _challenge_key(session), base64.b64encode(challenge).decode(), timeout=CHALLENGE_SECONDS
    )
    return options


def _refused(session: OwnerPortalSession, reason: str, detail: str = "") -> None:
    record(
        action="owner.passkey_refused",
        actor=OWNER,
        tenant=session.tenant,
        target=session.account,
        data={
            "account": session.account_id,
            "session": session.pk,
            "reason": reason,
            "detail": detail[:200],
        },
    )


def _contact_value(credential_id: str) -> str:
    if len(credential_id) <= 200:
        return credential_id
    return "sha256:" + hashlib.sha256(credential_id.encode()).hexdigest()


def passkey_register(
    *, session: OwnerPortalSession, credential_json: str, label: str = ""
) -> OwnerPasskey:
    """Verify the browser's answer to the options and register the passkey.

    Refused (`PasskeyRegistrationRefused`, recorded as `owner.passkey_refused` with its
    reason): no challenge (expired or already answered), another origin or RP id, no user
    verification, an attestation format the tenant's policy does not allow, a credential
    already registered, or the account may no longer enrol.
    """
    challenge = _challenge_take(session)
    refusal: Exception | None = None
    with tenant_scope([session.tenant_id]):
        session = session_live(session, ENROLLED_KINDS)
        account = (
            ProtectedAccount.objects.for_tenant(session.tenant)
            .select_for_update()
            .select_related("tenant")
            .get(pk=session.account_id)
        )
        reason, detail = "", ""
        try:
            change_check(session, account)
        except EnrolmentRefused as problem:
            refusal, reason = problem, problem.code
        if refusal is None and challenge is None:
            reason = "challenge_missing"
        elif refusal is None:
            allowed = policy_active(account.tenant).owner_portal.allowed_attestation_formats
            try:
                registered = webauthn.registration_verify(credential_json, challenge, allowed)
            except webauthn.PasskeyRefused as error:
                reason, detail = error.reason, error.detail
            else:
                if OwnerPasskey.objects.filter(credential_id=registered.credential_id).exists():
                    reason = "already_registered"
                elif _active(account).count() >= MAX_PASSKEYS:
                    reason = "too_many"
        if reason:
            _refused(session, reason, detail)  # commits with the scope, before the raise
            refusal = refusal or PasskeyRegistrationRefused(reason)
        else:
            passkey = _passkey_create(session, account, registered, label)
    if refusal is not None:
        raise refusal
    return passkey


def passkey_store(
    *,
    session: OwnerPortalSession,
    account: ProtectedAccount,
    registered: webauthn.RegisteredPasskey,
    label: str,
) -> OwnerPasskey:
    """Keep a verified passkey and its contact method, registered now: the quarantine (R-04)
    applies to it as to a new phone number. The caller records what it stands for."""
    contact = ContactMethod.objects.create(
        tenant=account.tenant,
        account=account,
        kind=ContactKind.PASSKEY,
        value=_contact_value(registered.credential_id),
        source=OWNER_PORTAL_SOURCE,
        registered_at=timezone.now(),
        is_notification=False,
    )
    return OwnerPasskey.objects.create(
        tenant=account.tenant,
        account=account,
        contact=contact,
        **registered.stored_fields(),
        label=(label or "").strip()[:LABEL_MAX],
        registered_in=session,
    )


def _passkey_create(
    session: OwnerPortalSession,
    account: ProtectedAccount,
    registered: webauthn.RegisteredPasskey,
    label: str,
) -> OwnerPasskey:
    passkey = passkey_store(session=session, account=account, registered=registered, label=label)
    record(
        action="owner.passkey_added",
        actor=OWNER,
        tenant=account.tenant,
        target=account,
        data={
            "account": account.pk,
            "passkey": passkey.pk,
            "contact": passkey.contact_id,
            "session": session.pk,
            "session_kind": session.kind,
            "credential_id": registered.credential_id[:80],
            "aaguid": registered.aaguid,
            "attestation_format": registered.fmt,
            "user_verified": registered.user_verified,
            "backup_eligible": registered.backup_eligible,
            "backup_state": registered.backup_state,
        },
    )
    return passkey


def passkey_remove(*, session: OwnerPortalSession, passkey_id: int) -> OwnerPasskey:
    """Remove one of the account's active passkeys (its contact method is closed too)."""
    with tenant_scope([session.tenant_id]):
        session = session_live(session, ENROLLED_KINDS)
        account = (
            ProtectedAccount.objects.for_tenant(session.tenant)
            .select_for_update()
            .select_related("tenant")
            .get(pk=session.account_id)
        )
        change_check(session, account)
        passkey = _active(account).select_for_update().filter(pk=passkey_id).first()
        if passkey is None:
            raise InvalidInput(_("No such passkey."), code="passkey.not_found")
        now = timezone.now()
        passkey.status = PasskeyStatus.REMOVED
        passkey.removed_at = now
        passkey.save(update_fields=["status", "removed_at"])
        ContactMethod.objects.for_tenant(account.tenant).filter(pk=passkey.contact_id).update(
            replaced_at=now
        )
        record(
            action="owner.passkey_removed",
            actor=OWNER,
            tenant=account.tenant,
            target=account,
            data={
                "account": account.pk,
                "passkey": passkey.pk,
                "contact": passkey.contact_id,
                "session": session.pk,
            },
        )
    return passkey


def passkey_mark_cloned(
    *,
    passkey: OwnerPasskey,
    presented_sign_count: int,
    case: object | None = None,
    context: str = "",
) -> bool:
    """A valid signature whose counter went back (`webauthn.PasskeyCloned`): disable the
    passkey, close its contact method, record `owner.passkey_clone_detected` and raise an
    alert. Runs in the caller's transaction if there is one. True if it was still active."""
    with tenant_scope([passkey.tenant_id]):
        now = timezone.now()
        changed = (
            OwnerPasskey.objects.for_tenant(passkey.tenant)
            .filter(pk=passkey.pk, status=PasskeyStatus.ACTIVE)
            .update(status=PasskeyStatus.CLONED, removed_at=now)
        )
        if not changed:
            return False
        ContactMethod.objects.for_tenant(passkey.tenant).filter(pk=passkey.contact_id).update(
            replaced_at=now
        )
        target = case if case is not None else passkey.account
        data = {
            "account": passkey.account_id,
            "passkey": passkey.pk,
            "stored_sign_count": passkey.sign_count,
            "presented_sign_count": presented_sign_count,
            "context": context[:100],
        }
        record(
            action="owner.passkey_clone_detected",
            actor=Actor.system("detection"),
            tenant=passkey.tenant,
            target=target,
            data=data,
        )
        record(
            action="alert.raised",
            actor=Actor.system("detection"),
            tenant=passkey.tenant,
            target=target,
            data={"type": "passkey_cloned", **data},
        )
    return True

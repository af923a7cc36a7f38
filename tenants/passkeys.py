"""Staff passkeys (WebAuthn): enrolment, sign-in and step-up assertions, loss and replacement.

- **Enrolment.** A signed-in staff user registers a passkey on one of three grounds, checked
  when the options are made and again when the answer is stored: it is their first passkey
  ever; they just proved an active passkey (a fresh `StaffAssertion`); or a second staff
  member approved a replacement for them (`StaffPasskeyReplacement`, time-limited).
- **Assertions** (`staff_assertion_verify`) check user verification, the challenge the
  server kept, that this signed answer was never accepted before, and the signature counter:
  a good signature whose counter did not grow is a copied key, so the passkey is suspended
  (`auth.passkey_suspended`) and the answer refused. The returned `StaffAssertion` carries
  what an approval stores so that anyone can verify the signature again later.
- **Loss and replacement.** Removing a passkey is audited and the user is told by e-mail.
  Someone with no active passkey left asks for a replacement; a tenant_admin or
  security_officer of one of their tenants — another person — approves it with a fresh
  passkey assertion over that request, and only then may the requester register a new one.

Every change records one audit event in its transaction and e-mails the user after commit.
Staff passkeys belong to a person, not a tenant: their events go to the platform chain.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from webauthn.helpers import bytes_to_base64url

from audit.context import Actor
from audit.services import record

from . import webauthn
from .access import access_in
from .choices import PasskeyReplacementStatus, Role, StaffPasskeyStatus
from .exceptions import DomainError
from .lockout import is_locked, register_failure
from .models import (
    Membership,
    StaffPasskey,
    StaffPasskeyReplacement,
    StaffPasskeyUse,
    Tenant,
    User,
)
from .otp import sign_in_completed

CHALLENGE_SECONDS = webauthn.TIMEOUT_MS // 1000 + 60
STEP_UP_MAX_AGE = timedelta(seconds=CHALLENGE_SECONDS)
REQUEST_LIFETIME = timedelta(days=3)
REGISTRATION_WINDOW = timedelta(hours=1)
MAX_PASSKEYS = 10
NAME_MAX = 64
# Any attestation py_webauthn verifies: staff devices are not restricted by model here.
ATTESTATION_FORMATS = (
    "none",
    "packed",
    "tpm",
    "android-key",
    "android-safetynet",
    "apple",
    "fido-u2f",
)
REPLACEMENT_APPROVER_ROLES = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER})

GROUND_FIRST = "first"
GROUND_STEP_UP = "step_up"
GROUND_REPLACEMENT = "replacement"
NEEDS_REPLACEMENT = "needs_replacement"


def _messages() -> dict[str, str]:
    return {
        "unknown_credential": _("This passkey is not one of your active passkeys."),
        "replayed": _("This passkey answer was already used. Try again."),
        "sign_count_not_increased": _(
            "This passkey looks copied (its counter went back). It is suspended; use another "
            "one or ask for a replacement."
        ),
        "challenge_missing": _("This request has expired or was already used. Start again."),
        "challenge_mismatch": _("This passkey answer was made for another request."),
        "origin_mismatch": _("The passkey answered for another website address."),
        "rp_id_mismatch": _("The passkey belongs to another website."),
        "user_not_verified": _(
            "Your device did not verify you (PIN, fingerprint or face). Passkeys here need it."
        ),
        "already_registered": _("This passkey is already registered."),
        "too_many": _("You already have the most passkeys allowed. Remove one first."),
        "account_locked": _("This account is locked after too many failed attempts."),
        "step_up_required": _(
            "Adding a passkey needs a fresh answer from one of your active passkeys."
        ),
        "replacement_required": _(
            "You have no active passkey left: ask for a replacement, which another staff "
            "member approves."
        ),
        "replacement_not_needed": _(
            "You still have an active passkey (or never had one): add a passkey directly."
        ),
        "replacement_pending": _("Your replacement request is waiting for approval."),
        "replacement_not_open": _("This replacement request is no longer open."),
        "replacement_same_person": _("A replacement is approved by another person."),
        "replacement_not_authorised": _(
            "Only a tenant admin or security officer of one of the requester's tenants may "
            "approve this replacement."
        ),
        "step_up_stale": _("The passkey answer is too old or was made for something else."),
    }


class StaffPasskeyRefused(DomainError):
    """A passkey ceremony or change was refused; `code` is `passkey.<reason>`."""

    code = "passkey.refused"

    def __init__(self, reason: str, detail: str = "") -> None:
        message = _messages().get(reason, _("The passkey answer could not be verified."))
        super().__init__(message, code=f"passkey.{reason}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class StaffAssertion:
    """A verified, spent passkey assertion: what an approval stores to be checked again later.

    With the public key of passkey `passkey_id` and the expected challenge, anyone can check
    that `signature` signs `authenticator_data` + SHA-256(`client_data_json`) (all base64url),
    with user verification, for this relying party (`staff_assertion_reverify`).
    """

    user_id: int
    passkey_id: int
    credential_id: str
    challenge: str  # base64url of the challenge it answered
    authenticator_data: str
    client_data_json: str
    signature: str
    sign_count: int
    digest: str
    verified_at: datetime

    def as_data(self) -> dict[str, Any]:
        return {
            "method": "passkey",
            "passkey": self.passkey_id,
            "credential_id": self.credential_id,
            "challenge": self.challenge,
            "authenticator_data": self.authenticator_data,
            "client_data_json": self.client_data_json,
            "signature": self.signature,
            "sign_count": self.sign_count,
            "digest": self.digest,
            "verified_at": self.verified_at.isoformat(),
        }

    def is_fresh_for(self, user: User, challenge: bytes) -> bool:
        """Issued to `user` over `challenge`, recently enough to authorise an action now."""
        return (
            self.user_id == user.pk
            and self.challenge == bytes_to_base64url(challenge)
            and timezone.now() - self.verified_at <= STEP_UP_MAX_AGE
        )


@dataclass(frozen=True)
class RegistrationStart:
    """Options for `navigator.credentials.create()` and what the server keeps until the answer."""

    options_json: str
    challenge: bytes
    ground: str
    started_at: datetime
    replacement_id: int | None = None
    step_up_passkey_id: int | None = None

    def as_session(self) -> dict[str, Any]:
        return {
            "options": self.options_json,
            "challenge": base64.b64encode(self.challenge).decode(),
            "ground": self.ground,
            "started_at": self.started_at.isoformat(),
            "replacement": self.replacement_id,
            "step_up_passkey": self.step_up_passkey_id,
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> RegistrationStart:
        return cls(
            options_json=data.get("options", ""),
            challenge=base64.b64decode(data["challenge"]),
            ground=data["ground"],
            started_at=datetime.fromisoformat(data["started_at"]),
            replacement_id=data.get("replacement"),
            step_up_passkey_id=data.get("step_up_passkey"),
        )


# reads


def staff_passkeys_active(user: User):
    return StaffPasskey.objects.filter(user=user, status=StaffPasskeyStatus.ACTIVE)


def staff_passkey_list(*, user: User) -> list[StaffPasskey]:
    """The user's passkeys that still count or were suspended (removed ones are history)."""
    return list(
        StaffPasskey.objects.filter(user=user)
        .exclude(status=StaffPasskeyStatus.REMOVED)
        .order_by("created_at")
    )


def staff_passkey_replacement_open(*, user: User) -> StaffPasskeyReplacement | None:
    """The user's replacement request that is waiting or approved and not past its deadline."""
    return (
        StaffPasskeyReplacement.objects.filter(
            requester=user,
            status__in=[PasskeyReplacementStatus.REQUESTED, PasskeyReplacementStatus.APPROVED],
            expires_at__gt=timezone.now(),
        )
        .order_by("-requested_at")
        .first()
    )


def _approver_tenants(actor: User) -> list[int]:
    return list(
        Membership.objects.filter(
            user=actor,
            tenant__isnull=False,
            tenant__is_active=True,
            is_active=True,
            role__in=REPLACEMENT_APPROVER_ROLES,
        ).values_list("tenant_id", flat=True)
    )


def _approval_tenant(actor: User, requester: User) -> Tenant | None:
    """A tenant where `actor` is one of the tenant's own admins or security officers and the
    requester may act: the organisation that vouches for the replacement."""
    for tenant in Tenant.objects.filter(pk__in=_approver_tenants(actor)).order_by("pk"):
        access = access_in(actor, tenant)
        if (
            access is not None
            and not access.via_grant
            and access.roles & REPLACEMENT_APPROVER_ROLES
            and access_in(requester, tenant) is not None
        ):
            return tenant
    return None


def staff_passkey_replacements_to_approve(*, actor: User) -> list[StaffPasskeyReplacement]:
    """Open requests the actor may approve (never their own, nor another account of theirs)."""
    if not _approver_tenants(actor):
        return []
    pending = (
        StaffPasskeyReplacement.objects.filter(
            status=PasskeyReplacementStatus.REQUESTED, expires_at__gt=timezone.now()
        )
        .exclude(requester__person_id=actor.person_id)
        .select_related("requester")
        .order_by("requested_at")
    )
    return [r for r in pending if _approval_tenant(actor, r.requester) is not None]


def replacement_challenge(replacement: StaffPasskeyReplacement) -> bytes:
    """The challenge an approver's passkey signs: it names this request and no other."""
    requested = replacement.requested_at.isoformat()
    text = f"vouchsafe.passkey-replacement:{replacement.pk}:{replacement.requester_id}:{requested}"
    return hashlib.sha256(text.encode()).digest()


def staff_assertion_options(*, user: User, challenge: bytes) -> str:
    """Options for `navigator.credentials.get()` over the user's active passkeys."""
    passkeys = list(staff_passkeys_active(user))
    if not passkeys:
        raise StaffPasskeyRefused("unknown_credential")
    return webauthn.assertion_options(passkeys, challenge)


# notices


def _notify(user: User, subject: str, body: str) -> None:
    """E-mail the user after commit, in their console language (nothing for a rollback)."""
    if not user.email:
        return
    address = user.email

    def send() -> None:
        EmailMessage(subject=subject, body=body, to=[address]).send(fail_silently=True)

    transaction.on_commit(send, robust=True)


def _notice(user: User, kind: str, **values: Any) -> None:
    with translation.override(user.language or translation.get_language()):
        texts = {
            "enrolled": (
                _("A passkey was added to your Vouchsafe account"),
                _(
                    "The passkey “%(name)s” was added to your Vouchsafe staff account. If "
                    "this was not you, tell your security team now."
                ),
            ),
            "removed": (
                _("A passkey was removed from your Vouchsafe account"),
                _(
                    "The passkey “%(name)s” was removed from your Vouchsafe staff account. "
                    "If this was not you, tell your security team now."
                ),
            ),
            "suspended": (
                _("A passkey of your Vouchsafe account was suspended"),
                _(
                    "The passkey “%(name)s” answered with a signature counter that did not "
                    "grow, a sign that it was copied. It is suspended and cannot be used. "
                    "Tell your security team."
                ),
            ),
            "replacement_requested": (
                _("You asked for a new Vouchsafe passkey"),
                _(
                    "A replacement passkey was requested for your Vouchsafe staff account. A "
                    "tenant admin or security officer must approve it. If this was not you, "
                    "tell your security team now."
                ),
            ),
            "replacement_approved": (
                _("Your new Vouchsafe passkey was approved"),
                _(
                    "%(approver)s approved a replacement passkey for your Vouchsafe staff "
                    "account. Register it within the hour from your passkeys page. If you "
                    "did not ask for it, tell your security team now."
                ),
            ),
        }
        subject, body = texts[kind]
        _notify(user, str(subject), str(body) % values)


# assertions (sign-in and step-up)


def _suspend_cloned(passkey: StaffPasskey, cloned: webauthn.PasskeyCloned) -> None:
    """A valid signature whose counter did not grow: suspend the passkey and record it."""
    now = timezone.now()
    StaffPasskey.objects.filter(pk=passkey.pk).update(
        status=StaffPasskeyStatus.SUSPENDED,
        confirmed=False,
        status_reason="sign_count_not_increased",
        status_changed_at=now,
    )
    record(
        action="auth.passkey_suspended",
        actor=Actor.system("detection"),
        target=passkey.user,
        data={
            "user": passkey.user_id,
            "passkey": passkey.pk,
            "reason": "sign_count_not_increased",
            "stored_sign_count": cloned.stored,
            "presented_sign_count": cloned.presented,
        },
    )
    _notice(passkey.user, "suspended", name=passkey.name)


def staff_assertion_verify(*, user: User, challenge: bytes, credential_json: str) -> StaffAssertion:
    """Verify a passkey answer of `user` over `challenge` (kept by the server) and spend it.

    Refused (`StaffPasskeyRefused`): not one of the user's active passkeys, an answer already
    accepted once, a challenge, origin or RP id that does not match, no user verification, a
    bad signature; and a copied key — a good signature whose counter did not grow — which
    also suspends that passkey (`auth.passkey_suspended`, the user is told).

    Like `stepup.step_up_verify`, call it before the transaction of the action it authorises:
    its own transaction commits the spent answer, the new counter and a suspension.
    """
    credential_id = webauthn.credential_id_of(credential_json)
    digest = webauthn.assertion_digest(credential_json)
    refusal: StaffPasskeyRefused | None = None
    with transaction.atomic():
        passkey = (
            staff_passkeys_active(user)
            .select_for_update(of=("self",))
            .select_related("user")
            .filter(credential_id=credential_id)
            .first()
            if credential_id and digest
            else None
        )
        if passkey is None:
            raise StaffPasskeyRefused("unknown_credential")
        if StaffPasskeyUse.objects.filter(digest=digest).exists():
            raise StaffPasskeyRefused("replayed")
        try:
            verified = webauthn.assertion_verify(credential_json, challenge, passkey)
        except webauthn.PasskeyCloned as cloned:
            _suspend_cloned(passkey, cloned)  # commits with this block, before the raise
            refusal = StaffPasskeyRefused(cloned.reason, cloned.detail)
        except webauthn.PasskeyRefused as problem:
            raise StaffPasskeyRefused(problem.reason, problem.detail) from problem
        else:
            now = timezone.now()
            StaffPasskey.objects.filter(pk=passkey.pk).update(
                sign_count=verified.new_sign_count, last_used_at=now
            )
            StaffPasskeyUse.objects.create(digest=digest, passkey=passkey)
    if refusal is not None:
        raise refusal
    return StaffAssertion(
        user_id=user.pk,
        passkey_id=passkey.pk,
        credential_id=passkey.credential_id,
        challenge=bytes_to_base64url(challenge),
        authenticator_data=verified.authenticator_data,
        client_data_json=verified.client_data_json,
        signature=verified.signature,
        sign_count=verified.new_sign_count,
        digest=digest,
        verified_at=now,
    )


def staff_assertion_reverify(data: dict[str, Any], *, challenge: bytes) -> None:
    """Check a stored `StaffAssertion.as_data()` again: the signature of its passkey's public
    key over `challenge`, with user verification. Raises `StaffPasskeyRefused`."""
    passkey = StaffPasskey.objects.filter(pk=data.get("passkey")).first()
    if passkey is None or passkey.credential_id != data.get("credential_id"):
        raise StaffPasskeyRefused("unknown_credential")
    try:
        webauthn.assertion_reverify(
            credential_id=passkey.credential_id,
            authenticator_data=str(data.get("authenticator_data", "")),
            client_data_json=str(data.get("client_data_json", "")),
            signature=str(data.get("signature", "")),
            public_key=bytes(passkey.public_key),
            challenge=challenge,
        )
    except webauthn.PasskeyRefused as problem:
        raise StaffPasskeyRefused(problem.reason, problem.detail) from problem


def staff_passkey_sign_in(*, user: User, challenge: bytes, credential_json: str) -> StaffPasskey:
    """The second factor of a staff sign-in with a passkey (after the password).

    A refusal counts towards the lockout like a wrong code; success records
    `auth.login_succeeded` with the passkey as the device.
    """
    if is_locked(user):
        raise StaffPasskeyRefused("account_locked")
    try:
        assertion = staff_assertion_verify(
            user=user, challenge=challenge, credential_json=credential_json
        )
    except StaffPasskeyRefused:
        register_failure(user, kind="passkey")
        raise
    passkey = StaffPasskey.objects.get(pk=assertion.passkey_id)
    sign_in_completed(user=user, device=passkey)
    return passkey


# enrolment


def _has_had_passkeys(user: User) -> bool:
    return StaffPasskey.objects.filter(user=user).exists()


def staff_passkey_enrolment_ground(*, user: User) -> tuple[str, StaffPasskeyReplacement | None]:
    """How `user` may register a passkey now, and the replacement request that matters:
    GROUND_FIRST, GROUND_REPLACEMENT (approved, in its window), GROUND_STEP_UP (after a fresh
    answer from an active passkey) or NEEDS_REPLACEMENT (no active passkey left)."""
    if not _has_had_passkeys(user):
        return GROUND_FIRST, None
    replacement = staff_passkey_replacement_open(user=user)
    if replacement is not None and replacement.status == PasskeyReplacementStatus.APPROVED:
        return GROUND_REPLACEMENT, replacement
    if staff_passkeys_active(user).exists():
        return GROUND_STEP_UP, None
    return NEEDS_REPLACEMENT, replacement


def _step_up_holds(user: User, step_up: StaffAssertion | None) -> bool:
    return (
        step_up is not None
        and step_up.user_id == user.pk
        and timezone.now() - step_up.verified_at <= STEP_UP_MAX_AGE
        and staff_passkeys_active(user).filter(pk=step_up.passkey_id).exists()
    )


def staff_handle(user: User) -> bytes:
    return webauthn.opaque_user_handle(f"webauthn-staff:{user.pk}")


def staff_passkey_registration_begin(
    *, user: User, step_up: StaffAssertion | None = None
) -> RegistrationStart:
    """Options to register a passkey, if `user` may now (see the module's three grounds)."""
    ground, replacement = staff_passkey_enrolment_ground(user=user)
    if ground == NEEDS_REPLACEMENT:
        raise StaffPasskeyRefused("replacement_required")
    if ground == GROUND_STEP_UP and not _step_up_holds(user, step_up):
        raise StaffPasskeyRefused("step_up_required")
    existing = list(staff_passkeys_active(user))
    if len(existing) >= MAX_PASSKEYS:
        raise StaffPasskeyRefused("too_many")
    options, challenge = webauthn.registration_options(
        user_handle=staff_handle(user),
        user_name=user.get_username(),
        display_name=user.get_full_name(),
        existing=existing,
    )
    return RegistrationStart(
        options_json=options,
        challenge=challenge,
        ground=ground,
        started_at=timezone.now(),
        replacement_id=replacement.pk if replacement is not None else None,
        step_up_passkey_id=step_up.passkey_id if step_up and ground == GROUND_STEP_UP else None,
    )


def _ground_holds(user: User, start: RegistrationStart) -> StaffPasskeyReplacement | None:
    """Check again, under the user's lock, that the ground of `start` still holds."""
    if start.ground == GROUND_FIRST and not _has_had_passkeys(user):
        return None
    if start.ground == GROUND_STEP_UP and (
        staff_passkeys_active(user).filter(pk=start.step_up_passkey_id).exists()
    ):
        return None
    if start.ground == GROUND_REPLACEMENT:
        replacement = (
            StaffPasskeyReplacement.objects.select_for_update()
            .filter(
                pk=start.replacement_id,
                requester=user,
                status=PasskeyReplacementStatus.APPROVED,
                expires_at__gt=timezone.now(),
            )
            .first()
        )
        if replacement is not None:
            return replacement
    raise StaffPasskeyRefused(
        "replacement_required" if not staff_passkeys_active(user).exists() else "step_up_required"
    )


def staff_passkey_register(
    *, user: User, start: RegistrationStart, credential_json: str, name: str = ""
) -> StaffPasskey:
    """Verify the browser's answer to `start` and register the passkey (`auth.passkey_enrolled`).

    Refused: the options are too old, the ground no longer holds (an approved replacement is
    spent or expired, the passkey that stepped up was removed), no user verification, another
    origin or RP id, a credential already registered, or too many passkeys.
    """
    if timezone.now() - start.started_at > timedelta(seconds=CHALLENGE_SECONDS):
        raise StaffPasskeyRefused("challenge_missing")
    try:
        registered = webauthn.registration_verify(
            credential_json, start.challenge, ATTESTATION_FORMATS
        )
    except webauthn.PasskeyRefused as problem:
        raise StaffPasskeyRefused(problem.reason, problem.detail) from problem
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        replacement = _ground_holds(user, start)
        if StaffPasskey.objects.filter(credential_id=registered.credential_id).exists():
            raise StaffPasskeyRefused("already_registered")
        if staff_passkeys_active(user).count() >= MAX_PASSKEYS:
            raise StaffPasskeyRefused("too_many")
        now = timezone.now()
        if replacement is not None:
            replacement.status, replacement.ended_at = PasskeyReplacementStatus.USED, now
            replacement.save(update_fields=["status", "ended_at"])
        passkey = StaffPasskey.objects.create(
            user=user,
            name=(name or "").strip()[:NAME_MAX] or _("Passkey"),
            confirmed=True,
            **registered.stored_fields(),
            replacement=replacement,
        )
        record(
            action="auth.passkey_enrolled",
            actor=Actor.for_user(user),
            target=user,
            data={
                "user": user.pk,
                "passkey": passkey.pk,
                "ground": start.ground,
                "replacement": replacement.pk if replacement else None,
                "step_up_passkey": start.step_up_passkey_id,
                "credential_id": registered.credential_id[:80],
                "aaguid": registered.aaguid,
                "attestation_format": registered.fmt,
                "user_verified": registered.user_verified,
                "backup_eligible": registered.backup_eligible,
            },
        )
        _notice(user, "enrolled", name=passkey.name)
    return passkey


def staff_passkey_remove(*, user: User, passkey_id: int) -> StaffPasskey:
    """The holder removes one of their passkeys (lost or retired): `auth.passkey_removed`.

    A session signed in with it is no longer verified (django-otp reads `confirmed`).
    """
    with transaction.atomic():
        passkey = (
            StaffPasskey.objects.select_for_update()
            .filter(user=user, pk=passkey_id)
            .exclude(status=StaffPasskeyStatus.REMOVED)
            .first()
        )
        if passkey is None:
            raise DomainError(_("No such passkey."), code="passkey.not_found")
        previous = passkey.status
        passkey.status, passkey.confirmed = StaffPasskeyStatus.REMOVED, False
        passkey.status_reason, passkey.status_changed_at = "removed_by_holder", timezone.now()
        passkey.save(update_fields=["status", "confirmed", "status_reason", "status_changed_at"])
        record(
            action="auth.passkey_removed",
            actor=Actor.for_user(user),
            target=user,
            data={
                "user": user.pk,
                "passkey": passkey.pk,
                "previous_status": previous,
                "active_left": staff_passkeys_active(user).count(),
            },
        )
        _notice(user, "removed", name=passkey.name)
    return passkey


# replacement (a privileged act: a second person approves)


def staff_passkey_replacement_request(*, user: User, reason: str = "") -> StaffPasskeyReplacement:
    """Ask for a new passkey after losing every one (`auth.passkey_replacement_requested`)."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if not _has_had_passkeys(user) or staff_passkeys_active(user).exists():
            raise StaffPasskeyRefused("replacement_not_needed")
        if staff_passkey_replacement_open(user=user) is not None:
            raise StaffPasskeyRefused("replacement_pending")
        now = timezone.now()
        # A request past its deadline ends here, so the one-open constraint admits the new one.
        lapsed = list(
            StaffPasskeyReplacement.objects.filter(
                requester=user,
                status__in=[PasskeyReplacementStatus.REQUESTED, PasskeyReplacementStatus.APPROVED],
            ).values_list("pk", flat=True)
        )
        StaffPasskeyReplacement.objects.filter(pk__in=lapsed).update(
            status=PasskeyReplacementStatus.CANCELLED, ended_at=now
        )
        replacement = StaffPasskeyReplacement.objects.create(
            requester=user, reason=(reason or "").strip()[:500], expires_at=now + REQUEST_LIFETIME
        )
        record(
            action="auth.passkey_replacement_requested",
            actor=Actor.for_user(user),
            target=user,
            data={
                "user": user.pk,
                "replacement": replacement.pk,
                "reason": replacement.reason,
                "expires_at": replacement.expires_at.isoformat(),
                "lapsed": lapsed,
            },
        )
        _notice(user, "replacement_requested")
    return replacement


def staff_passkey_replacement_approve(
    *, actor: User, replacement_id: int, step_up: StaffAssertion
) -> StaffPasskeyReplacement:
    """A second staff member approves a replacement with a fresh passkey answer over it.

    The approver is a tenant_admin or security_officer (the tenant's own staff, not through a
    delegation grant) of a tenant where the requester may act, and not the same person
    (`person_id`). The requester then has `REGISTRATION_WINDOW` to register a new passkey.
    """
    with transaction.atomic():
        replacement = (
            StaffPasskeyReplacement.objects.select_for_update()
            .select_related("requester")
            .filter(pk=replacement_id)
            .first()
        )
        if replacement is None:
            raise DomainError(_("No such replacement request."), code="passkey.not_found")
        if (
            replacement.status != PasskeyReplacementStatus.REQUESTED
            or replacement.expires_at <= timezone.now()
        ):
            raise StaffPasskeyRefused("replacement_not_open")
        requester = replacement.requester
        if actor.pk == requester.pk or actor.person_id == requester.person_id:
            raise StaffPasskeyRefused("replacement_same_person")
        tenant = _approval_tenant(actor, requester)
        if tenant is None:
            raise StaffPasskeyRefused("replacement_not_authorised")
        if not step_up.is_fresh_for(actor, replacement_challenge(replacement)):
            raise StaffPasskeyRefused("step_up_stale")
        now = timezone.now()
        replacement.status = PasskeyReplacementStatus.APPROVED
        replacement.approved_by, replacement.approved_in, replacement.approved_at = (
            actor,
            tenant,
            now,
        )
        replacement.expires_at = now + REGISTRATION_WINDOW
        replacement.save(
            update_fields=["status", "approved_by", "approved_in", "approved_at", "expires_at"]
        )
        record(
            action="auth.passkey_replacement_approved",
            actor=Actor.in_tenant(actor, tenant),
            target=requester,
            data={
                "user": requester.pk,
                "replacement": replacement.pk,
                "tenant": tenant.slug,
                "register_until": replacement.expires_at.isoformat(),
                "step_up": step_up.as_data(),
            },
        )
        _notice(requester, "replacement_approved", approver=actor.get_username())
    return replacement

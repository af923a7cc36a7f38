"""A thin wrapper over py_webauthn (`webauthn`) for the owner portal.

The relying party is Vouchsafe itself: its id and origin come from `settings.PUBLIC_BASE_URL`
(host, and scheme + host + port), overridable by `settings.WEBAUTHN_RP_ID` and
`settings.WEBAUTHN_ORIGINS` (a list). User verification is always required. Challenges are
generated here and kept by the caller server-side (the session or confirmation row); a
challenge the browser sends is never trusted. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
    WebAuthnException,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

if TYPE_CHECKING:
    from ..models import ProtectedAccount
    from .models import OwnerPasskey

TIMEOUT_MS = 120_000
RP_NAME = "Vouchsafe"
MAX_CREDENTIAL_JSON = 64 * 1024


class PasskeyRefused(Exception):
    """The browser's answer does not verify; `reason` is a stable code for the trail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class PasskeyCloned(PasskeyRefused):
    """A valid signature whose counter did not go up: the credential may have been copied."""

    def __init__(self, *, stored: int, presented: int) -> None:
        super().__init__("sign_count_not_increased", f"stored {stored}, presented {presented}")
        self.stored = stored
        self.presented = presented


@dataclass(frozen=True)
class RegisteredPasskey:
    credential_id: str  # base64url
    public_key: bytes
    sign_count: int
    aaguid: str
    fmt: str
    backup_eligible: bool
    backup_state: bool
    transports: list[str] = field(default_factory=list)
    user_verified: bool = True


@dataclass(frozen=True)
class VerifiedAssertion:
    credential_id: str  # base64url
    new_sign_count: int
    assertion_sha256: str  # hex digest of the raw credential JSON the browser sent
    backup_state: bool = False


def rp_id() -> str:
    configured = getattr(settings, "WEBAUTHN_RP_ID", "")
    return configured or (urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost")


def expected_origin() -> list[str]:
    configured = getattr(settings, "WEBAUTHN_ORIGINS", None)
    if configured:
        return list(configured)
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    return [f"{parts.scheme}://{parts.netloc}"]


def user_handle(account: ProtectedAccount) -> bytes:
    """A stable, opaque user id for the account (no username or e-mail goes to the device)."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"webauthn-user:{account.pk}".encode(), hashlib.sha256).digest()


def _descriptor(passkey: OwnerPasskey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def registration_options(
    account: ProtectedAccount, existing: list[OwnerPasskey]
) -> tuple[str, bytes]:
    """Options for `navigator.credentials.create()` and the challenge to keep server-side."""
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=RP_NAME,
        user_id=user_handle(account),
        user_name=account.username,
        user_display_name=account.display_name or account.username,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.DIRECT,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    return options_to_json(options), options.challenge


def _parsed(credential_json: str) -> dict:
    if not isinstance(credential_json, str) or len(credential_json) > MAX_CREDENTIAL_JSON:
        raise PasskeyRefused("malformed", "missing or too large")
    try:
        data = json.loads(credential_json)
    except ValueError as error:
        raise PasskeyRefused("malformed", "not JSON") from error
    if not isinstance(data, dict):
        raise PasskeyRefused("malformed", "not an object")
    return data


def _reason(message: str) -> str:
    """A stable code for py_webauthn's message (its wording is not an interface)."""
    text = message.lower()
    for needle, code in (
        ("origin", "origin_mismatch"),
        ("challenge", "challenge_mismatch"),
        ("rp id", "rp_id_mismatch"),
        ("user verification", "user_not_verified"),
        ("user presence", "user_not_present"),
        ("user was not present", "user_not_present"),
        ("signature", "bad_signature"),
        ("client data type", "wrong_ceremony"),
        ("attestation", "attestation_invalid"),
        ("alg", "algorithm_not_supported"),
    ):
        if needle in text:
            return code
    return "invalid_response"


def registration_verify(
    credential_json: str, challenge: bytes, allowed_formats: list[str] | tuple[str, ...]
) -> RegisteredPasskey:
    """Verify the browser's `create()` answer, or raise `PasskeyRefused(reason)`."""
    data = _parsed(credential_json)
    try:
        verified = verify_registration_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            require_user_verification=True,
        )
    except (InvalidRegistrationResponse, InvalidJSONStructure) as error:
        raise PasskeyRefused(_reason(str(error)), str(error)[:200]) from error
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused("malformed", type(error).__name__) from error
    fmt = str(getattr(verified.fmt, "value", verified.fmt))
    if fmt not in allowed_formats:
        raise PasskeyRefused("attestation_format_not_allowed", fmt)
    if not verified.user_verified:  # the library checked it; this keeps the rule visible
        raise PasskeyRefused("user_not_verified")
    response = data.get("response") if isinstance(data.get("response"), dict) else {}
    transports = [t for t in response.get("transports") or [] if isinstance(t, str)][:8]
    return RegisteredPasskey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        fmt=fmt,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backup_state=verified.credential_backed_up,
        transports=transports,
        user_verified=verified.user_verified,
    )


def assertion_options(passkeys: list[OwnerPasskey], challenge: bytes) -> str:
    """Options for `navigator.credentials.get()` over the caller's server-side challenge."""
    options = generate_authentication_options(
        rp_id=rp_id(),
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(p) for p in passkeys],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def assertion_verify(
    credential_json: str, challenge: bytes, passkey: OwnerPasskey
) -> VerifiedAssertion:
    """Verify the browser's `get()` answer against `passkey`.

    Raises `PasskeyRefused(reason)`, or `PasskeyCloned` when the signature is good but the
    counter did not go up (when either counter is non-zero): only a valid signature can
    disable a passkey, so a forged answer cannot be used to lock the owner out.
    """
    data = _parsed(credential_json)
    if data.get("id") != passkey.credential_id or data.get("rawId") != passkey.credential_id:
        raise PasskeyRefused("unknown_credential")
    try:
        verified = verify_authentication_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            credential_public_key=bytes(passkey.public_key),
            # The counter is checked below, after the signature, to tell a clone apart.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, InvalidJSONStructure) as error:
        raise PasskeyRefused(_reason(str(error)), str(error)[:200]) from error
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused("malformed", type(error).__name__) from error
    stored, presented = passkey.sign_count, verified.new_sign_count
    if (stored > 0 or presented > 0) and presented <= stored:
        raise PasskeyCloned(stored=stored, presented=presented)
    return VerifiedAssertion(
        credential_id=passkey.credential_id,
        new_sign_count=presented,
        assertion_sha256=hashlib.sha256(credential_json.encode()).hexdigest(),
        backup_state=verified.credential_backed_up,
    )

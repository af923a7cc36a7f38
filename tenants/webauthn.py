"""A thin wrapper over py_webauthn (`webauthn`): the ceremonies staff and owners share.

The relying party is Vouchsafe itself: its id and origin come from `settings.PUBLIC_BASE_URL`
(host, and scheme + host + port), overridable by `settings.WEBAUTHN_RP_ID` and
`settings.WEBAUTHN_ORIGINS` (a list). User verification is always required. Challenges are
generated here or given by the caller, and kept by the caller server-side (the session, the
cache or a row); a challenge the browser sends is never trusted. Nothing here touches the
database: a stored credential is anything with the fields of `StoredCredential`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Protocol
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

TIMEOUT_MS = 120_000
RP_NAME = "Vouchsafe"
MAX_CREDENTIAL_JSON = 64 * 1024


class StoredCredential(Protocol):
    """What a registered passkey row keeps (owner or staff)."""

    credential_id: str  # base64url
    public_key: bytes
    sign_count: int
    transports: list[str]


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

    def stored_fields(self) -> dict[str, object]:
        """The columns of a `WebAuthnCredential` this registration fills."""
        return {
            "credential_id": self.credential_id,
            "public_key": self.public_key,
            "sign_count": self.sign_count,
            "aaguid": self.aaguid,
            "attestation_format": self.fmt,
            "backup_eligible": self.backup_eligible,
            "backup_state": self.backup_state,
            "transports": self.transports,
        }


@dataclass(frozen=True)
class VerifiedAssertion:
    """A verified `get()` answer, with the signed parts (base64url) an outsider re-checks."""

    credential_id: str  # base64url
    new_sign_count: int
    assertion_sha256: str  # hex digest of the raw credential JSON the browser sent
    authenticator_data: str
    client_data_json: str
    signature: str
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


def opaque_user_handle(name: str) -> bytes:
    """A stable, opaque WebAuthn user id for `name` (no username or e-mail goes to the device)."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, name.encode(), hashlib.sha256).digest()


def _descriptor(passkey: StoredCredential) -> PublicKeyCredentialDescriptor:
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
    *,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    existing: list[Any],
    resident_key: ResidentKeyRequirement = ResidentKeyRequirement.PREFERRED,
) -> tuple[str, bytes]:
    """Options for `navigator.credentials.create()` and the challenge to keep server-side.

    `existing` (StoredCredential rows) are excluded, so one device is not registered twice.
    """
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=RP_NAME,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name or user_name,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.DIRECT,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=resident_key,
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


def registration_answer(body: bytes) -> tuple[str, str] | None:
    """The browser's registration answer posted as `{"credential": <PublicKeyCredential>,
    "label": "..."}`: the credential as JSON text and the label ("" when absent), or None
    when there is no credential to verify."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    credential = data.get("credential")
    if isinstance(credential, dict):
        credential = json.dumps(credential)
    if not isinstance(credential, str):
        return None
    label = data.get("label")
    return credential, label if isinstance(label, str) else ""


def credential_id_of(credential_json: str) -> str:
    """The credential id (base64url) a browser answer names, or "" (nothing is verified)."""
    try:
        value = _parsed(credential_json).get("id")
    except PasskeyRefused:
        return ""
    return value if isinstance(value, str) else ""


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


def assertion_options(passkeys: list[Any], challenge: bytes) -> str:
    """Options for `navigator.credentials.get()` over the caller's server-side challenge."""
    options = generate_authentication_options(
        rp_id=rp_id(),
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(p) for p in passkeys],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def _signed_parts(data: dict) -> tuple[str, str, str]:
    response = data.get("response") if isinstance(data.get("response"), dict) else {}
    parts = (
        response.get("authenticatorData"),
        response.get("clientDataJSON"),
        response.get("signature"),
    )
    if not all(isinstance(part, str) for part in parts):
        raise PasskeyRefused("malformed", "response parts missing")
    return parts  # type: ignore[return-value]


def assertion_digest(credential_json: str) -> str:
    """SHA-256 (hex) of the credential id and what a `get()` answer's signature covers
    (authenticator data, then the client data hash): one ceremony of one credential, however
    re-encoded or re-signed. "" when malformed."""
    try:
        data = _parsed(credential_json)
        authenticator_data, client_data_json, _signature = _signed_parts(data)
        signed = (
            base64url_to_bytes(authenticator_data)
            + hashlib.sha256(base64url_to_bytes(client_data_json)).digest()
        )
    except (PasskeyRefused, ValueError):
        return ""
    credential_id = data.get("id")
    if not isinstance(credential_id, str):
        return ""
    return hashlib.sha256(credential_id.encode() + b"\x00" + signed).hexdigest()


def _host_suffixes(origin: str) -> list[str]:
    """The relying party ids an origin may use: its host and each parent domain of it."""
    labels = (urlsplit(origin).hostname or "").split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


def _authentication_checked(
    credential: dict,
    challenge: bytes,
    public_key: bytes,
    *,
    origins: list[str] | None = None,
    rp: str | None = None,
) -> Any:
    """py_webauthn's verification of a `get()` answer, its errors as `PasskeyRefused`.

    The counter is left to the caller (given as 0 here), to tell a clone apart after the
    signature holds.
    """
    try:
        return verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp or rp_id(),
            expected_origin=origins or expected_origin(),
            credential_public_key=bytes(public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, InvalidJSONStructure) as error:
        raise PasskeyRefused(_reason(str(error)), str(error)[:200]) from error
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused("malformed", type(error).__name__) from error


def assertion_verify(
    credential_json: str, challenge: bytes, passkey: StoredCredential
) -> VerifiedAssertion:
    """Verify the browser's `get()` answer against `passkey`.

    Raises `PasskeyRefused(reason)`, or `PasskeyCloned` when the signature is good but the
    counter did not go up (when either counter is non-zero): only a valid signature can
    disable a passkey, so a forged answer cannot be used to lock its holder out.
    """
    data = _parsed(credential_json)
    if data.get("id") != passkey.credential_id or data.get("rawId") != passkey.credential_id:
        raise PasskeyRefused("unknown_credential")
    verified = _authentication_checked(data, challenge, passkey.public_key)
    stored, presented = passkey.sign_count, verified.new_sign_count
    if (stored > 0 or presented > 0) and presented <= stored:
        raise PasskeyCloned(stored=stored, presented=presented)
    authenticator_data, client_data_json, signature = _signed_parts(data)
    return VerifiedAssertion(
        credential_id=passkey.credential_id,
        new_sign_count=presented,
        assertion_sha256=hashlib.sha256(credential_json.encode()).hexdigest(),
        authenticator_data=authenticator_data,
        client_data_json=client_data_json,
        signature=signature,
        backup_state=verified.credential_backed_up,
    )


def assertion_reverify(
    *,
    credential_id: str,
    authenticator_data: str,
    client_data_json: str,
    signature: str,
    public_key: bytes,
    challenge: bytes,
) -> None:
    """Check again, later and from the stored parts, that a recorded assertion is a valid
    user-verified signature by `public_key` over `challenge` for this relying party.

    The counter is not checked (it has moved on since), nor the origin and relying party id
    against today's settings: both were checked at the time of use, and a deployment may move
    since (a verifier in another process, a new port). The origin the browser signed is taken
    as recorded, and the relying party id must be that origin's host or a parent domain of it;
    the challenge, user verification and the signature are checked.
    Raises `PasskeyRefused(reason)`.
    """
    try:
        signed_origin = str(json.loads(base64url_to_bytes(client_data_json))["origin"])
        signed_rp_id_hash = base64url_to_bytes(authenticator_data)[:32]
    except (ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused("malformed", type(error).__name__) from error
    rp_ids = _host_suffixes(signed_origin)
    signed_rp_id = next(
        (rp for rp in rp_ids if hashlib.sha256(rp.encode()).digest() == signed_rp_id_hash), None
    )
    if signed_rp_id is None:
        raise PasskeyRefused("rp_id_mismatch", "signed for no relying party of its origin")
    credential = {
        "id": credential_id,
        "rawId": credential_id,
        "type": "public-key",
        "response": {
            "authenticatorData": authenticator_data,
            "clientDataJSON": client_data_json,
            "signature": signature,
        },
        "clientExtensionResults": {},
    }
    _authentication_checked(
        credential, challenge, public_key, origins=[signed_origin], rp=signed_rp_id
    )

"""Step-up: a fresh proof of presence verified inside the request of a privileged action.

Two kinds (`StepUpKind`): a staff passkey's assertion over a challenge the server issued for
that one action (phishing-resistant: the browser binds it to our origin), or a TOTP code. The
caller says which kinds the action accepts (`require_fresh_step_up(kinds=…)`); the platform
floor keeps T2 approvals and every execution to passkeys (recovery/policy/floors.py).

django-otp's session verification lasts the whole session; that does not count here. Email OTP
never qualifies (email may be the compromised channel) and backup codes are for signing in,
not for approving.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from .choices import StepUpKind
from .exceptions import StepUpFailed
from .lockout import FailureNotRecorded, is_locked, register_failure, register_success
from .models import StepUpUse, User
from .passkeys import StaffPasskeyRefused, staff_assertion_reverify, staff_assertion_verify

PROOF_MAX_AGE = timedelta(seconds=120)
_SALT = "vouchsafe.stepup"

# Set when a step-up is verified in the current request; SessionRotationMiddleware then gives
# the session a new key on the way out (a privilege change, like the sign-in steps).
_verified_in_request: ContextVar[bool] = ContextVar("stepup_verified_in_request", default=False)


def step_up_verified_in_request() -> bool:
    return _verified_in_request.get()


def step_up_request_start() -> object:
    """Start a request with no step-up seen; returns the token to reset with at its end."""
    return _verified_in_request.set(False)


def step_up_request_end(token: object) -> None:
    _verified_in_request.reset(token)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepUpProof:
    """Evidence that `user_id` presented a fresh token from `device_id` at `verified_at`.

    For a passkey, `assertion` is the verified assertion as it is stored with the action
    (`StaffAssertion.as_data()` plus `inputs`, the caller's description of what the challenge
    was computed from), as canonical JSON; "" for a TOTP code.
    """

    user_id: int
    device_id: str
    device_type: str
    verified_at: datetime
    nonce: str
    signature: str
    assertion: str = ""

    @property
    def stored_assertion(self) -> dict[str, Any]:
        return json.loads(self.assertion) if self.assertion else {}

    @property
    def inputs(self) -> dict[str, Any]:
        """What the passkey's challenge was computed from (empty for TOTP)."""
        return self.stored_assertion.get("inputs", {})

    def audit_data(self) -> dict[str, Any]:
        data = {
            "device": self.device_id,
            "device_type": self.device_type,
            "verified_at": self.verified_at.isoformat(),
            "proof": self.nonce,
        }
        if self.assertion:
            data["assertion_sha256"] = hashlib.sha256(self.assertion.encode()).hexdigest()
        return data

    def stored_data(self) -> dict[str, Any]:
        """What the approval or execution row keeps: the audit data and the whole assertion."""
        if not self.assertion:
            return self.audit_data()
        return {**self.audit_data(), "assertion": self.stored_assertion}


def _signature(
    user_id: int,
    device_id: str,
    device_type: str,
    verified_at: datetime,
    nonce: str,
    assertion: str = "",
) -> str:
    payload = f"{user_id}|{device_id}|{device_type}|{verified_at.isoformat()}|{nonce}"
    if assertion:
        payload += f"|{hashlib.sha256(assertion.encode()).hexdigest()}"
    return signing.Signer(salt=_SALT).signature(payload)


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _count_refusal(user: User) -> None:
    """Count a refused step-up towards the lockout; if the refusal could not be recorded in
    the trail, refuse with that instead (it is counted all the same)."""
    try:
        register_failure(user, kind="step_up")
    except FailureNotRecorded as refused:
        raise StepUpFailed(refused.message, code=refused.code) from refused


def step_up_passkey_verify(
    *, user: User, challenge: bytes, credential_json: str, inputs: dict[str, Any]
) -> StepUpProof:
    """Verify a passkey answer of `user` over `challenge` (issued and kept by the server for
    one action; `inputs` says what it was computed from) now, or raise StepUpFailed.

    Like `step_up_verify`, call it before the transaction of the action: the spent answer
    and the passkey's new counter commit on their own. A refusal counts towards the lockout.
    """
    if is_locked(user):
        raise StepUpFailed(
            "This account is locked after too many failed attempts.", code="stepup.account_locked"
        )
    try:
        verified = staff_assertion_verify(
            user=user, challenge=challenge, credential_json=credential_json
        )
    except StaffPasskeyRefused as refused:
        _count_refusal(user)
        raise StepUpFailed(refused.message, code=refused.code) from refused
    register_success(user)
    _verified_in_request.set(True)
    assertion = _canonical({**verified.as_data(), "inputs": inputs})
    nonce = challenge.hex()  # one challenge authorises one action (StepUpUse)
    device_type = StepUpKind.PASSKEY.value
    return StepUpProof(
        user_id=user.pk,
        device_id=verified.credential_id,
        device_type=device_type,
        verified_at=verified.verified_at,
        nonce=nonce,
        signature=_signature(
            user.pk, verified.credential_id, device_type, verified.verified_at, nonce, assertion
        ),
        assertion=assertion,
    )


def step_up_assertion_problem(stored: dict[str, Any], challenge: bytes) -> str | None:
    """Check a stored passkey step-up again (audit verification): its passkey's signature
    over `challenge`, recomputed by the caller from what the action recorded. None when it
    holds, else the reason code (`passkey.bad_signature`, `passkey.challenge_mismatch` …)."""
    try:
        staff_assertion_reverify(stored, challenge=challenge)
    except StaffPasskeyRefused as refused:
        return refused.code
    return None


def step_up_verify(*, user: User, token: str) -> StepUpProof:
    """Verify `token` against the user's confirmed TOTP devices now, or raise StepUpFailed."""
    token = (token or "").strip().replace(" ", "")
    if is_locked(user):
        raise StepUpFailed(
            "This account is locked after too many failed attempts.", code="stepup.account_locked"
        )
    if not token.isdigit():
        _count_refusal(user)
        raise StepUpFailed(
            "Enter the 6-digit code from your authenticator app.", code="stepup.token_missing"
        )
    for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
        allowed, _ = device.verify_is_allowed()
        if allowed and device.verify_token(token):
            register_success(user)
            _verified_in_request.set(True)
            verified_at = timezone.now()
            nonce = secrets.token_hex(16)
            device_type = StepUpKind.TOTP.value
            return StepUpProof(
                user_id=user.pk,
                device_id=device.persistent_id,
                device_type=device_type,
                verified_at=verified_at,
                nonce=nonce,
                signature=_signature(
                    user.pk, device.persistent_id, device_type, verified_at, nonce
                ),
            )
    _count_refusal(user)
    raise StepUpFailed(
        "That authenticator code is not valid (it may have been used already).",
        code="stepup.invalid_token",
    )


def require_fresh_step_up(
    proof: StepUpProof | None, user: User, *, kinds: Iterable[str] = tuple(StepUpKind.values)
) -> StepUpProof:
    """Check, inside a service, that `proof` was issued to `user` just now with one of
    `kinds`, and spend it.

    Call it inside the transaction of the privileged action: the proof is consumed with it,
    so one code or passkey answer authorises exactly one action.
    """
    kinds = tuple(kinds)
    passkey_only = StepUpKind.TOTP.value not in kinds
    if proof is None:
        raise StepUpFailed(
            "This action needs a fresh confirmation with your passkey."
            if passkey_only
            else "This action needs a fresh confirmation: your passkey or a code from your "
            "authenticator app.",
            code="stepup.required",
        )
    expected = _signature(
        proof.user_id,
        proof.device_id,
        proof.device_type,
        proof.verified_at,
        proof.nonce,
        proof.assertion,
    )
    if not signing.constant_time_compare(expected, proof.signature) or proof.user_id != user.pk:
        raise StepUpFailed(
            "The step-up proof is not valid for this user.", code="stepup.invalid_proof"
        )
    if proof.device_type not in kinds:
        raise StepUpFailed(
            "This action needs a phishing-resistant step-up: confirm with your passkey (an "
            "authenticator app code is not accepted here).",
            code="stepup.kind_refused",
        )
    if timezone.now() - proof.verified_at > PROOF_MAX_AGE:
        raise StepUpFailed(
            "The step-up was verified too long ago; confirm again.",
            code="stepup.stale",
        )
    try:
        with transaction.atomic():
            StepUpUse.objects.create(nonce=proof.nonce, user_id=user.pk)
    except IntegrityError:
        raise StepUpFailed(
            "This step-up was already used for another action; confirm again.",
            code="stepup.proof_reused",
        ) from None
    return proof

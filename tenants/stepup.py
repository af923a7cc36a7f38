"""Step-up: a fresh TOTP token verified inside the request of a privileged action.

django-otp's session verification lasts the whole session; that does not count here. Only
TOTP devices qualify — email OTP never does (email may be the compromised channel) and
backup codes are for signing in, not for approving.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from .exceptions import StepUpFailed
from .lockout import is_locked, register_failure, register_success
from .models import StepUpUse, User

PROOF_MAX_AGE = timedelta(seconds=120)
_SALT = "vouchsafe.stepup"


@dataclass(frozen=True)
class StepUpProof:
    """Evidence that `user_id` presented a fresh token from `device_id` at `verified_at`."""

    user_id: int
    device_id: str
    device_type: str
    verified_at: datetime
    nonce: str
    signature: str

    def audit_data(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "device_type": self.device_type,
            "verified_at": self.verified_at.isoformat(),
            "proof": self.nonce,
        }


def _signature(
    user_id: int, device_id: str, device_type: str, verified_at: datetime, nonce: str
) -> str:
    payload = f"{user_id}|{device_id}|{device_type}|{verified_at.isoformat()}|{nonce}"
    return signing.Signer(salt=_SALT).signature(payload)


def step_up_verify(*, user: User, token: str) -> StepUpProof:
    """Verify `token` against the user's confirmed TOTP devices now, or raise StepUpFailed."""
    token = (token or "").strip().replace(" ", "")
    if is_locked(user):
        raise StepUpFailed(
            "This account is locked after too many failed attempts.", code="stepup.account_locked"
        )
    if not token.isdigit():
        register_failure(user, kind="step_up")
        raise StepUpFailed(
            "Enter the 6-digit code from your authenticator app.", code="stepup.token_missing"
        )
    for device in TOTPDevice.objects.devices_for_user(user, confirmed=True):
        allowed, _ = device.verify_is_allowed()
        if allowed and device.verify_token(token):
            register_success(user)
            verified_at = timezone.now()
            nonce = secrets.token_hex(16)
            return StepUpProof(
                user_id=user.pk,
                device_id=device.persistent_id,
                device_type="totp",
                verified_at=verified_at,
                nonce=nonce,
                signature=_signature(user.pk, device.persistent_id, "totp", verified_at, nonce),
            )
    register_failure(user, kind="step_up")
    raise StepUpFailed(
        "That authenticator code is not valid (it may have been used already).",
        code="stepup.invalid_token",
    )


def require_fresh_step_up(proof: StepUpProof | None, user: User) -> StepUpProof:
    """Check, inside a service, that `proof` was issued to `user` just now, and spend it.

    Call it inside the transaction of the privileged action: the proof is consumed with it,
    so one code authorises exactly one action.
    """
    if proof is None:
        raise StepUpFailed(
            "This action needs a fresh code from your authenticator app.", code="stepup.required"
        )
    expected = _signature(
        proof.user_id, proof.device_id, proof.device_type, proof.verified_at, proof.nonce
    )
    if not signing.constant_time_compare(expected, proof.signature) or proof.user_id != user.pk:
        raise StepUpFailed(
            "The step-up proof is not valid for this user.", code="stepup.invalid_proof"
        )
    if timezone.now() - proof.verified_at > PROOF_MAX_AGE:
        raise StepUpFailed(
            "The authenticator code was verified too long ago; enter a new one.",
            code="stepup.stale",
        )
    try:
        with transaction.atomic():
            StepUpUse.objects.create(nonce=proof.nonce, user_id=user.pk)
    except IntegrityError:
        raise StepUpFailed(
            "This authenticator code was already used for another action; enter a new one.",
            code="stepup.proof_reused",
        ) from None
    return proof

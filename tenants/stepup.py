"""Step-up: a fresh TOTP token verified inside the request of a privileged action.

django-otp's session verification lasts the whole session; that does not count here. Only
TOTP devices qualify — email OTP never does (email may be the compromised channel) and
backup codes are for signing in, not for approving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from .exceptions import StepUpFailed
from .lockout import is_locked, register_failure, register_success
from .models import User

PROOF_MAX_AGE = timedelta(seconds=120)
_SALT = "vouchsafe.stepup"


@dataclass(frozen=True)
class StepUpProof:
    """Evidence that `user_id` presented a fresh token from `device_id` at `verified_at`."""

    user_id: int
    device_id: str
    device_type: str
    verified_at: datetime
    signature: str

    def audit_data(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "device_type": self.device_type,
            "verified_at": self.verified_at.isoformat(),
        }


def _payload(user_id: int, device_id: str, verified_at: datetime) -> str:
    return f"{user_id}|{device_id}|{verified_at.isoformat()}"


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
            signer = signing.Signer(salt=_SALT)
            return StepUpProof(
                user_id=user.pk,
                device_id=device.persistent_id,
                device_type="totp",
                verified_at=verified_at,
                signature=signer.signature(_payload(user.pk, device.persistent_id, verified_at)),
            )
    register_failure(user, kind="step_up")
    raise StepUpFailed(
        "That authenticator code is not valid (it may have been used already).",
        code="stepup.invalid_token",
    )


def require_fresh_step_up(proof: StepUpProof | None, user: User) -> StepUpProof:
    """Check, inside a service, that `proof` was issued to `user` by step_up_verify just now."""
    if proof is None:
        raise StepUpFailed(
            "This action needs a fresh code from your authenticator app.", code="stepup.required"
        )
    signer = signing.Signer(salt=_SALT)
    expected = signer.signature(_payload(proof.user_id, proof.device_id, proof.verified_at))
    if not signing.constant_time_compare(expected, proof.signature) or proof.user_id != user.pk:
        raise StepUpFailed(
            "The step-up proof is not valid for this user.", code="stepup.invalid_proof"
        )
    if timezone.now() - proof.verified_at > PROOF_MAX_AGE:
        raise StepUpFailed(
            "The authenticator code was verified too long ago; enter a new one.",
            code="stepup.stale",
        )
    return proof

"""Staff passkeys in Python tests: a soft authenticator enrolled for a staff user, and answers
it signs over any challenge (built on tests/owner/softkey.py).

    key = staff_passkey_enrol(user)                     # the user's first passkey
    assertion = staff_assertion_verify(user=user, challenge=c, credential_json=staff_sign(key, c))
"""

from __future__ import annotations

import json
import os

from webauthn.helpers import bytes_to_base64url

from tenants import webauthn
from tenants.models import User
from tenants.passkeys import (
    staff_assertion_verify,
    staff_passkey_register,
    staff_passkey_registration_begin,
)

from .owner.softkey import SoftKey


def soft_key() -> SoftKey:
    """A new soft authenticator for this relying party (origin and RP id from the settings)."""
    return SoftKey(origin=webauthn.expected_origin()[0], rp_id=webauthn.rp_id())


def staff_sign(
    softkey: SoftKey,
    challenge: bytes,
    *,
    user_verified: bool = True,
    origin: str | None = None,
    sign_count: int | None = None,
) -> str:
    """The browser's JSON for `navigator.credentials.get()` over `challenge`, signed by
    `softkey`; its counter goes up unless `sign_count` is given (a lower one is a clone)."""
    options = json.dumps({"challenge": bytes_to_base64url(challenge), "rpId": webauthn.rp_id()})
    verified, softkey.user_verified = softkey.user_verified, user_verified
    try:
        return softkey.get(options, origin=origin, sign_count=sign_count)
    finally:
        softkey.user_verified = verified


def staff_passkey_enrol(
    user: User, *, name: str = "Test passkey", proven_with: SoftKey | None = None
) -> SoftKey:
    """Register a new soft passkey for `user` through the services and return it.

    The user's first passkey needs nothing more; a further one needs `proven_with`, one of the
    user's active soft passkeys, which answers a fresh step-up first.
    """
    step_up = None
    if proven_with is not None:
        challenge = os.urandom(32)
        step_up = staff_assertion_verify(
            user=user, challenge=challenge, credential_json=staff_sign(proven_with, challenge)
        )
    start = staff_passkey_registration_begin(user=user, step_up=step_up)
    key = soft_key()
    staff_passkey_register(
        user=user, start=start, credential_json=key.create(start.options_json), name=name
    )
    return key

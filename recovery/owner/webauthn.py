"""The owner portal's side of WebAuthn: the account's user handle and registration options.

The ceremonies themselves (relying party, options, verification, clone detection) are the
shared wrapper `tenants.webauthn`, re-exported here for the owner modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenants.webauthn import (
    TIMEOUT_MS,
    PasskeyCloned,
    PasskeyRefused,
    RegisteredPasskey,
    VerifiedAssertion,
    assertion_options,
    assertion_verify,
    expected_origin,
    opaque_user_handle,
    registration_verify,
    rp_id,
)
from tenants.webauthn import registration_options as _registration_options

if TYPE_CHECKING:
    from ..models import ProtectedAccount
    from .models import OwnerPasskey

__all__ = [
    "TIMEOUT_MS",
    "PasskeyCloned",
    "PasskeyRefused",
    "RegisteredPasskey",
    "VerifiedAssertion",
    "assertion_options",
    "assertion_verify",
    "expected_origin",
    "registration_options",
    "registration_verify",
    "rp_id",
    "user_handle",
]


def user_handle(account: ProtectedAccount) -> bytes:
    """A stable, opaque user id for the account (no username or e-mail goes to the device)."""
    return opaque_user_handle(f"webauthn-user:{account.pk}")


def registration_options(
    account: ProtectedAccount, existing: list[OwnerPasskey]
) -> tuple[str, bytes]:
    """Options for `navigator.credentials.create()` and the challenge to keep server-side."""
    return _registration_options(
        user_handle=user_handle(account),
        user_name=account.username,
        display_name=account.display_name,
        existing=existing,
    )

"""The secrets of a challenge: made by a CSPRNG, stored only as hashes (R-29).

- A one-time code has 6 digits (SMS, voice: at most 10 minutes) or 8 (email: up to 24 hours).
  Under 112 bits, so it is stored salted and hashed with Django's password hasher
  (`make_password`) and compared with `check_password` (constant time).
- A link token has 256 bits (`secrets.token_urlsafe(32)`). It is stored as its SHA-256, which
  is enough for a secret that cannot be guessed, and lets the link find its row.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from django.contrib.auth.hashers import check_password, make_password

from .choices import ChallengeChannel

CODE_DIGITS = {ChallengeChannel.SMS: 6, ChallengeChannel.VOICE: 6, ChallengeChannel.EMAIL: 8}
LINK_TOKEN_BYTES = 32
_SEPARATORS = re.compile(r"[\s-]+")


def code_new(channel: str) -> str:
    """A fresh numeric code for `channel`, uniformly drawn, with leading zeros kept."""
    digits = CODE_DIGITS[channel]
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_hash(code: str) -> str:
    """The salted slow hash stored in place of the code."""
    return make_password(code)


def code_normalise(code: str) -> str:
    """What the owner read out, as typed by the agent: spaces and dashes removed."""
    return _SEPARATORS.sub("", code or "")


def code_matches(code: str, encoded: str) -> bool:
    """Whether `code` is the one hashed in `encoded` (constant-time; False for no hash)."""
    if not encoded or not code:
        return False
    return check_password(code, encoded)


def link_token_new() -> str:
    """A fresh link token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def link_digest(token: str) -> str:
    """The SHA-256 hex digest stored for a link token."""
    return hashlib.sha256((token or "").encode("utf-8", "replace")).hexdigest()

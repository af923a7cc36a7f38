"""Webhook signatures: `Vouchsafe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The MAC covers `f"{t}.".encode() + raw_body`, so neither the body nor the timestamp can be
changed; a receiver refuses a timestamp outside its tolerance (a replayed old request) and
remembers `Vouchsafe-Delivery` ids it has processed (a replay inside the tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _mac(secret: str, timestamp: int, body: bytes | str) -> str:
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The Vouchsafe-Signature header value for `body` sent at `timestamp`."""
    return f"t={int(timestamp)},{SCHEME}={_mac(secret, int(timestamp), body)}"


def _parse(header: str) -> tuple[int | None, list[str]]:
    timestamp, macs = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == SCHEME and value:
            macs.append(value)
    return timestamp, macs


def verify(
    secret: str,
    header: str,
    body: bytes | str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` signs exactly `body` with `secret` and its time is within tolerance.

    Any `v1` value may match (a header can carry several); each is compared in constant time.
    """
    timestamp, macs = _parse(header or "")
    if timestamp is None or not macs:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, timestamp, body).encode()
    matched = False
    for candidate in macs:  # bytes: compare_digest refuses non-ASCII str
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched

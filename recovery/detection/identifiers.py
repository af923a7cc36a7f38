"""Caller identifiers as data (R-49, R-55 d, R-56): normalised, kept as a keyed hash and a
masked hint, compared by hash only. The value an agent typed is never stored or logged.

The key is Django's `salted_hmac` over `CALLER_ID_HASH_KEY` (the `SECRET_KEY` unless set): a
database reader cannot test guesses without it. Changing it makes earlier identifiers and the
watch-list unmatchable, so keep it when rotating `SECRET_KEY` (docs/detection.md).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from .choices import CallerKind

SALT = "vouchsafe.recovery.detection.caller"
MASK = "•••"
_NOT_DIGIT = re.compile(r"\D")
_SPACES = re.compile(r"\s+")
_NAME_NOISE = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class CallerValue:
    """One identifier as the case keeps it."""

    kind: str
    digest: str
    hint: str


def normalised(kind: str, value: str) -> str:
    """The form two spellings of one identifier share: a number's digits (a leading + kept),
    an address or handle in lower case, a name case-folded without accents or punctuation."""
    value = unicodedata.normalize("NFKC", value).strip()
    if kind == CallerKind.NUMBER:
        digits = _NOT_DIGIT.sub("", value)
        return f"+{digits}" if value.startswith("+") else digits
    if kind == CallerKind.NAME:
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c)
        )
        return _SPACES.sub(" ", _NAME_NOISE.sub(" ", plain.casefold())).strip()
    return value.casefold()


def hint_of(kind: str, value: str) -> str:
    """What people see: enough to recognise the identifier, not to use it."""
    if kind == CallerKind.NUMBER:
        return f"{MASK}{value[-3:]}" if len(value) > 3 else MASK
    if kind == CallerKind.EMAIL and "@" in value:
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}{MASK}@{domain}"
    return f"{value[:1]}{MASK}" if value else MASK


def caller_value(kind: str, raw: str) -> CallerValue | None:
    """The identifier's digest and hint, or None when nothing is left once normalised."""
    value = normalised(kind, raw)
    if len(value.lstrip("+")) < 2:
        return None
    key = getattr(settings, "CALLER_ID_HASH_KEY", "") or settings.SECRET_KEY
    digest = salted_hmac(f"{SALT}.{kind}", value, secret=key, algorithm="sha256").hexdigest()
    return CallerValue(kind=kind, digest=digest, hint=hint_of(kind, value)[:64])

"""Masking secrets in free text before it is stored (R-49). Pure functions, no database.

Two passes, each replacing what it finds with `MASK`:

1. **Labelled values.** A secret label (`password`, `passcode`, `pin`, `otp`, `token`, `secret`,
   `recovery code` …) followed by its value. After `:` or `=` the next word (or a quoted
   phrase) is masked whatever it is. After a space or `is`/`was` it is masked only when it looks
   like a value rather than prose: it holds a digit or a symbol, or an upper-case letter after
   its first character (`pin 4711`, `otp 123456`, `password is hunter2`, but not
   `the token expired` or `pin the ticket`).
2. **High-entropy runs.** A whitespace-delimited run (surrounding quotes and brackets trimmed)
   is masked when it, or one of its pieces between `/ ? & = # : @`, is *token-like*:
   - at least `MIN_TOKEN_LENGTH` (20) characters,
   - letters together with digits or symbols,
   - Shannon entropy of its characters at least `MIN_ENTROPY_BITS` (3.0 bits per character),
   - and its letters and digits, cut into camel-case words and numbers (`getUserById2` is
     get/User/By/Id/2), give words of at most `MAX_MEAN_WORD_LENGTH` (3.0) characters on
     average.

Why these thresholds: measured on random strings, they catch about 96 % of 20-character and
more than 99 % of 32-character base62 tokens, about 95 % of hex tokens of 32 characters or more
and of UUIDs, and more than 99 % of base64 tokens of 24 bytes or more. Entropy alone cannot tell
a token from a host name or an e-mail address (`SRV-FIN-DB01.corp.example.com` has 4.3 bits per
character); the word length can: prose, identifiers, host names, e-mail addresses, file paths,
ISO timestamps and ticket numbers (`INC-00012345`, `REQ00123456-RITM0045678`) are made of words
of four characters or more, while random tokens break into pieces of about two. Ordinary words
are also stopped by the letters-and-more rule. It is a heuristic: it can mask a device serial
number and miss a short or low-entropy password, which is why labelled values come first. A
note with anything masked is flagged for review.
"""

from __future__ import annotations

import math
import re
from collections import Counter

MASK = "[masked secret]"
MIN_TOKEN_LENGTH = 20
MIN_ENTROPY_BITS = 3.0
MAX_MEAN_WORD_LENGTH = 3.0

_LABEL = (
    r"pass(?:word|wd|code|phrase)s?|pwd|pin|otp|one[- ]time (?:pass)?code|tokens?|secrets?"
    r"|(?:recovery|backup|verification|security|access) codes?|api[- _]?key"
)
_LABELLED = re.compile(
    rf"\b(?P<label>{_LABEL})\b"
    r"(?P<sep>\s*[:=]\s*|\s+(?:is|was)\s*[:=]?\s*|\s+)"
    rf"(?!{re.escape(MASK)})"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|\S+)",
    re.IGNORECASE,
)
_TRIM = "\"'`()[]{}<>,;.!?"
_PIECES = re.compile(r"[/?&=#:@]")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def _looks_like_a_value(value: str) -> bool:
    """A word after a loose separator is a secret only if it is unlike prose."""
    word = value.rstrip(".,;:!?)")
    return bool(word) and (any(not c.isalpha() for c in word) or any(c.isupper() for c in word[1:]))


def _mask_labelled(match: re.Match[str]) -> str:
    strict = any(c in match["sep"] for c in ":=")
    if not strict and not _looks_like_a_value(match["value"]):
        return match[0]
    return f"{match['label']}{match['sep']}{MASK}"


def shannon_entropy(text: str) -> float:
    """Bits per character of the character distribution of `text`."""
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def mean_word_length(text: str) -> float:
    """Mean length of the camel-case words and numbers of the ASCII letters/digits of `text`."""
    alnum = "".join(c for c in text if c.isascii() and c.isalnum())
    words = _WORDS.findall(alnum)
    return len(alnum) / len(words) if words else 0.0


def is_token_like(text: str) -> bool:
    """True for a long, high-entropy string of short pieces, such as an API key or a token."""
    return (
        len(text) >= MIN_TOKEN_LENGTH
        and any(c.isalpha() for c in text)
        and any(not c.isalpha() for c in text)
        and shannon_entropy(text) >= MIN_ENTROPY_BITS
        and mean_word_length(text) <= MAX_MEAN_WORD_LENGTH
    )


def _mask_token(match: re.Match[str]) -> str:
    run = match[0]
    core = run.strip(_TRIM)
    if not core or MASK in run:
        return run
    if is_token_like(core) or any(is_token_like(piece) for piece in _PIECES.split(core)):
        start = run.index(core)
        return f"{run[:start]}{MASK}{run[start + len(core) :]}"
    return run


def mask_secrets(text: str) -> tuple[str, int]:
    """`text` with every secret found replaced by `MASK`, and how many were replaced."""
    result = re.sub(r"\S+", _mask_token, _LABELLED.sub(_mask_labelled, text))
    return result, result.count(MASK) - text.count(MASK)

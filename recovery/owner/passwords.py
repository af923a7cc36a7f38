"""The rules a password the owner chooses must pass (NIST SP 800-63B §3.1.1.2), offline.

- Length: at least the tenant's `owner_portal.password_min_length` (default 15, floor 12),
  at most `MAX_LENGTH` (128: more than the 64 the guideline asks verifiers to accept), counted
  in Unicode code points after NFKC normalisation. Every printable character, spaces and
  non-ASCII letters included, is accepted.
- No composition rules ("one digit, one symbol"): they make passwords weaker, not stronger.
- Context: not the username, nor a password containing it (or its local part), nor one
  character or a short pattern repeated.
- Breached: not in Django's list of 20,000 common passwords, nor (when
  `settings.BREACHED_PASSWORDS_FILE` names one) in a list of SHA-1 hashes of breached
  passwords. That file is a sorted text file, one upper- or lower-case SHA-1 hex per line,
  optionally followed by `:count` (the layout of the "Pwned Passwords" download, ordered by
  hash). It is searched in place by bisection over byte offsets, never loaded whole, so a file
  of a billion lines costs some 30 reads per check.

`password_problems` is a pure function (no database, no network); `password_check` raises
`PasswordRefused` with the first problem's code and every problem's message. No function here
logs, records or returns the password.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.password_validation import CommonPasswordValidator
from django.utils.translation import gettext as _

from tenants.exceptions import InvalidInput

MAX_LENGTH = 128
SHORT_PATTERN = 3  # "aaaa…", "ababab…", "abcabc…" are refused whatever their length
USERNAME_MIN_PART = 3  # shorter parts of a username ("al") would refuse too much
_SHA1_HEX = re.compile(rb"^[0-9A-Fa-f]{40}")


@dataclass(frozen=True)
class PasswordProblem:
    code: str
    message: str


class PasswordRefused(InvalidInput):
    """The owner's new password breaks a rule; `problems` lists every one (never the password)."""

    def __init__(self, problems: list[PasswordProblem]) -> None:
        self.problems = problems
        super().__init__(
            " ".join(problem.message for problem in problems),
            code=problems[0].code,
            field_errors={"password": [problem.message for problem in problems]},
        )


class BreachListUnavailable(Exception):
    """`BREACHED_PASSWORDS_FILE` is set but cannot be read: checks fail closed."""


def normalised(password: str) -> str:
    """NFKC, as SP 800-63B asks before comparing (full-width letters compare as ASCII)."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    return frozenset(CommonPasswordValidator().passwords)


def is_common(password: str) -> bool:
    """In Django's list of 20,000 common passwords (compared lower-cased, as Django does)."""
    return password.lower().strip() in _common()


def _line_start_from(handle, offset: int) -> int:
    """The first line start at or after `offset` (0 is one; so is every byte after a newline)."""
    if offset == 0:
        return 0
    handle.seek(offset - 1)
    handle.readline()  # up to and including the next newline
    return handle.tell()


def sha1_in_sorted_file(path: str, digest_hex: str) -> bool:
    """Whether `digest_hex` (40 hex digits) starts a line of the sorted file at `path`.

    Bisection over byte offsets, with the candidates kept as the line starts in [low, high):
    each step reads the first line starting at or after the middle and drops the half that
    cannot hold the hash. Only O(log size) lines are read.
    """
    wanted = digest_hex.upper().encode()
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BreachListUnavailable(type(exc).__name__) from None
    with handle:
        low, high = 0, os.fstat(handle.fileno()).st_size
        while low < high:
            middle = (low + high) // 2
            start = _line_start_from(handle, middle)
            if start >= high:
                high = middle  # no line starts in [middle, high)
                continue
            handle.seek(start)
            line = handle.readline()
            key = line[:40].upper()
            if not _SHA1_HEX.match(key):
                raise BreachListUnavailable("not a list of SHA-1 hashes")
            if key == wanted:
                return True
            if key < wanted:
                low = start + len(line)
            else:
                high = start
    return False


def is_breached(password: str) -> bool:
    """In the offline breached-password file, when one is configured (False otherwise)."""
    path = settings.BREACHED_PASSWORDS_FILE
    if not path:
        return False
    digest = hashlib.sha1(password.encode("utf-8")).hexdigest()  # noqa: S324 - the list's key
    return sha1_in_sorted_file(str(path), digest)


def _username_parts(username: str) -> list[str]:
    """The username and, for `user@domain` or `DOMAIN\\user`, its user part, lower-cased."""
    name = username.strip().lower()
    parts = {name}
    if "@" in name:
        parts.add(name.split("@", 1)[0])
    if "\\" in name:
        parts.add(name.rsplit("\\", 1)[1])
    return sorted(part for part in parts if len(part) >= USERNAME_MIN_PART)


def _repetitive(password: str) -> bool:
    for size in range(1, SHORT_PATTERN + 1):
        pattern = password[:size]
        if len(password) > size and (pattern * (len(password) // size + 1)).startswith(password):
            return True
    return False


def password_problems(password: str, *, username: str, min_length: int) -> list[PasswordProblem]:
    """Every rule `password` breaks, in a stable order (empty when it may be used).

    Raises BreachListUnavailable when the configured breached list cannot be read: the caller
    refuses (fails closed) rather than accept an unchecked password.
    """
    text = normalised(password)
    problems: list[PasswordProblem] = []
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        problems.append(
            PasswordProblem(
                "password.invalid_characters",
                _("Use letters, digits, spaces and symbols only (no control characters)."),
            )
        )
    if len(text) < min_length:
        problems.append(
            PasswordProblem(
                "password.too_short",
                _("Use at least %(count)d characters; a few unrelated words work well.")
                % {"count": min_length},
            )
        )
    if len(text) > MAX_LENGTH:
        problems.append(
            PasswordProblem(
                "password.too_long",
                _("Use at most %(count)d characters.") % {"count": MAX_LENGTH},
            )
        )
    lowered = text.lower()
    if any(part in lowered for part in _username_parts(username)):
        problems.append(
            PasswordProblem(
                "password.contains_username",
                _("Do not put your username in your password."),
            )
        )
    if _repetitive(text):
        problems.append(
            PasswordProblem(
                "password.repetitive",
                _("Do not repeat one character or a short pattern."),
            )
        )
    if is_common(text) or is_common(password) or is_breached(text):
        problems.append(
            PasswordProblem(
                "password.breached",
                _(
                    "This password appears in lists of passwords known to attackers; "
                    "choose another one."
                ),
            )
        )
    return problems


def password_check(password: str, *, username: str, min_length: int) -> None:
    """Raise PasswordRefused naming every broken rule; return None when the password is fit."""
    try:
        problems = password_problems(password, username=username, min_length=min_length)
    except BreachListUnavailable:
        problems = [
            PasswordProblem(
                "password.breach_list_unavailable",
                _(
                    "Your password cannot be checked against the breached-password list right "
                    "now, so it cannot be set. Try again later or call the service desk."
                ),
            )
        ]
    if problems:
        raise PasswordRefused(problems)

"""Checking an uploaded evidence file before anything is written. Pure functions, no I/O.

The type comes from the bytes (magic numbers), never from the name or a client header, and
must be on a short allow-list. The name is kept for display only; the file on disk gets a random
name (see `storage`), but a name that tries path tricks is refused all the same, and its
extension must agree with the bytes so a download never suggests a different type.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from tenants.exceptions import InvalidInput

MAX_NAME_LENGTH = 200

# content type -> extensions a name may end with
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "image/png": frozenset({".png"}),
    "image/jpeg": frozenset({".jpg", ".jpeg"}),
    "application/pdf": frozenset({".pdf"}),
    "text/plain": frozenset({".txt", ".text", ".log", ".csv", ".md"}),
}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"%PDF-", "application/pdf"),
)
# Plain text may hold tab, line feed, form feed and carriage return; no other C0 control or DEL.
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Text that starts like markup (HTML, SVG, XML) is not plain text for our purposes.
_MARKUP_START = re.compile(r"\A\s*<\s*[!?/a-zA-Z]")


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed every check: what will be stored and recorded."""

    name: str
    content_type: str
    size: int
    sha256: str


def _refuse(code: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=code, field_errors={"file": [message]})


def max_bytes() -> int:
    """The size limit in bytes (setting `EVIDENCE_MAX_BYTES`)."""
    return int(settings.EVIDENCE_MAX_BYTES)


def clean_name(name: str) -> str:
    """The display name, NFC-normalised and stripped, or InvalidInput for a bad one.

    Refused: empty, longer than 200 characters, path separators, `..`, NUL, control and
    invisible formatting characters (such as the right-to-left override that makes
    `invoice<RLO>fdp.exe` display as `invoiceexe.pdf`).
    """
    cleaned = unicodedata.normalize("NFC", name or "").strip()
    if not cleaned:
        raise _refuse("evidence.attachment_name_invalid", "The file needs a name.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise _refuse(
            "evidence.attachment_name_invalid",
            f"The file name is longer than {MAX_NAME_LENGTH} characters.",
        )
    if "/" in cleaned or "\\" in cleaned or ".." in cleaned:
        raise _refuse(
            "evidence.attachment_name_invalid",
            "The file name may not contain '/', '\\' or '..'.",
        )
    if any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in cleaned):
        raise _refuse(
            "evidence.attachment_name_invalid",
            "The file name contains control or invisible characters.",
        )
    return cleaned


def sniff_content_type(content: bytes) -> str | None:
    """The allowed content type the bytes are, or None: PNG, JPEG, PDF or plain UTF-8 text."""
    for magic, content_type in _MAGIC:
        if content.startswith(magic):
            return content_type
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _TEXT_CONTROLS.search(text) or _MARKUP_START.match(text.lstrip("\ufeff")):
        return None
    return "text/plain"


def check_upload(name: str, content: bytes) -> CheckedUpload:
    """Validate an upload completely; InvalidInput with a stable code for the first problem."""
    cleaned = clean_name(name)
    if not content:
        raise _refuse("evidence.attachment_empty", "The file is empty.")
    limit = max_bytes()
    if len(content) > limit:
        raise _refuse(
            "evidence.attachment_too_large",
            f"The file is {len(content)} bytes; the limit is {limit} bytes.",
        )
    content_type = sniff_content_type(content)
    if content_type is None:
        raise _refuse(
            "evidence.attachment_type_not_allowed",
            "Only PNG, JPEG, PDF and plain UTF-8 text files are accepted.",
        )
    extension = cleaned[cleaned.rfind(".") :].lower() if "." in cleaned else ""
    if extension not in ALLOWED_TYPES[content_type]:
        expected = ", ".join(sorted(ALLOWED_TYPES[content_type]))
        raise _refuse(
            "evidence.attachment_type_mismatch",
            f"The file is {content_type}; its name must end in one of {expected}.",
        )
    return CheckedUpload(
        name=cleaned,
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )

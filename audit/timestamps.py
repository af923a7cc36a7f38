"""RFC 3161 timestamps of checkpoints: a time-stamping authority's signed word that a checkpoint
existed at a given time, from a clock and a key that neither Vouchsafe nor its database holds.

The request and the checks are OpenSSL's own (`openssl ts`, the reference implementation, in
every Debian install): the query carries a nonce and asks for the TSA's certificate; the reply
is verified against the query (imprint, nonce, signature, `timeStamping` key usage) and the
configured CA before it is kept, and every kept token is verified again against the checkpoint's
digest whenever the checkpoints are verified.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TIME_LINE = re.compile(r"^Time stamp: (.+)$", re.MULTILINE)


class TimestampError(Exception):
    """A timestamp could not be obtained or does not verify; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _openssl(*args: str) -> bytes:
    """Run `openssl ts` with our own arguments (file paths we made, a checked hex digest)."""
    binary = shutil.which("openssl")
    if binary is None:
        raise TimestampError("timestamp.no_openssl", "The openssl command is not installed.")
    done = subprocess.run(  # noqa: S603 (no shell; every argument is ours)
        [binary, "ts", *args], capture_output=True, timeout=30, check=False
    )
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise TimestampError("timestamp.invalid", detail[-1] if detail else "openssl ts failed")
    return done.stdout


class TimestampAuthority:
    """One configured TSA: where to ask (`AUDIT_TSA_URL`) and the CA its certificate must chain
    to (`AUDIT_TSA_CA_FILE`)."""

    def __init__(self, url: str, ca_file: str, timeout: float = 10.0) -> None:
        self.url, self.ca_file, self.timeout = url, ca_file, timeout

    @classmethod
    def from_settings(cls) -> TimestampAuthority | None:
        url = getattr(settings, "AUDIT_TSA_URL", "")
        if not url:
            return None
        return cls(url, settings.AUDIT_TSA_CA_FILE, settings.AUDIT_TSA_TIMEOUT_SECONDS)

    def stamp(self, digest_hex: str) -> bytes:
        """A verified timestamp token (a DER TimeStampResp) of the SHA-256 digest."""
        _check_digest(digest_hex)
        with tempfile.TemporaryDirectory(prefix="vs-tsa-") as folder:
            query = Path(folder) / "query.tsq"
            _openssl("-query", "-digest", digest_hex, "-sha256", "-cert", "-out", str(query))
            request = urllib.request.Request(  # noqa: S310 (the operator's configured TSA URL)
                self.url,
                data=query.read_bytes(),
                headers={"Content-Type": "application/timestamp-query"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                    token = answer.read()
            except (urllib.error.URLError, OSError) as error:
                raise TimestampError(
                    "timestamp.unreachable", f"The TSA at {self.url} did not answer: {error}"
                ) from None
            reply = Path(folder) / "reply.tsr"
            reply.write_bytes(token)
            _openssl(
                "-verify", "-queryfile", str(query), "-in", str(reply), "-CAfile", self.ca_file
            )
        return token

    def check(self, token: bytes, digest_hex: str) -> datetime:
        """Verify a kept token against the digest and the CA; the time it states."""
        _check_digest(digest_hex)
        with tempfile.TemporaryDirectory(prefix="vs-tsa-") as folder:
            reply = Path(folder) / "reply.tsr"
            reply.write_bytes(token)
            _openssl("-verify", "-digest", digest_hex, "-in", str(reply), "-CAfile", self.ca_file)
            text = _openssl("-reply", "-in", str(reply), "-text").decode(errors="replace")
        found = _TIME_LINE.search(text)
        if not found:
            raise TimestampError("timestamp.invalid", "The token states no time.")
        return _parse_time(found.group(1).strip())


def _check_digest(digest_hex: str) -> None:
    if not _SHA256_HEX.fullmatch(digest_hex):
        raise TimestampError("timestamp.invalid", "Not a SHA-256 digest in hex.")


def _parse_time(text: str) -> datetime:
    """OpenSSL's `Dec  7 16:10:00.123 2026 GMT` (fraction optional) as an aware datetime."""
    parts = text.replace("GMT", "").split()
    clock = parts[2] if "." in parts[2] else parts[2] + ".0"
    moment = datetime.strptime(f"{parts[0]} {parts[1]} {clock} {parts[3]}", "%b %d %H:%M:%S.%f %Y")
    return moment.replace(tzinfo=UTC)

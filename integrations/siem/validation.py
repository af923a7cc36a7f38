"""Checks of a SIEM destination's settings, each refusal with a stable code and a clear message."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from tenants.exceptions import InvalidInput

from .choices import SiemFormat
from .transport import tls_context

MAX_PEM_CHARS = 64 * 1024
MAX_CA_CERTIFICATES = 10
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _refuse(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(message, code=code, field_errors={field: [message]})


def checked_host(host: Any) -> str:
    """A DNS name (ASCII; punycode for international names) or an IP address."""
    host = host.strip().lower().rstrip(".") if isinstance(host, str) else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _refuse(
            "host",
            "siem.host_invalid",
            "Give the collector's DNS name (letters, digits, hyphens and dots; punycode for "
            "international names) or its IP address.",
        )
    return host


def checked_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse("port", "siem.port_invalid", "Give a TCP port from 1 to 65535.")
    return port


def checked_format(format: Any) -> str:
    if format not in SiemFormat.values:
        raise _refuse(
            "format", "siem.format_invalid", f"Choose one of: {', '.join(SiemFormat.values)}."
        )
    return format


def checked_enabled(enabled: Any) -> bool:
    if not isinstance(enabled, bool):
        raise _refuse("enabled", "siem.enabled_invalid", "enabled must be true or false.")
    return enabled


def ca_certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def ca_fingerprints(pem: str) -> list[str]:
    """SHA-256 of each certificate (DER), lowercase hex: what events and status show."""
    return [
        hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        for cert in ca_certificates(pem)
    ]


def checked_ca_pem(pem: Any) -> str:
    """One to ten PEM certificates, in force now, that TLS can use as trust anchors; returned
    re-encoded (any text around them dropped). A private key is refused, never stored."""
    field, code = "ca_pem", "siem.ca_invalid"
    if not isinstance(pem, str) or not pem.strip() or len(pem) > MAX_PEM_CHARS:
        raise _refuse(
            field, code, f"Paste the CA certificate as PEM (at most {MAX_PEM_CHARS} characters)."
        )
    if "PRIVATE KEY" in pem:
        raise _refuse(
            field,
            "siem.ca_has_private_key",
            "This PEM holds a private key: paste only the CA certificate, and replace that key.",
        )
    try:
        certificates = ca_certificates(pem)
    except ValueError:
        raise _refuse(
            field,
            code,
            "No certificate could be read: paste the -----BEGIN CERTIFICATE----- block.",
        ) from None
    if len(certificates) > MAX_CA_CERTIFICATES:
        raise _refuse(field, code, f"Give at most {MAX_CA_CERTIFICATES} CA certificates.")
    now = timezone.now()
    for cert in certificates:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise _refuse(
                field,
                "siem.ca_expired",
                f"The certificate {cert.subject.rfc4514_string()} is not valid now (valid "
                f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}).",
            )
    normalised = "".join(
        cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates
    )
    try:
        tls_context(normalised)
    except (ssl.SSLError, ValueError):
        raise _refuse(field, code, "TLS cannot use this certificate as a trust anchor.") from None
    return normalised

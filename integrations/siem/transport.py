"""Sending framed messages to a collector over TLS (RFC 5425), and knowing they were read.

TCP syslog has no acknowledgements: bytes accepted by our kernel can still be lost with the
collector. So each batch goes over its own connection, closed with a TLS close_notify that
the collector answers only after it has read everything before it; only that answer counts
as delivery. Anything else (refused, timed out, certificate not trusted, closed without an
answer) raises `SiemSendError` and the caller does not move its cursor: the batch is sent
again later, so a collector may see an event twice, always with the same seq and hash.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from recovery.addresses import destination_problem


class SiemSendError(Exception):
    """A batch that did not reach the collector; the message is safe to show its tenant."""


@dataclass(frozen=True)
class Collector:
    host: str
    port: int
    ca_pem: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/"


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """Verify the server's certificate against `ca_pem` only, and its name (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem)
    return context


def _described(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the collector's certificate was refused ({error.verify_message})"
    if isinstance(error, TimeoutError):
        return "the collector did not answer in time"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error.__class__.__name__})"
    if isinstance(error, OSError):
        return error.strerror or error.__class__.__name__
    return str(error)


def send_batch(collector: Collector, frames: list[bytes], *, timeout: float) -> None:
    """Send `frames` over one TLS connection; return once the collector has read them all."""
    where = f"{collector.host}:{collector.port}"
    problem = destination_problem(collector.url)
    if problem:
        raise SiemSendError(f"{where}: {problem}")
    try:
        context = tls_context(collector.ca_pem)
        address = (collector.host, collector.port)
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=collector.host) as tls,
        ):
            tls.sendall(b"".join(frames))
            tls.unwrap()  # our close_notify, then the collector's: it has read every byte
    except (OSError, ssl.SSLError, ValueError) as error:
        raise SiemSendError(f"{where}: {_described(error)}") from error

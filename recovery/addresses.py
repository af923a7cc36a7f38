"""Where Vouchsafe may send a request: the guard against server-side request forgery that
webhooks (at subscription time and at each attempt) and owner identity providers (issuer,
discovery endpoints) share.

Unless settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES is true (development and tests), a target must
be https and every address its host resolves to must be a public unicast address: no loopback,
private, link-local (cloud metadata), shared, reserved or multicast ranges. The setting is
read when used and defaults to false, so a deployment that forgets it fails closed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000


def private_addresses_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False))


def url_origin(url: str) -> str:
    """scheme://host[:port] of a URL: what may be shown or logged (a path can hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def url_syntax_problem(url: str) -> str | None:
    """Why `url` cannot be a target at all (before any lookup), or None."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return f"Give an http(s) URL of at most {MAX_URL_LENGTH} characters."
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "The URL may not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "The URL cannot be parsed."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Give an http or https URL with a host."
    if parts.username is not None or parts.password is not None:
        return "Credentials in the URL are not accepted; authenticate with the signature."
    if parts.fragment:
        return "The URL may not have a #fragment."
    return None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def destination_problem(url: str) -> str | None:
    """Why `url` may not be called from here now (scheme, resolved addresses), or None.

    Resolves the host: call it at subscription time and again just before each attempt.
    """
    if private_addresses_allowed():
        return None
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "Use an https URL."
    try:
        infos = socket.getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError):
        return "The URL's host does not resolve."
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(_is_public(address) for address in addresses):
        return "The URL's host resolves to a private, loopback or reserved address."
    return None

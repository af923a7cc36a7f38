"""A CDP virtual authenticator for the owner portal's browser tests, and a WebAuthn-ready site.

WebAuthn runs only in a secure context: `http://localhost:<port>` is one, so the live server
must be reached as `localhost` (pytest-django's default address), and the relying party id and
origin Vouchsafe expects must be that host and origin. The fixtures are in the browser
conftest; a test asks for them by name:

    from .authenticator import authenticator_for

    def test_enrol(page, webauthn_site):
        key = authenticator_for(page)
        page.goto(...); ...
        assert len(key.credentials()) == 1

`webauthn_site(origins=[...])` (a factory) makes the server expect other origins, for the
origin-mismatch test; `key.set_user_verified(False)` makes the next ceremony fail as when the
person cancels the browser prompt (NotAllowedError).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import CDPSession, Page

DEFAULT_OPTIONS = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@dataclass
class VirtualAuthenticator:
    """One virtual authenticator in one page's browser context (Chrome DevTools Protocol)."""

    cdp: CDPSession
    authenticator_id: str

    def _send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.cdp.send(
            f"WebAuthn.{method}", {"authenticatorId": self.authenticator_id, **(params or {})}
        )

    def credentials(self) -> list[dict[str, Any]]:
        """The credentials it holds: credentialId (base64), rpId, signCount, privateKey …"""
        return self._send("getCredentials")["credentials"]

    def credential_ids(self) -> list[str]:
        """Credential ids as base64url without padding (how Vouchsafe stores them)."""
        return [_b64url(c["credentialId"]) for c in self.credentials()]

    def clear(self) -> None:
        self._send("clearCredentials")

    def add_credential(self, credential: dict[str, Any]) -> None:
        """Install a credential (e.g. one copied from another authenticator, for a clone)."""
        self._send("addCredential", {"credential": credential})

    def set_sign_count(self, credential_id: str, sign_count: int) -> None:
        """Re-install a held credential with another counter (a clone presents an old one)."""
        held = next(c for c in self.credentials() if _b64url(c["credentialId"]) == credential_id)
        self._send("removeCredential", {"credentialId": held["credentialId"]})
        self.add_credential({**held, "signCount": sign_count})

    def set_user_verified(self, verified: bool) -> None:
        """False: the next ceremony fails like a cancelled prompt (NotAllowedError)."""
        self._send("setUserVerified", {"isUserVerified": verified})

    def remove(self) -> None:
        self._send("removeVirtualAuthenticator")


def _b64url(standard_b64: str) -> str:
    raw = base64.b64decode(standard_b64 + "=" * (-len(standard_b64) % 4))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def authenticator_for(page: Page, **options: Any) -> VirtualAuthenticator:
    """Add a virtual platform authenticator (user verification on) to `page`'s context."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    created = cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": {**DEFAULT_OPTIONS, **options}}
    )
    return VirtualAuthenticator(cdp=cdp, authenticator_id=created["authenticatorId"])


def _configure(settings: Any, live_url: str, origins: list[str] | None) -> str:
    host = urlsplit(live_url).hostname
    if host != "localhost":
        pytest.fail(
            f"WebAuthn needs a secure context: run the live server as localhost, not {host} "
            "(unset DJANGO_LIVE_TEST_SERVER_ADDRESS / --liveserver)"
        )
    settings.PUBLIC_BASE_URL = live_url
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = origins if origins is not None else [live_url]
    return live_url


@pytest.fixture
def webauthn_site(settings: Any, live_server: Any) -> str:
    """The live server's URL, with Vouchsafe's relying party set to it (id `localhost`)."""
    return _configure(settings, live_server.url, None)


@pytest.fixture
def webauthn_site_expecting(settings: Any, live_server: Any) -> Callable[[list[str]], str]:
    """`webauthn_site_expecting([origin, ...])`: the server expects these origins instead."""
    return lambda origins: _configure(settings, live_server.url, origins)

"""A real OpenID Provider for tests: panva's `oidc-provider` (OpenID Certified) run by Node.js.

`OidcProvider.start(...)` makes an RSA signing key (this process keeps the private half, so a
test can also sign a token with a key the provider publishes), writes the relying party's
client (id, secret, redirect URIs) into the environment of `node server.mjs`, starts it on a
free port of 127.0.0.1 and waits until its discovery document answers. `stop()` ends it.

Each login chooses who signed in and how: `login(authorize_url, sub=..., amr=..., acr=...)`
drives the provider's own authorization endpoint, interaction and resume with a cookie jar of
its own (the person's browser at the IdP) and returns the redirect back to the relying party.

There is no skip: when Node.js or the npm packages are missing the fixture fails and says how
to install them (`scripts/services.sh` runs `npm ci` in this directory).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node") or "/usr/bin/node"
INSTALL_HINT = (
    "The OpenID Connect tests run a real provider (npm package oidc-provider) with Node.js "
    f">= 20.19. Install Node.js, then run scripts/services.sh (it runs `npm ci` in {HERE})."
)
CLIENT_ID = "vouchsafe-owner-portal"
SIGNING_KID = "test-provider-key-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signing_key(kid: str) -> RSAKey:
    """A new 2048-bit RSA key for RS256 signatures, with its `kid`."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    key: RSAKey
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    log: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, *, redirect_uris: list[str]) -> OidcProvider:
        if not os.access(NODE, os.X_OK) or not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise FileNotFoundError(INSTALL_HINT)
        key = signing_key(SIGNING_KID)
        for _attempt in range(5):  # a port taken between free_port() and node's bind: retry
            port = free_port()
            provider = cls(
                issuer=f"http://127.0.0.1:{port}",
                client_id=CLIENT_ID,
                client_secret=f"test-only-client-secret-{os.urandom(8).hex()}",
                redirect_uris=redirect_uris,
                key=key,
                log_path=workdir / f"oidc-provider-{port}.log",
            )
            if provider._launch(port):
                return provider
        raise RuntimeError("oidc-provider did not start:\n" + "\n".join(provider.log[-20:]))

    def _launch(self, port: int) -> bool:
        env = {
            **os.environ,
            "OIDC_PORT": str(port),
            "OIDC_ISSUER": self.issuer,
            "OIDC_JWKS": json.dumps({"keys": [self.key.as_dict(private=True)]}),
            "OIDC_CLIENTS": json.dumps(
                [
                    {
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                        "redirect_uris": self.redirect_uris,
                    }
                ]
            ),
            "NODE_ENV": "test",
        }
        assert self.log_path is not None
        output = open(self.log_path, "ab")  # noqa: SIM115 - node keeps writing
        self.process = subprocess.Popen(
            [NODE, str(HERE / "server.mjs")],
            cwd=HERE,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.append(self.log_path.read_text(errors="replace"))
                return False
            try:
                answer = requests.get(self.discovery_url, timeout=0.5)
                if answer.status_code == 200 and answer.json().get("issuer") == self.issuer:
                    return True
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.1)
        self.log.append(self.log_path.read_text(errors="replace"))
        self.stop()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # --- the person at the provider ---------------------------------------------------------

    def login(
        self,
        authorize_url: str,
        *,
        sub: str,
        amr: tuple[str, ...] | list[str] = ("pwd", "hwk"),
        acr: str = "",
    ) -> str:
        """Sign in at the provider as `sub` with these amr/acr; the URL the provider sends the
        browser back to (the relying party's redirect URI with `code`, `state` and `iss`)."""
        assert authorize_url.startswith(self.issuer + "/"), authorize_url
        browser = requests.Session()
        answer = browser.get(authorize_url, allow_redirects=False, timeout=10)
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
        interaction = urljoin(self.issuer, answer.headers["Location"])
        assert urlsplit(interaction).path.startswith("/interaction/"), interaction
        query = {"sub": sub, "amr": ",".join(amr), **({"acr": acr} if acr else {})}
        answer = browser.get(
            f"{interaction.rstrip('/')}/login?{urlencode(query)}", allow_redirects=False, timeout=10
        )
        assert answer.status_code == 303, (answer.status_code, answer.text[:500])
        answer = browser.get(
            urljoin(self.issuer, answer.headers["Location"]), allow_redirects=False, timeout=10
        )
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
        return answer.headers["Location"]

    # --- tokens a test signs itself ---------------------------------------------------------

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """A compact JWS over `claims`, by default with the key the provider publishes."""
        key = key or self.key
        protected = {"alg": "RS256", "kid": key.kid, **(header or {})}
        return jwt.encode(protected, claims, key)

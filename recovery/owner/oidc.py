"""The relying party's side of OpenID Connect, for owners signing in with their tenant's IdP.

Authlib does the protocol: `OAuth2Session` builds the authorization request (code flow with
PKCE S256, `state`, `nonce`) and exchanges the code at the token endpoint with the client
secret (HTTP Basic); joserfc, Authlib's JOSE library, verifies the ID token's signature.
This module adds what a library leaves to its caller, and fails closed on each:

- discovery: the document's `issuer` must be the configured one, exactly; every endpoint is
  https on a public address (the SSRF guard of webhooks and connectors; development and tests
  allow a local provider over http); the document and the JWKS are cached briefly;
- signature: the header's `alg` must be an asymmetric one the provider advertises in
  `id_token_signing_alg_values_supported` (`none` and the HMAC family never are: a token
  signed with our own client secret proves nothing about the provider); the key is the JWKS
  key named by `kid`; an unknown `kid` fetches the JWKS once more (a key rotation), then
  refuses;
- claims: `iss` equal to the issuer, `aud` containing our client id (`azp` required and ours
  when there are several audiences), `exp` in the future and `iat` not in the future nor too
  old (a small leeway for clocks), `nonce` equal to the one this sign-in sent, a `sub`.

Nothing here writes to the database; `recovery.owner.idp_sign_in` decides what a validated
token means for a case or an enrolment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.core.cache import cache
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from ..addresses import destination_problem, url_syntax_problem

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_CACHE_SECONDS = 300
JWKS_CACHE_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_URL_LENGTH = 500
# Clocks differ a little; an ID token from a code exchange is minutes old at most.
LEEWAY_SECONDS = 60
MAX_TOKEN_AGE_SECONDS = 600
# Signatures by the provider's own key pair; never `none`, never an HMAC over a shared secret.
ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
SCOPE = "openid"
CALLBACK_PATH = "/owner/idp/callback/"


class IdpUnavailable(Exception):
    """The provider did not answer as an OpenID Provider should (network, status, document)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail[:300]


class IdTokenRefused(Exception):
    """The ID token fails one of the checks; `code` names which (`idp.wrong_issuer`, …)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail[:300]


@dataclass(frozen=True)
class ValidatedIdToken:
    """What a validated ID token says, and the SHA-256 of the token as received."""

    sub: str
    amr: tuple[str, ...]
    acr: str
    sha256: str
    claims: dict[str, Any]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def redirect_uri() -> str:
    """Where the provider sends the browser back: one URI for every tenant (the state finds
    the sign-in)."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + CALLBACK_PATH


# --- URLs we are willing to call ----------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why `url` may not be an issuer or endpoint of an owner IdP now (a sentence), or None:
    the same guard as webhooks (recovery/addresses.py). Development and tests
    (`WEBHOOK_ALLOW_PRIVATE_ADDRESSES`) also allow a local provider over plain http."""
    if isinstance(url, str) and len(url) > MAX_URL_LENGTH:
        return f"Give an https URL of at most {MAX_URL_LENGTH} characters."
    return url_syntax_problem(url) or destination_problem(url)


# --- discovery and keys -------------------------------------------------------------------------


def _get_json(url: str) -> dict[str, Any]:
    if problem := url_problem(url):
        raise IdpUnavailable("idp.insecure_url", f"{url}: {problem}")
    try:
        answer = requests.get(
            url,
            timeout=HTTP_TIMEOUT_SECONDS,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as error:
        raise IdpUnavailable("idp.unreachable", f"{url}: {type(error).__name__}") from None
    if answer.status_code != 200:
        raise IdpUnavailable("idp.bad_answer", f"{url}: HTTP {answer.status_code}")
    if len(answer.content) > MAX_DOCUMENT_BYTES:
        raise IdpUnavailable("idp.bad_answer", f"{url}: document too large")
    try:
        document = answer.json()
    except ValueError:
        raise IdpUnavailable("idp.bad_answer", f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise IdpUnavailable("idp.bad_answer", f"{url}: not a JSON object")
    return document


def _cache_key(kind: str, value: str) -> str:
    return f"owner-idp:{kind}:{digest(value)}"


def discovery(issuer: str, *, refresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document, checked (OpenID Connect Discovery 1.0, §4.3)."""
    key = _cache_key("discovery", issuer)
    document = None if refresh else cache.get(key)
    if document is not None:
        return document
    document = _get_json(issuer.rstrip("/") + DISCOVERY_PATH)
    if document.get("issuer") != issuer:
        raise IdpUnavailable(
            "idp.issuer_mismatch",
            f"the discovery document names {str(document.get('issuer'))[:200]!r}",
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or (problem := url_problem(value)):
            raise IdpUnavailable("idp.bad_discovery", f"{name}: {problem or 'missing'}")
    algs = document.get("id_token_signing_alg_values_supported")
    if not isinstance(algs, list) or not algs:
        raise IdpUnavailable("idp.bad_discovery", "no id_token_signing_alg_values_supported")
    cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


def jwks(document: dict[str, Any], *, refresh: bool = False) -> KeySet:
    """The provider's published signing keys (cached; `refresh` fetches them again)."""
    uri = document["jwks_uri"]
    key = _cache_key("jwks", uri)
    data = None if refresh else cache.get(key)
    if data is None:
        data = _get_json(uri)
        cache.set(key, data, JWKS_CACHE_SECONDS)
    try:
        keys = [
            k for k in data.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"
        ]
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as error:
        raise IdpUnavailable("idp.bad_jwks", type(error).__name__) from None


# --- the authorization request and the code exchange ----------------------------------------------


def _session(client_id: str, client_secret: str = "") -> OAuth2Session:
    return OAuth2Session(
        client_id=client_id,
        client_secret=client_secret or None,
        scope=SCOPE,
        redirect_uri=redirect_uri(),
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
    )


def authorization_url(
    *, issuer: str, client_id: str, state: str, nonce: str, code_verifier: str
) -> str:
    """Where to send the browser: the provider's authorization endpoint with our request."""
    document = discovery(issuer)
    if "S256" not in (document.get("code_challenge_methods_supported") or ["S256"]):
        raise IdpUnavailable("idp.no_pkce", "the provider does not take PKCE S256")
    url, _state = _session(client_id).create_authorization_url(
        document["authorization_endpoint"],
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
    )
    return url


def client_secret(env_name: str) -> str:
    """The client secret, read from the environment variable the configuration names."""
    return os.environ.get(env_name, "")


def code_exchange(
    *, issuer: str, client_id: str, client_secret_env: str, code: str, code_verifier: str
) -> dict[str, Any]:
    """Exchange the authorization code (with the PKCE verifier) for the provider's tokens."""
    document = discovery(issuer)
    secret = client_secret(client_secret_env)
    if not secret:
        raise IdpUnavailable("idp.secret_missing", f"{client_secret_env} is not set")
    session = _session(client_id, secret)
    try:
        token = session.fetch_token(
            document["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
            timeout=HTTP_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except Exception as error:  # Authlib raises OAuthError and requests' errors
        detail = getattr(error, "error", "") or type(error).__name__
        raise IdpUnavailable("idp.token_exchange_failed", str(detail)) from None
    finally:
        session.close()
    if not isinstance(token.get("id_token"), str):
        raise IdpUnavailable("idp.token_exchange_failed", "no id_token in the answer")
    return dict(token)


# --- the ID token -------------------------------------------------------------------------------


def _header(id_token: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(id_token.encode()).headers())
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise IdTokenRefused("idp.malformed_token", "not a compact JWS") from None


def _signing_key(header: dict[str, Any], document: dict[str, Any]):
    """The published key that must have signed a token with this header (JWKS fetched once
    more for an unknown kid)."""
    kid = header.get("kid")
    for refresh in (False, True):
        keys = jwks(document, refresh=refresh)
        if kid is None:
            if len(keys.keys) == 1:
                return keys.keys[0]
        else:
            for key in keys.keys:
                if key.kid == kid:
                    return key
    raise IdTokenRefused("idp.unknown_kid", f"no published key {str(kid)[:64]!r}")


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return []


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenRefused("idp.malformed_token", f"{name} is missing or not a number")
    return float(value)


def _check_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, nonce_digest: str, now: float
) -> None:
    if claims.get("iss") != issuer:
        raise IdTokenRefused("idp.wrong_issuer", str(claims.get("iss"))[:200])
    audiences = _audiences(claims)
    if client_id not in audiences:
        raise IdTokenRefused("idp.wrong_audience", json.dumps(claims.get("aud"))[:200])
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise IdTokenRefused("idp.wrong_audience", f"azp {str(azp)[:100]!r}")
    if _number(claims, "exp") <= now - LEEWAY_SECONDS:
        raise IdTokenRefused("idp.token_expired")
    issued = _number(claims, "iat")
    if issued > now + LEEWAY_SECONDS:
        raise IdTokenRefused("idp.token_not_yet_valid", "iat is in the future")
    if issued < now - MAX_TOKEN_AGE_SECONDS - LEEWAY_SECONDS:
        raise IdTokenRefused("idp.token_too_old")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(digest(nonce), nonce_digest):
        raise IdTokenRefused("idp.nonce_mismatch")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise IdTokenRefused("idp.malformed_token", "sub is missing")
    amr = claims.get("amr", [])
    if not isinstance(amr, list) or not all(isinstance(v, str) for v in amr):
        raise IdTokenRefused("idp.malformed_token", "amr is not a list of strings")
    if not isinstance(claims.get("acr", ""), str):
        raise IdTokenRefused("idp.malformed_token", "acr is not a string")


def id_token_validate(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    nonce_digest: str,
    now: float | None = None,
) -> ValidatedIdToken:
    """Validate an ID token for this client and this sign-in's nonce (its SHA-256), or raise
    IdTokenRefused naming the failed check. `issuer` is the configured issuer."""
    header = _header(id_token)
    document = discovery(issuer)
    alg = header.get("alg")
    advertised = document.get("id_token_signing_alg_values_supported") or []
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS or alg not in advertised:
        raise IdTokenRefused("idp.alg_not_allowed", str(alg)[:32])
    key = _signing_key(header, document)
    try:
        token = jwt.decode(id_token, key, algorithms=[alg])
    except BadSignatureError:
        raise IdTokenRefused("idp.bad_signature") from None
    except (JoseError, ValueError, TypeError) as error:
        raise IdTokenRefused("idp.malformed_token", type(error).__name__) from None
    claims = dict(token.claims)
    _check_claims(
        claims,
        issuer=issuer,
        client_id=client_id,
        nonce_digest=nonce_digest,
        now=time.time() if now is None else now,
    )
    return ValidatedIdToken(
        sub=claims["sub"],
        amr=tuple(claims.get("amr", [])),
        acr=claims.get("acr", ""),
        sha256=digest(id_token),
        claims=claims,
    )


def bound_authenticator(token: ValidatedIdToken, *, allowed_amr, allowed_acr) -> bool:
    """S5: the sign-in used an authenticator already bound to the account, as the tenant's
    configuration reads `amr` (any value in common) or `acr` (one of the allowed values)."""
    if set(token.amr) & set(allowed_amr or ()):
        return True
    return bool(token.acr) and token.acr in set(allowed_acr or ())

"""Identity-proofing providers (S4): the interface the project owns, and its adapters.

A provider is started for one `ProofingSession` (it receives the session's random nonce and
answers with the page the person is sent to) and later posts a verdict naming that nonce. An
adapter checks only what the provider itself guarantees, the signature and the shape of the
verdict; what a verdict means for a case (nonce, case, freshness, replay, enrolment reference)
is decided once, in `services.proofing_verdict_receive`, for every provider alike.

Providers are configured in `settings.PROOFING_PROVIDERS`: a name mapped to
`{"CLASS": "<dotted path>", "OPTIONS": {...}}`. `PROOFING_DEFAULT_PROVIDER` names the one a
case uses when none is asked for. Two adapters ship:

- `SignedHttpProvider`: a vendor reached over HTTP (`start_url`, answered with JSON), whose
  verdicts are JSON bodies signed with HMAC-SHA256 under a shared `secret`;
- `DevProofingProvider` ("dev"): the same verdict format, with the vendor played by a page of
  this site (`/dev-proofing/<nonce>/`), like the file SMS provider. Never in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from ..choices import ProofingLevel

if TYPE_CHECKING:
    from .models import ProofingSession

SIGNATURE_HEADER = "X-Proofing-Signature"
SIGNATURE_PREFIX = "sha256="
OUTCOMES = ("pass", "fail")
MAX_VERDICT_BYTES = 16 * 1024
DEV_PAGE_PATH = "dev-proofing"  # mounted at the site root by recovery.proofing.urls
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class ProviderStart:
    """Where the person goes to be proofed, and the provider's own id for the session."""

    redirect_url: str
    provider_ref: str


@dataclass(frozen=True)
class Verdict:
    """A provider's verdict whose signature was checked; nothing else about it is trusted yet."""

    nonce: str
    case_id: int
    verdict_id: str
    outcome: str  # "pass" | "fail"
    subject_reference: str  # the enrolment record the provider matched the person to
    level: str  # the IAL the provider proofed at
    issued_at: datetime


class ProviderUnavailable(Exception):
    """The provider could not be reached or did not answer in time: nothing was started."""


class VerdictInvalid(Exception):
    """A verdict body that fails the adapter's checks.

    `code` is `bad_signature` or `malformed`; `nonce` is the nonce the body claims (unverified,
    "" when unreadable), so the refusal can be put on the trail of the case it names.
    """

    def __init__(self, code: str, *, nonce: str = "", detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
        self.nonce = nonce
        self.detail = detail


class ProofingProvider(Protocol):
    name: str

    def start(self, session: ProofingSession) -> ProviderStart:
        """Open a session at the provider for `session.nonce`; `ProviderUnavailable` if down."""
        ...

    def parse_verdict(self, body: bytes, headers: Mapping[str, str]) -> Verdict:
        """Check the signature of a posted verdict and read it; `VerdictInvalid` if not."""
        ...


def provider_get(name: str | None = None) -> ProofingProvider | None:
    """The configured provider `name` (the default one when None); None when not configured."""
    name = name or getattr(settings, "PROOFING_DEFAULT_PROVIDER", "")
    entry = getattr(settings, "PROOFING_PROVIDERS", {}).get(name) if name else None
    if not entry:
        return None
    try:
        adapter = import_string(entry["CLASS"])
        return adapter(name=name, **entry.get("OPTIONS", {}))
    except (ImproperlyConfigured, ImportError, KeyError, TypeError):
        return None


# --- the signed JSON verdict both shipped adapters read -----------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _claimed_nonce(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    nonce = data.get("nonce") if isinstance(data, dict) else None
    return nonce[:64] if isinstance(nonce, str) else ""


def _read_verdict(data: Any, nonce: str) -> Verdict:
    """The fields of a signed verdict, each checked for type and range."""

    def bad(detail: str) -> VerdictInvalid:
        return VerdictInvalid("malformed", nonce=nonce, detail=detail)

    if not isinstance(data, dict):
        raise bad("the verdict is not a JSON object")
    texts = {}
    for key, limit in (
        ("nonce", 64),
        ("verdict_id", 200),
        ("outcome", 8),
        ("subject_reference", 128),
        ("level", 8),
        ("issued_at", 64),
    ):
        value = data.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise bad(f"{key} must be a string of at most {limit} characters")
        texts[key] = value
    case_id = data.get("case")
    if not isinstance(case_id, int) or isinstance(case_id, bool) or case_id < 1:
        raise bad("case must be a positive integer")
    if not texts["nonce"] or not texts["verdict_id"]:
        raise bad("nonce and verdict_id are required")
    if texts["outcome"] not in OUTCOMES:
        raise bad(f"outcome must be one of {', '.join(OUTCOMES)}")
    if texts["level"] not in ProofingLevel.values:
        raise bad(f"level must be one of {', '.join(ProofingLevel.values)}")
    issued_at = parse_datetime(texts["issued_at"])
    if issued_at is None or timezone.is_naive(issued_at):
        raise bad("issued_at must be an ISO 8601 time with its offset")
    return Verdict(
        nonce=texts["nonce"],
        case_id=case_id,
        verdict_id=texts["verdict_id"],
        outcome=texts["outcome"],
        subject_reference=texts["subject_reference"],
        level=texts["level"],
        issued_at=issued_at,
    )


class SignedHttpProvider:
    """A vendor reached over HTTP whose verdicts are HMAC-SHA256-signed JSON.

    OPTIONS: `start_url` (POSTed the nonce, case and level as JSON; answers
    `{"redirect_url", "provider_ref"}`), `secret` (shared with the vendor, at least 16
    characters), `timeout` (seconds for connecting and for the answer; default 5).
    The verdict is signed over the raw body: header `X-Proofing-Signature: sha256=<hex>`.
    """

    def __init__(
        self, *, name: str, secret: str = "", start_url: str = "", timeout: float = 5.0
    ) -> None:
        if len(secret or "") < MIN_SECRET_LENGTH:
            raise ImproperlyConfigured(f"Proofing provider {name!r} has no usable secret.")
        self.name = name
        self._secret = secret.encode()
        self.start_url = start_url
        self.timeout = float(timeout)

    # signing (the vendor's side, and the development vendor page)
    def sign(self, body: bytes) -> str:
        return SIGNATURE_PREFIX + hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def signed(self, verdict: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A verdict as the vendor posts it: the body and its signature header."""
        body = json.dumps(dict(verdict), separators=(",", ":")).encode()
        return body, {SIGNATURE_HEADER: self.sign(body), "Content-Type": "application/json"}

    # the interface
    def start(self, session: ProofingSession) -> ProviderStart:
        if not self.start_url:
            raise ProviderUnavailable(f"Proofing provider {self.name!r} has no start_url.")
        payload = {
            "nonce": session.nonce,
            "case": session.case_id,
            "level": session.level,
            "expires_at": session.expires_at.isoformat(),
        }
        try:
            answer = requests.post(
                self.start_url,
                json=payload,
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
            answer.raise_for_status()
            data = answer.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderUnavailable(f"{type(error).__name__}: {error}"[:300]) from error
        redirect_url = data.get("redirect_url") if isinstance(data, dict) else None
        provider_ref = data.get("provider_ref", "") if isinstance(data, dict) else ""
        if not isinstance(redirect_url, str) or not redirect_url.startswith(
            ("https://", "http://")
        ):
            raise ProviderUnavailable("The provider's answer has no redirect_url.")
        return ProviderStart(redirect_url=redirect_url, provider_ref=str(provider_ref)[:200])

    def parse_verdict(self, body: bytes, headers: Mapping[str, str]) -> Verdict:
        nonce = _claimed_nonce(body)
        if len(body) > MAX_VERDICT_BYTES:
            raise VerdictInvalid("malformed", nonce=nonce, detail="the verdict is too large")
        presented = _header(headers, SIGNATURE_HEADER)
        if not hmac.compare_digest(presented.encode(), self.sign(body).encode()):
            raise VerdictInvalid("bad_signature", nonce=nonce)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise VerdictInvalid("malformed", detail="the verdict is not JSON") from error
        return _read_verdict(data, nonce)


class DevProofingProvider(SignedHttpProvider):
    """Development and tests: the vendor is a page of this site that signs with
    `PROOFING_DEV_SECRET`. Refused in production whatever the settings say."""

    def __init__(self, *, name: str = "dev", secret: str = "", timeout: float = 5.0) -> None:
        if getattr(settings, "VOUCHSAFE_ENVIRONMENT", "") == "production":
            raise ImproperlyConfigured("The development proofing provider is not for production.")
        super().__init__(
            name=name,
            secret=secret or getattr(settings, "PROOFING_DEV_SECRET", ""),
            timeout=timeout,
        )

    def start(self, session: ProofingSession) -> ProviderStart:
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        return ProviderStart(
            redirect_url=f"{base}/{DEV_PAGE_PATH}/{session.nonce}/",
            provider_ref=f"dev-{secrets.token_hex(8)}",
        )

    def verdict_for(
        self,
        session: ProofingSession,
        *,
        outcome: str,
        subject_reference: str,
        verdict_id: str | None = None,
        issued_at: datetime | None = None,
        level: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The signed verdict the development vendor posts for `session`."""
        return self.signed(
            {
                "nonce": session.nonce,
                "case": session.case_id,
                "verdict_id": verdict_id or f"dev-verdict-{secrets.token_hex(12)}",
                "outcome": outcome,
                "subject_reference": subject_reference,
                "level": level or session.level,
                "issued_at": (issued_at or timezone.now()).isoformat(),
            }
        )

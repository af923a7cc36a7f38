"""Local development: the embedded default (SQLite, filesystem broker) unless env says otherwise."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
# A local receiver (http://127.0.0.1:...) is fine while developing.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=True)  # noqa: F405
# The development identity-proofing provider: its vendor is a page of this site
# (/dev-proofing/<nonce>/) signing verdicts with this key. Never in production.
PROOFING_DEV_SECRET = env("PROOFING_DEV_SECRET", default="dev-only-proofing-key-not-for-production")  # noqa: F405
PROOFING_PROVIDERS = {
    "dev": {"CLASS": "recovery.proofing.providers.DevProofingProvider"},
    **PROOFING_PROVIDERS,  # noqa: F405
}
PROOFING_DEFAULT_PROVIDER = PROOFING_DEFAULT_PROVIDER or "dev"  # noqa: F405

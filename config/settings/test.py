"""Test settings: PostgreSQL (DATABASE_URL, default the local server) is what the suite runs on."""

from .base import *  # noqa: F403

DATABASES = {
    "default": env.db(  # noqa: F405
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/vouchsafe"
    ),
}
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_vouchsafe")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")  # noqa: F405
CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_OPTIONS  # noqa: F405
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
VOUCHSAFE_ENVIRONMENT = "test"
# Rate-limit counters on the real Redis, as in production (a database of their own).
CACHES = {"default": env.cache("TEST_CACHE_URL", default="rediscache://127.0.0.1:6379/14")}  # noqa: F405
# Webhook receivers in tests run on loopback; production refuses private and plain-http targets.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # django.core.mail.outbox
# The development identity-proofing provider signs the verdicts the tests post.
PROOFING_DEV_SECRET = env("PROOFING_DEV_SECRET", default="test-only-proofing-key-0123456789")  # noqa: F405
PROOFING_PROVIDERS = {"dev": {"CLASS": "recovery.proofing.providers.DevProofingProvider"}}
PROOFING_DEFAULT_PROVIDER = "dev"
# Tests that sign or verify checkpoints give their own keys and stores (tmp_path).
AUDIT_SIGNING_KEY_FILE = ""
AUDIT_TRUSTED_KEYS: list[str] = []
AUDIT_CHECKPOINT_STORES: list[dict] = []

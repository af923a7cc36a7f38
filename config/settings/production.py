"""Production: every secret and host from the environment; refuses to start without them."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403

SECRET_KEY = env("SECRET_KEY", default="")  # noqa: F405
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters in production."
    )
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")  # noqa: F405
DATABASES = {"default": env.db("DATABASE_URL")}  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
CELERY_BROKER_URL = env("CELERY_BROKER_URL")  # noqa: F405
CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_OPTIONS  # noqa: F405
CACHES = {"default": env.cache("CACHE_URL")}  # noqa: F405  (Redis: shared rate-limit counters)
# Owner notices must really leave: no console fallback in production.
vars().update(env.email("EMAIL_URL"))  # noqa: F405
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL")  # noqa: F405

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)  # noqa: F405
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)  # noqa: F405
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
OWNER_SESSION_COOKIE_NAME = "__Host-vs_owner"  # Secure, path /, no Domain: this host only
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])  # noqa: F405
VOUCHSAFE_ENVIRONMENT = "production"
# Webhook targets must be public https addresses (no loopback, private or link-local).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
# Identity proofing: only real providers, each with its own secret in PROOFING_PROVIDERS.
PROOFING_DEV_SECRET = ""
if any(
    str(entry.get("CLASS", "")).endswith("DevProofingProvider")
    for entry in PROOFING_PROVIDERS.values()  # noqa: F405
):
    raise ImproperlyConfigured("The development proofing provider cannot run in production.")
# Signed checkpoints: the key and the stores must be set explicitly, the stores outside
# the host's var/ folder and at least two of them (a write-once mount, an Object Lock bucket).
AUDIT_SIGNING_KEY_FILE = env("AUDIT_SIGNING_KEY_FILE", default="")  # noqa: F405
AUDIT_TRUSTED_KEYS = env.list("AUDIT_TRUSTED_KEYS")  # noqa: F405
AUDIT_CHECKPOINT_STORES = env.json("AUDIT_CHECKPOINT_STORES")  # noqa: F405
if len(AUDIT_CHECKPOINT_STORES) < 2:
    raise ImproperlyConfigured(
        "AUDIT_CHECKPOINT_STORES must name at least two checkpoint stores in production."
    )

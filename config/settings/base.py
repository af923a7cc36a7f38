"""Settings shared by every environment. Everything that differs comes from the environment.

django-environ reads variables (and an optional `.env` file) with typed parsing of URLs,
so one `DATABASE_URL` or `CELERY_BROKER_URL` switches between the embedded defaults
(SQLite, a filesystem broker) and PostgreSQL / Redis.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "auditlog",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_email",
    "pgtrigger",
    "django_htmx",
    "audit",
    "tenants",
    "recovery",
    "integrations",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "tenants.middleware.SessionRotationMiddleware",
    "tenants.middleware.StaffOTPRequiredMiddleware",
    "tenants.middleware.UserPreferencesMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "config.context_processors.console_nav",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'vouchsafe.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The shared cache holds API rate-limit counters: process memory for the embedded default,
# Redis (CACHE_URL=rediscache://...) wherever more than one process serves requests.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://vouchsafe")}

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "staff-login"
LOGIN_REDIRECT_URL = "home"

# django-guardian: no anonymous user object, per-object grants only through direct-FK tables.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# django-otp
OTP_TOTP_ISSUER = "Vouchsafe"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1

# Staff lockout: this many failed password/OTP attempts lock the account for LOCKOUT_SECONDS.
STAFF_LOCKOUT_THRESHOLD = env.int("STAFF_LOCKOUT_THRESHOLD", default=5)
STAFF_LOCKOUT_SECONDS = env.int("STAFF_LOCKOUT_SECONDS", default=900)

SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LANGUAGE_CODE = "en"
# The console ships complete catalogues for these (locale/); each user picks one (R: issue 6).
LANGUAGES = [("en", "English"), ("es", "Español"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",
        "api.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyThrottle", "api.throttling.StaffThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.NewestFirstCursor",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# Requests per principal and tenant; the shared cache (Redis in production) holds the counts.
API_THROTTLE_RATES = {
    "api_key": env.str("API_KEY_RATE", default="1200/min"),
    "staff": env.str("API_STAFF_RATE", default="600/min"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vouchsafe API",
    "DESCRIPTION": (
        "Help-desk account recovery as a privileged identity workflow. Every path is under "
        "`/api/v1/t/{tenant}/`; see docs/api.md for keys, scopes, errors and webhooks."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "recovery.cases.choices.CaseStatus",
        "GrantStatusEnum": "tenants.choices.GrantStatus",
        "PolicyStatusEnum": "recovery.policy.choices.PolicyStatus",
        "WebhookEventTypeEnum": "integrations.choices.WebhookEventType",
        "IngestEventTypeEnum": "integrations.choices.IngestEventType",
        "DeliveryStatusEnum": "integrations.choices.DeliveryStatus",
        "ConnectorKindEnum": "recovery.connectors.choices.ConnectorKind",
        "RouteKindEnum": "tenants.choices.RouteKind",
        "RouteStatusEnum": "tenants.choices.RouteStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}

# django-auditlog: field diffs underneath our own audit trail; secrets are never recorded.
AUDITLOG_INCLUDE_ALL_MODELS = False
AUDITLOG_DISABLE_REMOTE_ADDR = False

# django-pgtrigger: triggers live in migrations.
PGTRIGGER_INSTALL_ON_MIGRATE = False
PGTRIGGER_MIGRATIONS = True
PGTRIGGER_SCHEMA_EDITOR = True

# Celery: the embedded default needs no server (kombu's filesystem transport under var/).
# A hung broker must not hang a request: sends give up after a few seconds and the outbox
# sweeps deliver later (kombu's default is to wait forever).
REDIS_BROKER_OPTIONS = {"socket_timeout": 2, "socket_connect_timeout": 2}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
# Every folder of the filesystem broker under var/ (kombu's default control folder is ./control).
FILESYSTEM_BROKER_OPTIONS = {
    "data_folder_in": str(VAR_DIR / "broker"),
    "data_folder_out": str(VAR_DIR / "broker"),
    "processed_folder": str(VAR_DIR / "broker-processed"),
    "control_folder": str(VAR_DIR / "broker-control"),
    "store_processed": False,
}
CELERY_BROKER_TRANSPORT_OPTIONS = (
    FILESYSTEM_BROKER_OPTIONS
    if CELERY_BROKER_URL.startswith("filesystem")
    else REDIS_BROKER_OPTIONS
)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
AUDIT_VERIFY_INTERVAL_SECONDS = env.int("AUDIT_VERIFY_INTERVAL_SECONDS", default=3600)
AUDIT_VERIFY_FULL_INTERVAL_SECONDS = env.int("AUDIT_VERIFY_FULL_INTERVAL_SECONDS", default=86400)
# Signed checkpoints (R-46, docs/audit.md): the Ed25519 signing key lives in a file or in the
# AUDIT_SIGNING_KEY environment variable, never in the database; AUDIT_TRUSTED_KEYS lists the
# public keys (files or folders of *.pem) verification accepts, retired ones included.
# Days a tenant's trail stays online before its audit_admins may purge it, unless the tenant
# chose otherwise (audit.retention; never under 183 days, R-51).
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=400)
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env.int("AUDIT_CHECKPOINT_INTERVAL_SECONDS", default=3600)
AUDIT_CHECKPOINT_SIGNER = env(
    "AUDIT_CHECKPOINT_SIGNER", default="audit.checkpoints.Ed25519KeySigner"
)
AUDIT_SIGNING_KEY_FILE = env(
    "AUDIT_SIGNING_KEY_FILE", default=str(VAR_DIR / "audit-keys" / "signing-key.pem")
)
AUDIT_TRUSTED_KEYS = env.list(
    "AUDIT_TRUSTED_KEYS", default=[str(VAR_DIR / "audit-keys" / "trusted")]
)
# An RFC 3161 time-stamping authority that countersigns each checkpoint (optional): its URL and
# the CA file its certificate must chain to.
AUDIT_TSA_URL = env("AUDIT_TSA_URL", default="")
AUDIT_TSA_CA_FILE = env("AUDIT_TSA_CA_FILE", default="")
AUDIT_TSA_TIMEOUT_SECONDS = env.float("AUDIT_TSA_TIMEOUT_SECONDS", default=10.0)
# Where checkpoints are published (JSON: a list of {"CLASS": dotted path, "OPTIONS": {...}}).
# Production: at least two, outside the database's administrative domain (a write-once mount,
# an Object Lock bucket).
AUDIT_CHECKPOINT_STORES = env.json(
    "AUDIT_CHECKPOINT_STORES",
    default=[
        {
            "CLASS": "audit.checkpoints.DirectoryStore",
            "OPTIONS": {"path": str(VAR_DIR / "checkpoints")},
        }
    ],
)
# Validated policy versions kept per process (least recently used dropped; about 17 KB each).
POLICY_CACHE_SIZE = env.int("POLICY_CACHE_SIZE", default=2048)
# How often the re-establishment window's poll reads the connectors' change logs (R-35).
WINDOW_POLL_INTERVAL_SECONDS = env.int("WINDOW_POLL_INTERVAL_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    # Hourly: each chain from its newest signed checkpoint on; daily: every chain from seq 1.
    "audit-verify-chains": {
        "task": "audit.tasks.audit_verify_task",
        "schedule": float(AUDIT_VERIFY_INTERVAL_SECONDS),
        "kwargs": {"incremental": True},
    },
    "audit-verify-full": {
        "task": "audit.tasks.audit_verify_task",
        "schedule": float(AUDIT_VERIFY_FULL_INTERVAL_SECONDS),
    },
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint_task",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL_SECONDS),
    },
    # The SIEM stream's sweep: tenants whose chain is past their SIEM cursor (a lost task, a
    # retry due); see integrations.siem.
    "siem-stream-sweep": {
        "task": "integrations.tasks.siem_stream_sweep_task",
        "schedule": float(env.int("SIEM_SWEEP_INTERVAL_SECONDS", default=15)),
        "options": {"expires": float(env.int("SIEM_SWEEP_INTERVAL_SECONDS", default=15))},
    },
    "step-up-prune": {"task": "tenants.tasks.step_up_prune_task", "schedule": 3600.0},
    "console-job-prune": {"task": "tenants.tasks.background_job_prune_task", "schedule": 3600.0},
    "audit-export-prune": {"task": "audit.tasks.audit_export_prune_task", "schedule": 3600.0},
    "idempotency-prune": {"task": "api.tasks.idempotency_prune_task", "schedule": 3600.0},
    # Expired artifacts are refused at use whatever happens; this sweep also revokes them and
    # ends the connector's temporary access, within one interval of expiry.
    "artifact-sweep": {
        "task": "recovery.tasks.artifact_sweep_task",
        "schedule": float(env.int("ARTIFACT_SWEEP_INTERVAL_SECONDS", default=15)),
        "options": {"expires": float(env.int("ARTIFACT_SWEEP_INTERVAL_SECONDS", default=15))},
    },
    "notice-sweep": {"task": "recovery.tasks.notice_sweep_task", "schedule": 30.0},
    # Approvers hear of waiting cases, batched to one message a minute; overdue ones escalate.
    "approvers-notify": {
        "task": "recovery.tasks.approvers_notify_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "release-cooled-cases": {
        "task": "recovery.tasks.case_release_cooled_task",
        "schedule": float(env.int("CASE_SWEEP_INTERVAL_SECONDS", default=15)),
    },
    # Open cases idle past the policy's case_idle_limit_seconds (at least an hour) expire.
    "expire-idle-cases": {
        "task": "recovery.tasks.case_expire_sweep_task",
        "schedule": float(env.int("CASE_EXPIRE_SWEEP_INTERVAL_SECONDS", default=300)),
        "options": {"expires": float(env.int("CASE_EXPIRE_SWEEP_INTERVAL_SECONDS", default=300))},
    },
    # changes the connectors report on accounts in their re-establishment window.
    "window-poll": {
        "task": "recovery.tasks.window_poll_task",
        "schedule": float(WINDOW_POLL_INTERVAL_SECONDS),
        "options": {"expires": float(WINDOW_POLL_INTERVAL_SECONDS)},
    },
    # A repudiated recovery whose revert the owner's request did not finish.
    "account-revert-sweep": {
        "task": "recovery.tasks.account_revert_sweep_task",
        "schedule": float(env.int("REVERT_SWEEP_INTERVAL_SECONDS", default=60)),
        "options": {"expires": float(env.int("REVERT_SWEEP_INTERVAL_SECONDS", default=60))},
    },
    # Mailbox delegations past their expiry are removed through the connector (issue 14).
    "delegation-expire-sweep": {
        "task": "recovery.tasks.delegations_expire_sweep_task",
        "schedule": float(env.int("DELEGATION_SWEEP_INTERVAL_SECONDS", default=60)),
        "options": {"expires": float(env.int("DELEGATION_SWEEP_INTERVAL_SECONDS", default=60))},
    },
    # privileged roles granted back by a restore case are removed when its time box ends.
    "role-regrant-expire-sweep": {
        "task": "recovery.tasks.roles_regrant_expire_sweep_task",
        "schedule": float(env.int("ROLE_REGRANT_SWEEP_INTERVAL_SECONDS", default=60)),
        "options": {"expires": float(env.int("ROLE_REGRANT_SWEEP_INTERVAL_SECONDS", default=60))},
    },
    # Webhook outbox: rows the broker never carried, and retries after their backoff.
    "webhook-outbox-sweep": {
        "task": "integrations.tasks.webhook_outbox_sweep_task",
        "schedule": float(env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=15)),
        "options": {"expires": float(env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=15))},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Evidence attachments: stored outside the web root, served only through a permission check.
EVIDENCE_STORAGE_DIR = env.path("EVIDENCE_STORAGE_DIR", default=VAR_DIR / "evidence")
EVIDENCE_MAX_BYTES = env.int("EVIDENCE_MAX_BYTES", default=10 * 1024 * 1024)
CONSOLE_EXPORT_DIR = env.path("CONSOLE_EXPORT_DIR", default=VAR_DIR / "exports")

# Owner messages: email through Django's backend (SMTP in production: EMAIL_URL), SMS and voice
# through SMS_PROVIDER (the default writes JSON lines to SMS_OUTBOX_PATH for development).
EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="vouchsafe@localhost")
# Links in messages to account owners (recovery links, "this wasn't me").
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# The owner portal's own session cookie (never the staff session; production: __Host- prefix).
OWNER_SESSION_COOKIE_NAME = env("OWNER_SESSION_COOKIE_NAME", default="vs_owner")
# WebAuthn relying party: by default the host and origin of PUBLIC_BASE_URL.
WEBAUTHN_RP_ID = env("WEBAUTHN_RP_ID", default="")
WEBAUTHN_ORIGINS = env.list("WEBAUTHN_ORIGINS", default=[])
# A password an owner chooses is checked offline against Django's common-password list and,
# when set, this sorted file of SHA-1 hashes (the "Pwned Passwords" download format).
BREACHED_PASSWORDS_FILE = env("BREACHED_PASSWORDS_FILE", default="")
SMS_PROVIDER = env("SMS_PROVIDER", default="recovery.messaging.FilePhoneProvider")
SMS_OUTBOX_PATH = env.path("SMS_OUTBOX_PATH", default=VAR_DIR / "sms-outbox.jsonl")

DEMO_CREDENTIALS_PATH = env.path("DEMO_CREDENTIALS_PATH", default=VAR_DIR / "demo-credentials.json")
VOUCHSAFE_ENVIRONMENT = "development"

# Identity-proofing providers (S4): name -> {"CLASS": dotted path, "OPTIONS": {...}} (JSON in
# the environment); none by default. A case uses PROOFING_DEFAULT_PROVIDER unless told another.
PROOFING_PROVIDERS = env.json("PROOFING_PROVIDERS", default={})
PROOFING_DEFAULT_PROVIDER = env("PROOFING_DEFAULT_PROVIDER", default="")
# Signing key of the development provider ("dev"); dev and test settings give it a default.
PROOFING_DEV_SECRET = env("PROOFING_DEV_SECRET", default="")

# SIEM streaming of each tenant's audit chain (integrations.siem, R-51; docs/audit.md).
# SIEM_SYSLOG_HOSTNAME is the syslog HOSTNAME of every message; SIEM_SD_ID names their
# structured-data element (32473 is the documentation enterprise number: use your own).
SIEM_SYSLOG_HOSTNAME = env("SIEM_SYSLOG_HOSTNAME", default="vouchsafe")
SIEM_SD_ID = env("SIEM_SD_ID", default="vouchsafe@32473")
SIEM_PRODUCT_VERSION = env("VOUCHSAFE_VERSION", default="0.1.0")
SIEM_TIMEOUT_SECONDS = env.float("SIEM_TIMEOUT_SECONDS", default=5.0)
SIEM_BATCH_EVENTS = env.int("SIEM_BATCH_EVENTS", default=200)  # events per TLS connection
# After a failed batch: base · 2^(failures-1) seconds before the next attempt, at most the cap.
SIEM_BACKOFF_BASE_SECONDS = env.float("SIEM_BACKOFF_BASE_SECONDS", default=10.0)
SIEM_BACKOFF_CAP_SECONDS = env.float("SIEM_BACKOFF_CAP_SECONDS", default=600.0)
# Two enums of fields named "format": the policy's keeps the name it had.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "FormatEnum": "recovery.policy.choices.PolicyFormat",
        "SiemFormatEnum": "integrations.siem.choices.SiemFormat",
    }
)

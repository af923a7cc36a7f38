"""Settings for the HTTP benchmarks: the test settings, served the way production serves them.

- DATABASE_URL must name a `vouchsafe_bench_*` database (the scripts create and drop it); the
  web processes connect as a restricted role, so row-level security applies as in production.
- Persistent connections (`CONN_MAX_AGE`, 60 s as in config.settings.production).
- Rate-limit counters in a Redis database of their own (db 13), with limits far above what
  the benchmark sends: the throttle still runs (its Redis round trip is part of the cost) but
  never answers 429.
- Celery's broker is in memory: nothing the benchmark does reaches the test suite's Redis.
- The bench-only `bench.baseline` app and its URL are added.
"""

from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from config.settings.test import *  # noqa: F403

_name = urlparse(env("DATABASE_URL", default="")).path.lstrip("/")  # noqa: F405
if not _name.startswith("vouchsafe_bench_"):
    raise ImproperlyConfigured(
        f"bench.settings only runs on a vouchsafe_bench_* database, not {_name!r}."
    )

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
CACHES = {
    "default": env.cache("BENCH_CACHE_URL", default="rediscache://127.0.0.1:6379/13")  # noqa: F405
}
API_THROTTLE_RATES = {"api_key": "1000000/min", "staff": "1000000/min"}
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = None
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

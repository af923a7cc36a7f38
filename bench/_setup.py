"""Shared set-up for the benchmarks: a private PostgreSQL database, Django, small statistics.

Each benchmark drops and recreates its own database (the audit tables refuse DELETE and
TRUNCATE by trigger, so starting from an empty database is the only clean slate) and
migrates into it before timing anything. Nothing here touches the development or test
databases.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


def database_url(name: str) -> str:
    return f"{SERVER_URL.rstrip('/')}/{name}"


def recreate_database(name: str) -> None:
    """Drop `name` (closing other sessions on it) and create it empty."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def setup_django(db_name: str) -> None:
    """Recreate the bench database, point Django at it, and migrate."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = database_url(db_name)
    say(f"database {db_name}: recreating and migrating …")
    started = time.perf_counter()
    recreate_database(db_name)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    say(f"database ready in {time.perf_counter() - started:.1f} s")


def make_tenant(prefix: str):
    """A fresh, uniquely named tenant for this run."""
    from tenants.models import Tenant

    slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return Tenant.objects.create(slug=slug, name=f"Bench {slug}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def say(message: str) -> None:
    print(message, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"

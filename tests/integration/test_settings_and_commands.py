"""Settings and commands as an operator runs them: separate processes, real environment."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.conf import settings

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "k" * 20 + "-a-long-random-production-secret-value-0123456789",
    "ALLOWED_HOSTS": "vouchsafe.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CACHE_URL": "rediscache://127.0.0.1:6379/1",
    "EMAIL_URL": "smtp+tls://vouchsafe:secret@mail.example.com:587",
    "PUBLIC_BASE_URL": "https://vouchsafe.example.com",
    "AUDIT_SIGNING_KEY_FILE": "/run/secrets/audit-signing-key.pem",
    "AUDIT_TRUSTED_KEYS": "/etc/vouchsafe/audit-keys",
    "AUDIT_CHECKPOINT_STORES": json.dumps(
        [
            {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": "/mnt/worm"}},
            {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": "/mnt/offsite"}},
        ]
    ),
}


def manage(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_refuse_to_start_with_one_checkpoint_store():
    one = json.loads(PRODUCTION_ENV["AUDIT_CHECKPOINT_STORES"])[:1]
    result = manage("check", env={**PRODUCTION_ENV, "AUDIT_CHECKPOINT_STORES": json.dumps(one)})
    assert result.returncode != 0
    assert "at least two checkpoint stores" in result.stderr


def test_seed_demo_refuses_production_settings():
    result = manage("seed_demo", env=PRODUCTION_ENV)
    assert result.returncode != 0
    assert "refuses to run with production settings" in result.stderr


def test_embedded_default_migrates_and_seeds_idempotently(tmp_path: Path):
    database = tmp_path / "embedded.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "DEMO_CREDENTIALS_PATH": str(tmp_path / "demo-credentials.json"),
    }
    assert manage("migrate", "--noinput", env=env).returncode == 0
    first = manage("seed_demo", env=env)
    assert first.returncode == 0, first.stderr
    credentials = json.loads((tmp_path / "demo-credentials.json").read_text())
    second = manage("seed_demo", env=env)
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert (
        again["users"]["acme-admin"]["password"] == credentials["users"]["acme-admin"]["password"]
    )
    roles = {name: user["roles"] for name, user in credentials["users"].items()}
    for role in ("agent", "supervisor", "security_officer", "tenant_admin", "auditor"):
        assert any(role in r for r in roles.values()), role
    assert roles["deskco-agent1"] == ["agent"]
    keys = credentials["api_keys"]
    assert {k["kind"] for k in keys.values()} == {"integration", "ai_assistant"}
    assert again["api_keys"]["acme-integration"]["token"] == keys["acme-integration"]["token"]
    verify = manage("audit_verify", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK      acme" in verify.stdout
    # A certified trusted referee, listed like every other role.
    referee = again["users"]["acme-referee"]
    assert referee["roles"] == ["trusted_referee"] and referee["certified_until"] > "2026"
    assert referee["certified_until"] == credentials["users"]["acme-referee"]["certified_until"]
    with sqlite3.connect(database) as db:
        # Every demo account carries its enrolment reference from the import.
        assert not db.execute(
            "SELECT count(*) FROM recovery_protectedaccount WHERE enrolment_reference = ''"
        ).fetchone()[0]
        # Demo cases show each verifier, and every accepted signal names its verifier's record.
        accepted = db.execute(
            "SELECT verifier, method, verifier_ref FROM recovery_evidence WHERE result = 'accepted'"
        ).fetchall()
        assert {verifier for verifier, _method, _ref in accepted} == {
            "challenge",
            "attestation",
            "proofing_provider",
            "attended_session",
        }
        assert all(ref is not None for _verifier, _method, ref in accepted)
        assert db.execute("SELECT status FROM recovery_proofingsession").fetchall() == [("passed",)]
        assert db.execute("SELECT status FROM recovery_attendedsession").fetchall() == [
            ("completed",)
        ]


def test_the_filesystem_broker_keeps_its_exchange_table_under_var(tmp_path, monkeypatch):
    """The embedded broker's folders are all under var/: binding a queue writes kombu's
    exchange table, which by default lands in ./control of wherever the process runs."""
    from kombu import Connection, Exchange, Queue

    from config.settings.base import FILESYSTEM_BROKER_OPTIONS, VAR_DIR

    for name in ("data_folder_in", "data_folder_out", "processed_folder"):  # as run.sh does
        Path(FILESYSTEM_BROKER_OPTIONS[name]).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    exchange = Exchange("vouchsafe-folder-test", type="direct")
    with Connection("filesystem://", transport_options=FILESYSTEM_BROKER_OPTIONS) as conn:
        Queue("vouchsafe-folder-test", exchange, routing_key="t")(conn.default_channel).declare()
    table = Path(FILESYSTEM_BROKER_OPTIONS["control_folder"]) / "vouchsafe-folder-test.exchange"
    assert table.exists() and table.is_relative_to(VAR_DIR)
    table.unlink()
    assert not (tmp_path / "control").exists()


def test_db_roles_runs_as_a_non_superuser_owner_as_documented():
    """docs/operations.md: the owner role (CREATEROLE, not a superuser) migrates and runs
    db_roles on PostgreSQL 15. It once failed with "must be superuser to alter superuser
    roles": the app role's attributes are now altered only when they need to be."""
    import psycopg

    suffix = os.urandom(4).hex()
    owner, app, database = f"vs_owner_{suffix}", f"vs_app_{suffix}", f"vs_roles_{suffix}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE NOSUPERUSER")
    admin.execute(f"CREATE DATABASE {database} OWNER {owner}")
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"postgres://{owner}@127.0.0.1:5432/{database}",
    }
    try:
        migrated = manage("migrate", "--noinput", env=env, timeout=600)
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        roles = manage("db_roles", "--app-role", app, env=env)
        assert roles.returncode == 0, roles.stderr[-2000:]
        again = manage("db_roles", "--app-role", app, env=env)  # after the next migrate
        assert again.returncode == 0, again.stderr[-2000:]
        super_, bypass = admin.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [app]
        ).fetchone()
        assert (super_, bypass) == (False, False)
        admin.execute(f"ALTER ROLE {app} BYPASSRLS")  # a careless admin's change
        refused = manage("db_roles", "--app-role", app, env=env)
        assert refused.returncode != 0
        assert "a superuser must run ALTER ROLE" in refused.stderr
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {app}")
        admin.execute(f"DROP ROLE IF EXISTS {owner}")
        admin.close()

"""PostgreSQL row-level security: the database's own tenant filter under the ORM's.

The app sets the tenant ids the actor may see with `SET LOCAL` (via `set_config(..., true)`) at
the start of each transaction that touches tenant data; rows of other tenants are then
invisible even to a query that forgot `for_tenant()`. It binds only the restricted app role:
superusers, table owners and BYPASSRLS roles are not subject to it (see docs/operations.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection, migrations, transaction

SETTING = "vouchsafe.tenant_ids"
ALL_TENANTS = "*"

VISIBLE_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION vouchsafe_tenant_visible(tid bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT CASE coalesce(current_setting('{SETTING}', true), '')
    WHEN '' THEN false
    WHEN '{ALL_TENANTS}' THEN true
    ELSE tid = ANY (string_to_array(current_setting('{SETTING}', true), ',')::bigint[])
  END
$$;
"""


def _policy_sql(table: str, allow_platform_rows: bool) -> str:
    condition = "vouchsafe_tenant_visible(tenant_id)"
    if allow_platform_rows:
        condition = f"(tenant_id IS NULL OR {condition})"
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON {table};
CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition});
"""


def _run_on_postgres(sql: str):
    def forward(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return forward


def enable_rls(table: str, *, allow_platform_rows: bool = False) -> migrations.RunPython:
    """Migration operation: tenant isolation policy on `table` (PostgreSQL only)."""
    return migrations.RunPython(
        _run_on_postgres(_policy_sql(table, allow_platform_rows)), migrations.RunPython.noop
    )


def install_visible_function() -> migrations.RunPython:
    """Migration operation: the SQL function every tenant isolation policy calls."""
    return migrations.RunPython(_run_on_postgres(VISIBLE_FUNCTION_SQL), migrations.RunPython.noop)


def _set(value: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [SETTING, value])


@contextmanager
def tenant_scope(tenant_ids: Iterable[int]) -> Iterator[None]:
    """A transaction in which the database shows only rows of `tenant_ids`."""
    with transaction.atomic():
        _set(",".join(str(int(t)) for t in tenant_ids))
        yield


@contextmanager
def system_scope() -> Iterator[None]:
    """A transaction for platform jobs (verification, sweeps) that may read every tenant."""
    with transaction.atomic():
        _set(ALL_TENANTS)
        yield


# Tables the app role may only append to and read; every other table gets full DML.
APPEND_ONLY_TABLES = ("audit_auditevent", "auditlog_logentry")
NO_DELETE_TABLES = (
    "audit_auditchainhead",
    "audit_chainintegrity",
    "audit_auditretention",
    "audit_legalhold",
    "audit_auditpurge",
)
# The one way the app role removes audit rows: an approved, signed purge (audit.retention).
PURGE_FUNCTION = "audit_purge_through(bigint)"
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def app_role_sql(role: str) -> list[str]:
    """Statements that give the restricted app role exactly the privileges it needs. `role`
    is a plain lower-case identifier (it is written into PL/pgSQL blocks as a literal)."""
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"{role!r} is not a plain role name (a-z, 0-9, _; 63 at most).")
    quoted = connection.ops.quote_name(role)
    statements = [
        f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE {quoted} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$""",
        # Only a superuser may touch these attributes, even to remove them (PostgreSQL 15): the
        # owner that runs this (documented as not a superuser) alters nothing it need not.
        f"""DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}' AND (rolsuper OR rolbypassrls)) THEN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
      RAISE EXCEPTION 'Role % is a superuser or bypasses row-level security; a superuser must '
        'run ALTER ROLE % NOSUPERUSER NOBYPASSRLS first', '{role}', '{role}';
    END IF;
    ALTER ROLE {quoted} NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$""",  # noqa: S608 - `role` is checked against ROLE_NAME above
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
    ]
    for table in APPEND_ONLY_TABLES:
        statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}")
    for table in NO_DELETE_TABLES:
        statements.append(f"REVOKE DELETE, TRUNCATE ON {table} FROM {quoted}")
    statements.append(
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY_TABLES)} FROM PUBLIC"
    )
    statements.append(f"GRANT EXECUTE ON FUNCTION {PURGE_FUNCTION} TO {quoted}")
    return statements

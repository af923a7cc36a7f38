"""Running test queries as the restricted application role, under row-level security."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from tenants.rls import app_role_sql, tenant_scope

APP_ROLE = "vouchsafe_test_app"


def app_role_configure() -> str:
    """Create the restricted role (if missing) with exactly the app's privileges."""
    with connection.cursor() as cursor:
        for statement in app_role_sql(APP_ROLE):
            cursor.execute(statement)
    return APP_ROLE


@contextmanager
def as_app_role(tenant_ids: list[int] | None) -> Iterator[None]:
    """A savepoint in which queries run as the restricted role, scoped to `tenant_ids`."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {APP_ROLE}")
        if tenant_ids is None:
            yield
        else:
            with tenant_scope(tenant_ids):
                yield
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")

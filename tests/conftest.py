from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from tenants.models import User

from . import factories
from .approle import app_role_configure


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_keepdb):
    """Always create the test database, also for a run of only `committed` tests.

    pytest-django creates it only for tests that use its `db` fixtures; a `committed` test
    run alone would otherwise reach the development database. The test cache is emptied
    too: a new database gives out the same ids again, and keys an earlier run left (rate-limit
    counters, a pending-consumer flag) name them.
    """
    from django.core.cache import caches
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"}
        )
    caches["default"].clear()
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0, keepdb=django_db_keepdb)


@pytest.fixture
def committed(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Database access outside a test transaction, for tests whose threads must see the data.

    Nothing is flushed afterwards (the audit tables refuse TRUNCATE by design); such tests
    create their own uniquely named tenants, and the test database is dropped at the end.
    """
    with django_db_blocker.unblock():
        yield
        from django.db import connections

        connections.close_all()


@pytest.fixture
def app_role(db) -> str:
    """The restricted application role, configured as `manage.py db_roles` does."""
    return app_role_configure()


@pytest.fixture
def acme(db):
    return factories.make_tenant()


@pytest.fixture
def globex(db):
    return factories.make_tenant()


@pytest.fixture
def deskco(db):
    return factories.make_provider()


def signed_in_client(user: User) -> Client:
    """A client signed in with password and a verified TOTP token, through the real views."""
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": factories.PASSWORD})
    assert response.status_code == 302, response.content
    response = client.post("/account/otp/", {"token": factories.totp_token(user)})
    assert response.status_code == 302 and response.url == "/", response.content
    return client

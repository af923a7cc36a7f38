from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.models import Tenant

from .. import factories


def key_client(tenant: Tenant, scopes: list[str] | None = None, *, kind: str = "integration"):
    """An API client holding a fresh key of `tenant` (all scopes its kind may hold by default)."""
    issued = factories.api_key(tenant, scopes, kind=kind)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    client.principal, client.token = issued.key.principal, issued.token
    return client


@pytest.fixture
def acme_api(acme):
    return key_client(acme)


def api(tenant: Tenant, path: str = "") -> str:
    return f"/api/v1/t/{tenant.slug}/{path}"


def staff_api_client(user) -> APIClient:
    """An API client on a staff member's verified session, sending its CSRF token."""
    from ..conftest import signed_in_client

    browser = signed_in_client(user)
    browser.get("/")  # the home page renders a form, which sets the CSRF cookie
    client = APIClient(enforce_csrf_checks=True)
    client.cookies = browser.cookies
    client.credentials(HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    return client

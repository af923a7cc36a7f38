"""The policy over the API is read by the people the console shows it to (issue 13): the
tenant's admins, security officers and auditors, and keys with `policy:read`. Agents and
supervisors read it nowhere, whichever face they use."""

from __future__ import annotations

import pytest

from tenants.choices import Role, Scope

from .. import factories
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db

DRAFT = "schema_version: 1\n"  # enough to be parsed; validity does not matter here
READS = (
    ("get", "policy/", None),
    ("get", "policy/versions/", None),
    ("post", "policy/validate/", {"text": DRAFT}),
    ("post", "policy/simulate/", {"text": DRAFT, "days": 7}),
)


def _call(client, tenant, method: str, path: str, body):
    return getattr(client, method)(api(tenant, path), body, format="json")


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_workers_of_cases_cannot_read_the_policy_over_the_api(acme, role):
    client = staff_api_client(factories.staff(role, tenant=acme))
    for method, path, body in READS:
        answer = _call(client, acme, method, path, body)
        assert answer.status_code == 403, (path, answer.content)
        assert answer.json()["code"] == "auth.scope_missing", path


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR])
def test_policy_readers_read_it(acme, role):
    client = staff_api_client(factories.staff(role, tenant=acme))
    for method, path, body in READS:
        answer = _call(client, acme, method, path, body)
        assert answer.status_code != 403, (path, answer.content)


def test_a_version_of_the_policy_is_refused_to_an_agent(acme):
    admin = staff_api_client(factories.staff(Role.TENANT_ADMIN, tenant=acme))
    versions = admin.get(api(acme, "policy/versions/")).json()["results"]
    agent = staff_api_client(factories.staff(Role.AGENT, tenant=acme))
    target = f"policy/versions/{versions[0]['id']}/" if versions else "policy/versions/1/"
    answer = agent.get(api(acme, target))
    assert answer.status_code == 403 and answer.json()["code"] == "auth.scope_missing"


def test_a_key_with_the_scope_reads_it(acme):
    client = key_client(acme, [Scope.POLICY_READ])
    for method, path, body in READS:
        assert _call(client, acme, method, path, body).status_code != 403, path

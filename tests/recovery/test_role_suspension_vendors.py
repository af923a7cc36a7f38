"""R-19 through the Okta and Google Workspace fakes: a T2 recovery, executed through the tenant's
connector, unassigns the subject's admin roles at the vendor; an approved
`privileged_role_restore` case assigns them back. The fakes' role assignments are the proof.
(The Graph fake, and every failure path, are in test_role_suspension.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from recovery.cases.models import RoleSuspension
from recovery.connectors.google_client import SCOPES as GOOGLE_SCOPES
from recovery.connectors.google_workspace import validate_google_settings
from recovery.connectors.models import ConnectorConfig
from recovery.connectors.okta import validate_okta_settings
from recovery.connectors.validation import _Errors
from tenants.choices import Role
from tenants.models import Tenant
from tests.fakes.google import FakeGoogle
from tests.fakes.okta import FakeOkta

from ..factories import execute, staff
from .test_role_suspension import events, ready, subject

pytestmark = pytest.mark.django_db

OKTA_TOKEN = "00QCjAl4MlV-WPXM-vouchsafe-roles-0HmjFx"


def assignments(google: FakeGoogle, user_id: str) -> list[str]:
    return [a["roleId"] for a in google.role_assignments.values() if a["assignedTo"] == user_id]


def configured(tenant: Tenant, kind: str, settings: dict) -> None:
    ConnectorConfig.objects.create(
        tenant=tenant,
        kind=kind,
        settings=settings,
        is_active=True,
        updated_by=staff(Role.TENANT_ADMIN, tenant=tenant),
    )


@pytest.fixture
def okta(acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOkta]:
    with FakeOkta() as fake:
        fake.add_api_token(OKTA_TOKEN)
        variable = f"VS_TEST_ROLES_OKTA_{acme.pk}"
        monkeypatch.setenv(variable, OKTA_TOKEN)
        errors = _Errors()
        settings = validate_okta_settings({"org_url": fake.url, "api_token_env": variable}, errors)
        assert errors.fields == {}
        configured(acme, "okta", settings)
        yield fake


@pytest.fixture
def google(acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        key = fake.add_service_account()
        fake.delegate(key["client_id"], *GOOGLE_SCOPES)
        fake.add_user("admin@example.com", "Ada Admin", is_admin=True)
        variable = f"VS_TEST_ROLES_GOOGLE_{acme.pk}"
        monkeypatch.setenv(variable, json.dumps(key))
        errors = _Errors()
        settings = validate_google_settings(
            {
                "admin_email": "admin@example.com",
                "service_account_key_env": variable,
                "token_uri": f"{fake.url}/token",
                "api_endpoint": fake.url,
            },
            errors,
        )
        assert errors.fields == {}
        configured(acme, "google_workspace", settings)
        yield fake


def test_okta_admin_roles_are_unassigned_at_a_t2_recovery_and_assigned_back_by_a_restore(
    acme, okta
):
    account, _ = subject(acme, None)
    user = okta.add_user(account.username, "Ada", "Lovelace")
    okta.add_factor(user["id"], "webauthn", provider="FIDO")
    okta.add_role(user["id"], "SUPER_ADMIN")
    okta.add_role(user["id"], "ORG_ADMIN")

    case = execute(ready(account, "mfa_reset"), staff(Role.SECURITY_OFFICER, tenant=acme))

    assert case.status == "executed"
    assert okta.roles.get(user["id"], []) == []
    suspension = RoleSuspension.objects.get(account=account)
    assert sorted(r["role_id"] for r in suspension.snapshot["roles"]) == [
        "ORG_ADMIN",
        "SUPER_ADMIN",
    ]
    assert events(acme, "roles.suspended", case)[0].data["connector"] == "okta"

    restore = execute(
        ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=acme)
    )
    assert restore.status == "executed"
    assert sorted(r["type"] for r in okta.roles[user["id"]]) == ["ORG_ADMIN", "SUPER_ADMIN"]
    suspension.refresh_from_db()
    assert suspension.restore_case_id == restore.pk


def test_google_admin_roles_are_removed_at_a_t2_recovery_and_assigned_back_by_a_restore(
    acme, google
):
    account, _ = subject(acme, None)
    user = google.add_user(account.username, "Ada Lovelace", enrolled_2sv=True)
    helpdesk = google.add_role("_HELP_DESK_ADMIN_ROLE")
    google.add_role_assignment(user.id, helpdesk)

    case = execute(ready(account, "mfa_reset"), staff(Role.SECURITY_OFFICER, tenant=acme))

    assert case.status == "executed"
    assert assignments(google, user.id) == []
    suspension = RoleSuspension.objects.get(account=account)
    assert [r["role_name"] for r in suspension.snapshot["roles"]] == ["_HELP_DESK_ADMIN_ROLE"]

    restore = execute(
        ready(account, "privileged_role_restore"), staff(Role.SECURITY_OFFICER, tenant=acme)
    )
    assert restore.status == "executed"
    assert assignments(google, user.id) == [helpdesk]
    assert events(acme, "roles.restored", restore)[0].data["ok"] is True

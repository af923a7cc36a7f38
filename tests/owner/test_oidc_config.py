"""The tenant's identity provider for account owners: dual control (R-27), its API and console
page, the agent's request from the API and the case page, and the IdP subject from the system
of record. Approval fetches the real provider's discovery document (tests/oidc_provider)."""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from audit.models import AuditEvent
from recovery.imports import parse_accounts
from recovery.models import ProtectedAccount
from recovery.owner.choices import IdpConfigStatus
from recovery.owner.idp_config import (
    idp_config_active,
    idp_config_approve,
    idp_config_draft,
    idp_config_retire,
)
from recovery.owner.models import IdpSignIn, OwnerIdpConfig
from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied, StepUpFailed

from ..api.conftest import api, key_client, staff_api_client
from ..conftest import signed_in_client
from ..factories import make_user, member, staff, step_up, totp_token
from .oidc_helpers import (
    SECRET_ENV,
    case_on,
    idp_config,
    idp_secret,  # noqa: F401 - a fixture
    oidc,  # noqa: F401 - a fixture
    subject_account,
)

pytestmark = pytest.mark.django_db


def _draft(tenant, oidc, actor=None, **changes):  # noqa: F811
    fields = {
        "issuer": oidc.issuer,
        "client_id": oidc.client_id,
        "client_secret_env": SECRET_ENV,
        "allowed_amr": ["hwk", "mfa"],
        "allowed_acr": [],
    }
    fields.update(changes)
    actor = actor or staff(Role.TENANT_ADMIN, tenant=tenant)
    return idp_config_draft(actor=actor, tenant=tenant, **fields)


# --- dual control -------------------------------------------------------------------------------


def test_a_second_admin_with_step_up_activates_a_draft(acme, oidc, idp_secret):  # noqa: F811
    drafter = staff(Role.TENANT_ADMIN, tenant=acme)
    config = _draft(acme, oidc, drafter)
    assert config.status == IdpConfigStatus.PENDING and idp_config_active(acme) is None
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    active = idp_config_approve(actor=approver, config=config, step_up=step_up(approver))
    assert (active.status, active.approved_by, active.drafted_by) == ("active", approver, drafter)
    assert idp_config_active(acme) == active
    event = AuditEvent.objects.get(action="idp.config_activated")
    assert event.data["step_up"]["device_type"] == "totp"
    assert AuditEvent.objects.filter(action="idp.config_drafted", data__config=config.pk)


def test_the_same_admin_cannot_approve_their_own_draft(acme, oidc, idp_secret):  # noqa: F811
    drafter = staff(Role.TENANT_ADMIN, tenant=acme)
    config = _draft(acme, oidc, drafter)
    with pytest.raises(PolicyDenied) as refused:
        idp_config_approve(actor=drafter, config=config, step_up=step_up(drafter))
    assert refused.value.code == "sod.approver_is_author"
    config.refresh_from_db()
    assert config.status == IdpConfigStatus.PENDING and idp_config_active(acme) is None
    refusal = AuditEvent.objects.get(action="idp.config_refused")
    assert refusal.data["code"] == "sod.approver_is_author" and refusal.data["step"] == "approve"


def test_the_same_person_under_another_account_cannot_approve(acme, oidc, idp_secret):  # noqa: F811
    drafter = make_user(person_id="0f3c6a2e-59f1-4b8e-9a41-7d2c55b0e001")
    member(drafter, Role.TENANT_ADMIN, tenant=acme)
    twin = make_user(person_id="0f3c6a2e-59f1-4b8e-9a41-7d2c55b0e001")
    member(twin, Role.TENANT_ADMIN, tenant=acme)
    config = _draft(acme, oidc, drafter)
    with pytest.raises(PolicyDenied) as refused:
        idp_config_approve(actor=twin, config=config, step_up=step_up(twin))
    assert refused.value.code == "sod.same_person"


def test_no_activation_without_a_fresh_step_up(acme, oidc, idp_secret):  # noqa: F811
    config = _draft(acme, oidc)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(StepUpFailed) as refused:
        idp_config_approve(actor=approver, config=config, step_up=None)
    assert refused.value.code == "stepup.required"
    assert idp_config_active(acme) is None


def test_the_database_refuses_an_active_configuration_without_a_second_person(acme, oidc):  # noqa: F811
    config = _draft(acme, oidc)
    rows = OwnerIdpConfig.objects.filter(pk=config.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(status=IdpConfigStatus.ACTIVE)  # no approver at all
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(status=IdpConfigStatus.ACTIVE, approved_by=config.drafted_by)
    assert rows.get().status == IdpConfigStatus.PENDING


def test_only_tenant_admins_draft_or_approve(acme, oidc, idp_secret):  # noqa: F811
    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied):
        _draft(acme, oidc, agent)
    config = _draft(acme, oidc)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(PolicyDenied):
        idp_config_approve(actor=officer, config=config, step_up=step_up(officer))


def test_a_pending_configuration_does_not_let_anyone_sign_in(acme, oidc, idp_secret):  # noqa: F811
    from recovery.owner.idp_sign_in import idp_sign_in_request

    _draft(acme, oidc)
    case = case_on(subject_account(acme))
    with pytest.raises(PolicyDenied) as refused:
        idp_sign_in_request(actor=case.opened_by, case=case)
    assert refused.value.code == "idp.not_configured"


def test_approval_replaces_the_active_one_and_retiring_ends_it(acme, oidc, idp_secret):  # noqa: F811
    first = idp_config(acme, oidc)
    second = idp_config(acme, oidc, amr=("hwk",))
    first.refresh_from_db()
    assert first.status == IdpConfigStatus.RETIRED and idp_config_active(acme) == second
    idp_config_retire(actor=staff(Role.TENANT_ADMIN, tenant=acme), config=second, reason="moved")
    assert idp_config_active(acme) is None
    assert AuditEvent.objects.filter(action="idp.config_retired").count() == 2


# --- what a configuration may say -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"client_secret_env": "not a name"}, "client_secret_env"),
        ({"client_secret_env": "lower_case"}, "client_secret_env"),
        ({"allowed_amr": []}, "allowed_amr"),
        ({"allowed_amr": ["pwd"]}, "allowed_amr"),
        ({"allowed_amr": ["hwk", "kba"]}, "allowed_amr"),
        ({"allowed_amr": ["has space"]}, "allowed_amr"),
        ({"client_id": ""}, "client_id"),
        ({"issuer": "ftp://idp.example.test"}, "issuer"),
        ({"issuer": "https://idp.example.test/?tenant=1"}, "issuer"),
        ({"issuer": "https://user:pw@idp.example.test"}, "issuer"),
    ],
)
def test_invalid_settings_are_refused_by_field(acme, oidc, changes, field):  # noqa: F811
    with pytest.raises(InvalidInput) as refused:
        _draft(acme, oidc, **changes)
    assert refused.value.code == "idp.config_invalid"
    assert field in refused.value.field_errors, refused.value.field_errors
    assert not OwnerIdpConfig.objects.filter(tenant=acme).exists()


@override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=False)
def test_production_refuses_a_plain_http_or_private_issuer(acme, oidc):  # noqa: F811
    with pytest.raises(InvalidInput) as refused:
        _draft(acme, oidc)  # http://127.0.0.1:<port>
    assert "https" in refused.value.field_errors["issuer"][0]
    with pytest.raises(InvalidInput) as refused:
        _draft(acme, oidc, issuer="https://127.0.0.1/")
    assert "private" in refused.value.field_errors["issuer"][0]


def test_approval_needs_the_secret_in_the_environment(acme, oidc, monkeypatch):  # noqa: F811
    monkeypatch.delenv(SECRET_ENV, raising=False)
    config = _draft(acme, oidc)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        idp_config_approve(actor=approver, config=config, step_up=step_up(approver))
    assert refused.value.code == "idp.secret_missing"


def test_approval_needs_the_providers_discovery_to_answer(acme, oidc, idp_secret):  # noqa: F811
    from ..oidc_provider import free_port

    config = _draft(acme, oidc, issuer=f"http://127.0.0.1:{free_port()}")
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(DomainError) as refused:
        idp_config_approve(actor=approver, config=config, step_up=step_up(approver))
    assert refused.value.code == "idp.discovery_failed"
    config.refresh_from_db()
    assert config.status == IdpConfigStatus.PENDING


def test_approval_refuses_a_discovery_document_naming_another_issuer(acme, oidc, idp_secret):  # noqa: F811
    config = _draft(acme, oidc, issuer=oidc.issuer + "/")  # the document says no slash
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(DomainError) as refused:
        idp_config_approve(actor=approver, config=config, step_up=step_up(approver))
    assert refused.value.code == "idp.discovery_failed"
    assert "issuer_mismatch" in refused.value.message


# --- the API ------------------------------------------------------------------------------------


def test_api_draft_then_approve_by_another_admin(acme, oidc, idp_secret):  # noqa: F811
    drafter, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    body = {
        "issuer": oidc.issuer,
        "client_id": oidc.client_id,
        "client_secret_env": SECRET_ENV,
        "allowed_amr": ["hwk"],
    }
    answer = staff_api_client(drafter).post(api(acme, "owner-idp/"), body, format="json")
    assert answer.status_code == 201, answer.content
    config_id = answer.json()["id"]
    own = staff_api_client(drafter).post(
        api(acme, f"owner-idp/{config_id}/approve/"), {"otp": totp_token(drafter)}, format="json"
    )
    assert own.status_code == 403 and own.json()["code"] == "sod.approver_is_author"
    done = staff_api_client(approver).post(
        api(acme, f"owner-idp/{config_id}/approve/"), {"otp": totp_token(approver)}, format="json"
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "active" and done.json()["approved_by"] == approver.username
    listed = staff_api_client(approver).get(api(acme, "owner-idp/"))
    assert [c["id"] for c in listed.json()["results"]] == [config_id]
    assert "secret" not in json.dumps(listed.json()).replace("client_secret_env", "")


def test_api_keys_cannot_change_the_configuration(acme, oidc):  # noqa: F811
    config = _draft(acme, oidc)
    client = key_client(acme)
    assert client.post(api(acme, "owner-idp/"), {}, format="json").status_code == 403
    answer = client.post(api(acme, f"owner-idp/{config.pk}/approve/"), {"otp": "123456"})
    assert answer.status_code == 403
    assert client.get(api(acme, "owner-idp/")).status_code == 200  # policy:read


def test_api_agent_asks_for_an_idp_sign_in(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    agent = staff(Role.AGENT, tenant=acme)
    case = case_on(subject_account(acme), agent)
    answer = staff_api_client(agent).post(api(acme, f"cases/{case.pk}/idp-sign-in/"))
    assert answer.status_code == 201, answer.content
    assert answer.json()["status"] == "started" and answer.json()["evidence_id"] is None
    assert IdpSignIn.objects.get(case=case).pk == answer.json()["id"]


def test_api_refuses_the_request_without_a_configuration(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = case_on(subject_account(acme), agent)
    answer = staff_api_client(agent).post(api(acme, f"cases/{case.pk}/idp-sign-in/"))
    assert answer.status_code == 403 and answer.json()["code"] == "idp.not_configured"


# --- the console --------------------------------------------------------------------------------


def test_console_draft_and_approve(acme, oidc, idp_secret):  # noqa: F811
    drafter, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    browser = signed_in_client(drafter)
    page = browser.get(f"/t/{acme.slug}/owner-idp/")
    assert page.status_code == 200 and b'id="idp-none"' in page.content
    posted = browser.post(
        f"/t/{acme.slug}/owner-idp/drafts/",
        {
            "issuer": oidc.issuer,
            "client_id": oidc.client_id,
            "client_secret_env": SECRET_ENV,
            "allowed_amr": "hwk, mfa",
            "allowed_acr": "",
        },
    )
    assert posted.status_code == 302, posted.content[:2000]
    config = OwnerIdpConfig.objects.get(tenant=acme)
    assert config.allowed_amr == ["hwk", "mfa"]
    own_page = browser.get(f"/t/{acme.slug}/owner-idp/")
    assert b"another tenant admin has to approve it" in own_page.content
    second = signed_in_client(approver)
    second.post(f"/t/{acme.slug}/owner-idp/{config.pk}/approve/", {"token": totp_token(approver)})
    config.refresh_from_db()
    assert config.status == IdpConfigStatus.ACTIVE
    assert b'id="idp-active"' in second.get(f"/t/{acme.slug}/owner-idp/").content


def test_console_shows_refusals_at_their_field(acme, oidc):  # noqa: F811
    browser = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    posted = browser.post(
        f"/t/{acme.slug}/owner-idp/drafts/",
        {
            "issuer": oidc.issuer,
            "client_id": "x",
            "client_secret_env": SECRET_ENV,
            "allowed_amr": "pwd",
        },
    )
    assert posted.status_code == 400
    assert b"never an authenticator bound" in posted.content


def test_console_page_is_not_for_agents(acme):
    assert (
        signed_in_client(staff(Role.AGENT, tenant=acme))
        .get(f"/t/{acme.slug}/owner-idp/")
        .status_code
        == 403
    )


def test_case_page_offers_the_request_and_shows_its_status(acme, oidc, idp_secret):  # noqa: F811
    idp_config(acme, oidc)
    agent = staff(Role.AGENT, tenant=acme)
    case = case_on(subject_account(acme), agent)
    browser = signed_in_client(agent)
    page = browser.get(f"/t/{acme.slug}/cases/{case.pk}/")
    assert b'id="case-idp-sign-in"' in page.content
    answer = browser.post(f"/t/{acme.slug}/cases/{case.pk}/idp-sign-in/")
    assert answer.status_code == 302
    assert IdpSignIn.objects.filter(case=case).exists()
    assert b'id="idp-sign-in-status"' in browser.get(f"/t/{acme.slug}/cases/{case.pk}/").content


# --- the IdP subject comes from the system of record --------------------------------------------


def test_idp_subject_is_imported_and_synced(acme):
    from audit.context import Actor
    from recovery.services import accounts_import

    item = {"external_id": "E1", "username": "jane@acme.test", "display_name": "Jane Doe"}
    records, errors = parse_accounts(json.dumps([{**item, "idp_subject": "00u1abcd"}]), "json")
    assert not errors
    accounts_import(actor=Actor.system("tests"), tenant=acme, records=records, source="hris")
    account = ProtectedAccount.objects.for_tenant(acme).get(external_id="E1")
    assert account.idp_subject == "00u1abcd"
    records, _ = parse_accounts(json.dumps([{**item, "idp_subject": "00u2efgh"}]), "json")
    accounts_import(actor=Actor.system("tests"), tenant=acme, records=records, source="hris")
    account.refresh_from_db()
    assert account.idp_subject == "00u2efgh"
    csv = "external_id,username,display_name,idp_subject\nE2,j@acme.test,J,sub-e2\n"
    records, errors = parse_accounts(csv, "csv")
    assert not errors and records[0].idp_subject == "sub-e2"
    _records, errors = parse_accounts(json.dumps([{**item, "idp_subject": "x" * 300}]), "json")
    assert [e.field for e in errors] == ["idp_subject"]

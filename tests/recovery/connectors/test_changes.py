"""Connector changes under dual control (R-27): one tenant_admin proposes, a second (another
account and another person) approves with a fresh step-up and the change applies in the same
transaction; another admin rejects, the requester withdraws; the connection is tested before
and after, and every step, refusals included, is in the trail without a secret."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from recovery.connectors import connector_for
from recovery.connectors.change_selectors import connector_change_pending
from recovery.connectors.manual import ManualConnector
from recovery.connectors.models import ConnectorChange, ConnectorChangeStatus, ConnectorConfig
from recovery.connectors.policies import can_read_connector
from recovery.connectors.services import (
    connector_change_approve,
    connector_change_reject,
    connector_change_request,
    connector_change_withdraw,
    connector_test,
)
from recovery.connectors.summary import settings_summary, summary_diff
from recovery.connectors.webhook import WebhookConnector
from tenants.access import access_in
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, InvalidInput, PolicyDenied, StepUpFailed

from ...approle import as_app_role
from ...connector_helpers import connector_set
from ...factories import active_grant, make_user, member, staff, step_up

pytestmark = pytest.mark.django_db

KEY_ENV = "VOUCHSAFE_TEST_CHANGE_KEY"
HOOK = {"url": "https://automation.acme.example/hooks/tok_5e4d3c2b1a", "secret_env": KEY_ENV}
LDAP = {
    "server_uri": "ldaps://ldap.acme.example",
    "bind_dn": "cn=vouchsafe,ou=services,dc=acme,dc=example",
    "bind_password_env": "ACME_BIND_PASSWORD",
    "base_dn": "dc=acme,dc=example",
}


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def proposed(tenant, requester=None, settings=None) -> ConnectorChange:
    return connector_change_request(
        actor=requester or staff(Role.TENANT_ADMIN, tenant=tenant),
        tenant=tenant,
        kind="webhook",
        settings=settings or HOOK,
    )


def assert_refused_and_unapplied(tenant, change, code: str, step: str = "approve") -> None:
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING and change.decided_by is None
    assert not ConnectorConfig.objects.for_tenant(tenant).exists()
    assert isinstance(connector_for(tenant), ManualConnector)
    assert events(tenant, "connector.configured") == []
    refused = events(tenant, "connector.change_refused")[-1]
    assert (refused.data["code"], refused.data["step"]) == (code, step)
    assert refused.data["change"] == change.pk and refused.target_id == str(change.pk)


# --- the second person ------------------------------------------------------------------------


def test_a_second_admin_with_a_fresh_step_up_applies_the_change(acme):
    requester, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = proposed(acme, requester)
    assert change.status == ConnectorChangeStatus.PENDING
    assert connector_change_pending(tenant=acme) == change
    assert isinstance(connector_for(acme), ManualConnector)  # a proposal changes nothing

    applied = connector_change_approve(actor=approver, change=change, step_up=step_up(approver))

    assert (applied.status, applied.decided_by) == (ConnectorChangeStatus.APPLIED, approver)
    assert isinstance(connector_for(acme), WebhookConnector)
    config = ConnectorConfig.objects.for_tenant(acme).get()
    assert (config.kind, config.settings, config.updated_by) == ("webhook", HOOK, approver)
    [requested] = events(acme, "connector.change_requested")
    assert requested.actor_id == str(requester.pk) and requested.data["previous"] is None
    assert {"kind", "url", "secret_env"} <= set(requested.data["changed"])
    [approved] = events(acme, "connector.change_approved")
    assert approved.actor_id == str(approver.pk)
    assert approved.data["requested_by"] == requester.username
    assert approved.data["step_up"]["device_type"] == "totp"
    assert approved.data["settings_summary"]["secret_env"] == KEY_ENV
    [configured] = events(acme, "connector.configured")
    assert configured.data["change"] == change.pk and configured.seq == approved.seq - 1
    assert connector_change_pending(tenant=acme) is None


def test_the_requester_cannot_approve_their_own_change(acme):
    requester = staff(Role.TENANT_ADMIN, tenant=acme)
    change = proposed(acme, requester)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_approve(actor=requester, change=change, step_up=step_up(requester))
    assert refused.value.code == "sod.approver_is_requester"
    assert_refused_and_unapplied(acme, change, "sod.approver_is_requester")


def test_the_same_person_under_another_account_cannot_approve(acme):
    requester = staff(Role.TENANT_ADMIN, tenant=acme)
    alias = make_user(person_id=str(requester.person_id))
    member(alias, Role.TENANT_ADMIN, tenant=acme)
    change = proposed(acme, requester)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_approve(actor=alias, change=change, step_up=step_up(alias))
    assert refused.value.code == "sod.same_person"
    assert_refused_and_unapplied(acme, change, "sod.same_person")


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR])
def test_only_a_tenant_admin_approves(acme, role):
    change = proposed(acme)
    other = staff(role, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_approve(actor=other, change=change, step_up=step_up(other))
    assert refused.value.code == "tenant.admin_required"
    assert_refused_and_unapplied(acme, change, "tenant.admin_required")


def test_an_admin_of_another_tenant_cannot_approve(acme, globex):
    change = proposed(acme)
    outsider = staff(Role.TENANT_ADMIN, tenant=globex)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_approve(actor=outsider, change=change, step_up=step_up(outsider))
    assert refused.value.code == "tenant.no_access"
    assert_refused_and_unapplied(acme, change, "tenant.no_access")


def test_provider_staff_cannot_approve_through_a_grant(acme, deskco):
    change = proposed(acme)
    active_grant(deskco, acme, roles=(Role.SUPERVISOR, Role.SECURITY_OFFICER))
    msp_user = staff(Role.SECURITY_OFFICER, provider=deskco)
    member(msp_user, Role.TENANT_ADMIN, provider=deskco)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_approve(actor=msp_user, change=change, step_up=step_up(msp_user))
    assert refused.value.code == "tenant.admin_not_delegable"
    assert_refused_and_unapplied(acme, change, "tenant.admin_not_delegable")
    assert events(acme, "connector.change_refused")[-1].actor_org == deskco.name
    assert not can_read_connector(access_in(msp_user, acme))  # nor read the settings


def test_the_database_refuses_a_change_applied_by_its_requester(acme):
    change = proposed(acme)
    rows = ConnectorChange.objects.filter(pk=change.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(status=ConnectorChangeStatus.APPLIED)  # nobody decided it
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.update(
            status=ConnectorChangeStatus.APPLIED,
            decided_by=change.requested_by,
            decided_at=timezone.now(),
        )
    assert rows.get().status == ConnectorChangeStatus.PENDING


def test_what_was_proposed_cannot_be_edited_before_approval(acme):
    change = proposed(acme)
    evil = {**HOOK, "url": "https://attacker.example/collect"}
    with pytest.raises(DatabaseError, match="Cannot update"), transaction.atomic():
        ConnectorChange.objects.filter(pk=change.pk).update(settings=evil)
    change.refresh_from_db()
    assert change.settings == HOOK


# --- the fresh step-up ------------------------------------------------------------------------


def test_approval_without_a_step_up_is_refused(acme):
    change = proposed(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(StepUpFailed) as refused:
        connector_change_approve(actor=approver, change=change, step_up=None)
    assert refused.value.code == "stepup.required"
    assert_refused_and_unapplied(acme, change, "stepup.required")


def test_a_stale_or_someone_elses_step_up_is_refused(acme, monkeypatch):
    change = proposed(acme)
    approver, bystander = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    with pytest.raises(StepUpFailed) as refused:
        connector_change_approve(actor=approver, change=change, step_up=step_up(bystander))
    assert refused.value.code == "stepup.invalid_proof"
    proof = step_up(approver)
    later = timezone.now() + timedelta(minutes=3)
    monkeypatch.setattr("tenants.stepup.timezone.now", lambda: later)
    with pytest.raises(StepUpFailed) as refused:
        connector_change_approve(actor=approver, change=change, step_up=proof)
    assert refused.value.code == "stepup.stale"
    monkeypatch.undo()
    assert_refused_and_unapplied(acme, change, "stepup.stale")


def test_one_step_up_approves_one_change(acme, globex):
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    member(approver, Role.TENANT_ADMIN, tenant=globex)
    proof = step_up(approver)
    connector_change_approve(actor=approver, change=proposed(acme), step_up=proof)
    change = proposed(globex)
    with pytest.raises(StepUpFailed) as refused:
        connector_change_approve(actor=approver, change=change, step_up=proof)
    assert refused.value.code == "stepup.proof_reused"
    assert_refused_and_unapplied(globex, change, "stepup.proof_reused")


# --- one pending change, decided once ---------------------------------------------------------


def test_one_change_is_pending_at_a_time(acme):
    first = proposed(acme)
    with pytest.raises(InvalidInput) as refused:
        connector_change_request(
            actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, kind="ldap", settings=LDAP
        )
    assert refused.value.code == "connector.change_pending"
    assert str(first.pk) in refused.value.message
    assert list(ConnectorChange.objects.for_tenant(acme)) == [first]
    with pytest.raises(IntegrityError), transaction.atomic():  # the database agrees
        ConnectorChange.objects.create(
            tenant=acme, kind="ldap", settings=LDAP, requested_by=first.requested_by
        )


def test_another_admin_rejects_with_a_reason_and_nothing_applies(acme):
    requester, reviewer = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = proposed(acme, requester)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_reject(actor=requester, change=change, reason="changed my mind")
    assert refused.value.code == "connector.reject_own"
    with pytest.raises(InvalidInput) as refused:
        connector_change_reject(actor=reviewer, change=change, reason="  ")
    assert refused.value.code == "connector.reason_invalid"
    assert set(refused.value.field_errors) == {"reason"}
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING

    rejected = connector_change_reject(
        actor=reviewer, change=change, reason="The automation host is not ours."
    )
    assert (rejected.status, rejected.decided_by) == (ConnectorChangeStatus.REJECTED, reviewer)
    assert not ConnectorConfig.objects.for_tenant(acme).exists()
    [event] = events(acme, "connector.change_rejected")
    assert event.data["reason"] == "The automation host is not ours."
    assert event.data["requested_by"] == requester.username
    codes = [e.data["code"] for e in events(acme, "connector.change_refused")]
    assert codes == ["connector.reject_own", "connector.reason_invalid"]


def test_only_the_requester_withdraws_and_then_a_new_change_may_be_proposed(acme):
    requester, other = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = proposed(acme, requester)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_withdraw(actor=other, change=change)
    assert refused.value.code == "connector.not_requester"
    withdrawn = connector_change_withdraw(actor=requester, change=change, reason="typo in URL")
    assert withdrawn.status == ConnectorChangeStatus.WITHDRAWN
    assert events(acme, "connector.change_withdrawn")[0].data["reason"] == "typo in URL"
    assert proposed(acme, requester).status == ConnectorChangeStatus.PENDING


@pytest.mark.parametrize("end", ["approve", "reject", "withdraw"])
def test_a_decided_change_cannot_be_decided_again(acme, end):
    requester, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = proposed(acme, requester)
    connector_change_reject(actor=approver, change=change, reason="no")
    with pytest.raises(PolicyDenied) as refused:
        if end == "approve":
            connector_change_approve(actor=approver, change=change, step_up=step_up(approver))
        elif end == "reject":
            connector_change_reject(actor=approver, change=change, reason="no again")
        else:
            connector_change_withdraw(actor=requester, change=change)
    assert refused.value.code == "connector.change_not_pending"
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.REJECTED
    assert not ConnectorConfig.objects.for_tenant(acme).exists()


def test_a_change_proposed_against_another_configuration_is_not_applied(acme):
    connector_set(acme, kind="manual", settings={})
    change = proposed(acme)
    # Moved under it by a path other than an approval (a table owner, a restore).
    ConnectorConfig.objects.for_tenant(acme).update(is_active=False)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(InvalidInput) as refused:
        connector_change_approve(actor=approver, change=change, step_up=step_up(approver))
    assert refused.value.code == "connector.change_outdated"
    assert ConnectorConfig.objects.for_tenant(acme).get().kind == "manual"


def test_an_approval_that_fails_half_way_leaves_the_configuration_untouched(acme, monkeypatch):
    """The configuration and the approval's event are one transaction: no event, no change."""
    import recovery.connectors.services as services

    change = proposed(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    real_record = services.record

    def failing_record(*, action, **kwargs):
        if action == "connector.change_approved":
            raise RuntimeError("the trail is unavailable")
        return real_record(action=action, **kwargs)

    monkeypatch.setattr(services, "record", failing_record)
    with pytest.raises(RuntimeError):
        connector_change_approve(actor=approver, change=change, step_up=step_up(approver))
    monkeypatch.undo()
    change.refresh_from_db()
    assert change.status == ConnectorChangeStatus.PENDING
    assert not ConnectorConfig.objects.for_tenant(acme).exists()
    assert events(acme, "connector.configured") == []


# --- validation -------------------------------------------------------------------------------


def test_invalid_settings_are_refused_by_field_and_the_refusal_keeps_no_value(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(InvalidInput) as refused:
        connector_change_request(
            actor=admin,
            tenant=acme,
            kind="ldap",
            settings={**LDAP, "bind_password_env": "hunter2 is my password", "port": 636},
        )
    assert refused.value.code == "connector.settings_invalid"
    assert set(refused.value.field_errors) == {"bind_password_env", "port"}
    assert "environment variable" in refused.value.field_errors["bind_password_env"][0]
    with pytest.raises(InvalidInput) as refused:
        connector_change_request(actor=admin, tenant=acme, kind="scim", settings={})
    assert refused.value.code == "connector.kind_invalid"
    assert not ConnectorChange.objects.for_tenant(acme).exists()
    trail = events(acme, "connector.change_refused")
    assert [e.data["fields"] for e in trail] == [["bind_password_env", "port"], ["kind"]]
    assert "hunter2" not in json.dumps([e.data for e in trail])


# --- test connection --------------------------------------------------------------------------


def test_a_pending_change_is_tested_before_approval_and_audited(acme, monkeypatch):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    change = proposed(acme)
    monkeypatch.delenv(KEY_ENV, raising=False)
    missing = connector_test(actor=admin, tenant=acme, change=change)
    assert not missing.ok and KEY_ENV in missing.detail  # the variable's name as it is spelt
    monkeypatch.setenv(KEY_ENV, "signing-key-for-the-test")
    assert connector_test(actor=admin, tenant=acme, change=change).ok
    assert connector_test(actor=admin, tenant=acme).ok  # in force: the manual connector
    pending_missing, pending_ok, in_force = events(acme, "connector.tested")
    assert (pending_missing.data["ok"], pending_ok.data["ok"]) == (False, True)
    assert pending_ok.data["configuration"] == "pending"
    assert pending_ok.data["change"] == change.pk and pending_ok.target_id == str(change.pk)
    assert (in_force.data["configuration"], in_force.data["kind"]) == ("active", "manual")
    dumped = json.dumps([e.data for e in events(acme, "connector.tested")])
    assert "tok_5e4d3c2b1a" not in dumped and "signing-key-for-the-test" not in dumped


def test_only_a_tenant_admin_tests_and_only_a_pending_change_of_the_tenant(acme, globex):
    change = proposed(acme)
    for role in (Role.AUDITOR, Role.SECURITY_OFFICER, Role.AGENT):
        with pytest.raises(PolicyDenied) as refused:
            connector_test(actor=staff(role, tenant=acme), tenant=acme, change=change)
        assert refused.value.code == "tenant.admin_required"
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    theirs = proposed(globex)
    with pytest.raises(CrossTenantNotFound):
        connector_test(actor=admin, tenant=acme, change=theirs)
    connector_change_withdraw(actor=change.requested_by, change=change)
    with pytest.raises(PolicyDenied) as refused:
        connector_test(actor=admin, tenant=acme, change=change)
    assert refused.value.code == "connector.change_not_pending"
    assert events(acme, "connector.tested") == []


def test_a_check_that_raises_is_reported_as_a_failure_naming_only_its_type(acme, monkeypatch):
    def broken_health(self):
        raise ConnectionError("https://automation.acme.example/hooks/tok_5e4d3c2b1a timed out")

    monkeypatch.setattr(WebhookConnector, "health", broken_health)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    health = connector_test(actor=admin, tenant=acme, change=proposed(acme))
    assert (health.ok, health.detail) == (False, "The check failed with ConnectionError.")
    assert "tok_" not in json.dumps(events(acme, "connector.tested")[0].data)


# --- who reads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "reads"),
    [
        (Role.TENANT_ADMIN, True),
        (Role.SECURITY_OFFICER, True),
        (Role.AUDITOR, True),
        (Role.AGENT, False),
        (Role.SUPERVISOR, False),
        (Role.TRUSTED_REFEREE, False),
    ],
)
def test_the_tenants_admins_officers_and_auditors_read_the_connector(acme, role, reads):
    assert bool(can_read_connector(access_in(staff(role, tenant=acme), acme))) is reads


@pytest.mark.usefixtures("app_role")
def test_changes_of_other_tenants_are_invisible_to_the_app_role(acme, globex):
    mine, theirs = proposed(acme), proposed(globex)
    with as_app_role([acme.pk]):
        assert list(ConnectorChange.objects.values_list("pk", flat=True)) == [mine.pk]
        assert ConnectorChange.objects.filter(pk=theirs.pk).update(reason="x") == 0


# --- what is shown ----------------------------------------------------------------------------


def test_the_summary_shows_no_url_path_and_hides_what_it_does_not_know():
    summary = settings_summary("webhook", HOOK)
    assert summary["url"]["origin"] == "https://automation.acme.example"
    assert "tok_" not in json.dumps(summary) and summary["secret_env"] == KEY_ENV
    okta = settings_summary("okta", {"org_url": "https://acme.okta.com/x?t=1", "client_id": "c"})
    assert okta["org_url"]["origin"] == "https://acme.okta.com" and okta["client_id"] == "c"
    unknown = settings_summary("scim", {"token_env": "SCIM_TOKEN", "base": "https://x/y"})
    assert set(unknown) == {"base", "token_env"}
    assert all(set(value) == {"sha256"} for value in unknown.values())


def test_the_diff_names_each_setting_that_changes():
    rows = summary_diff(("webhook", HOOK, True), ("webhook", {**HOOK, "secret_env": "NEW"}, False))
    assert [row.name for row in rows if row.changed] == ["is_active", "secret_env"]
    first = summary_diff(None, ("manual", {"console": "entra", "steps": {}}, True))
    assert [(row.name, row.current, row.proposed) for row in first[:3]] == [
        ("kind", None, "manual"),
        ("is_active", None, True),
        ("console", None, "entra"),
    ]


# Per cloud kind: settings as proposed, what their audited summary shows in clear (ids, the
# names of variables and files, numbers, booleans), and each URL's origin. The URLs are the
# vendors' defaults: Google's token address has a path, which the summary never shows.
CLOUD_AUDITED = {
    "entra": (
        {
            "tenant_id": "b7e3c1d2-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
            "client_id": "4a1c2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "client_secret_env": "CONTOSO_GRAPH_SECRET",
            "privileged_roles": ["62E90394-69F5-4237-9190-012177145E10"],
        },
        {
            "tenant_id": "b7e3c1d2-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
            "client_id": "4a1c2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "client_secret_env": "CONTOSO_GRAPH_SECRET",
            "tap_lifetime_minutes": 60,
            "ca_bundle": "",
            "privileged_roles": ["62e90394-69f5-4237-9190-012177145e10"],
        },
        {
            "authority_host": "https://login.microsoftonline.com",
            "graph_url": "https://graph.microsoft.com",
        },
    ),
    "okta": (
        {"org_url": "https://acme.okta.com/", "api_token_env": "ACME_OKTA_TOKEN"},
        {
            "api_token_env": "ACME_OKTA_TOKEN",
            "client_id": "",
            "key_id": "",
            "private_key_env": "",
            "private_key_file": "",
            "manage_roles": True,
        },
        {"org_url": "https://acme.okta.com"},
    ),
    "google_workspace": (
        {
            "admin_email": "recovery-admin@acme.example",
            "service_account_key_env": "ACME_GOOGLE_KEY",
            "manage_roles": False,
        },
        {
            "admin_email": "recovery-admin@acme.example",
            "customer_id": "my_customer",
            "service_account_key_env": "ACME_GOOGLE_KEY",
            "service_account_key_file": "",
            "manage_roles": False,
            "manage_delegates": True,
        },
        {
            "token_uri": "https://oauth2.googleapis.com",
            "api_endpoint": "https://admin.googleapis.com",
            "gmail_endpoint": "https://gmail.googleapis.com",
        },
    ),
}


@pytest.mark.parametrize("kind", CLOUD_AUDITED)
def test_a_cloud_change_is_audited_with_its_ids_and_names_in_clear_and_urls_as_origin(acme, kind):
    raw, in_clear, origins = CLOUD_AUDITED[kind]
    requester, approver = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    change = connector_change_request(actor=requester, tenant=acme, kind=kind, settings=raw)
    connector_change_approve(actor=approver, change=change, step_up=step_up(approver))

    [requested] = events(acme, "connector.change_requested")
    [approved] = events(acme, "connector.change_approved")
    summary = requested.data["settings_summary"]
    assert approved.data["settings_summary"] == summary
    assert set(summary) == set(change.settings) == {*in_clear, *origins}
    assert {name: summary[name] for name in in_clear} == in_clear
    assert {name: summary[name]["origin"] for name in origins} == origins
    assert all(set(summary[name]) == {"origin", "sha256"} for name in origins)
    assert "/token" not in json.dumps(summary)
    assert set(requested.data["changed"]) == {"kind", "is_active", *summary}

"""A tenant's connector: settings checked per field, configured by its tenant_admins only (a
proposal and a second admin's approval, tests/recovery/connectors/test_changes.py), audited
without secrets, isolated per tenant, and the connector it stands for."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, transaction

from audit.models import AuditEvent
from recovery.connectors import connector_for
from recovery.connectors.ldap import LdapConnector
from recovery.connectors.manual import ManualConnector
from recovery.connectors.models import ConnectorChange, ConnectorConfig
from recovery.connectors.selectors import connector_config_get
from recovery.connectors.services import connector_change_request, connector_test
from recovery.connectors.validation import validate_settings
from recovery.connectors.webhook import WebhookConnector
from tenants.choices import Role
from tenants.exceptions import InvalidInput, PolicyDenied

from ...approle import as_app_role
from ...connector_helpers import connector_set
from ...factories import active_grant, api_key, make_tenant, make_user, member, staff
from ...ldap_server import SERVICE_DN, SERVICE_PASSWORD, SUFFIX, TAP_GROUP

ENV = "VOUCHSAFE_TEST_CONFIG_BIND"
LDAP = {
    "server_uri": "ldaps://ldap.acme.example",
    "bind_dn": "cn=vouchsafe,ou=services,dc=acme,dc=example",
    "bind_password_env": ENV,
    "base_dn": "dc=acme,dc=example",
}


def field_errors(kind: str, settings) -> dict[str, list[str]]:
    with pytest.raises(InvalidInput) as refused:
        validate_settings(kind, settings)
    assert refused.value.code == "connector.settings_invalid"
    return refused.value.field_errors


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


# --- validation, field by field -------------------------------------------------------------


def test_ldap_defaults_are_filled_in_per_directory():
    openldap = validate_settings("ldap", LDAP)
    assert openldap["user_filter"] == "(&(objectClass=inetOrgPerson)(uid={username}))"
    assert (openldap["password_mode"], openldap["must_change_attribute"]) == (
        "lock",
        "shadowLastChange",
    )
    assert openldap["must_change_object_class"] == "shadowAccount"
    ad = validate_settings("ldap", {**LDAP, "directory": "active_directory"})
    assert (ad["password_mode"], ad["password_attribute"]) == ("random", "unicodePwd")
    assert (ad["must_change_attribute"], ad["must_change_value"]) == ("pwdLastSet", "0")
    assert ad["uac_clear_bits"] == 0x10000 and ad["unlock_attribute"] == "lockoutTime"
    assert ad["user_filter"] == "(&(objectClass=user)(userPrincipalName={username}))"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"server_uri": "http://ldap.acme.example"}, "server_uri"),
        ({"server_uri": "ldaps://ldap.acme.example/dc=acme"}, "server_uri"),
        ({"server_uri": "ldaps://user@ldap.acme.example"}, "server_uri"),
        ({"server_uri": "ldap://ldap.acme.example"}, "server_uri"),  # clear text, not allowed
        ({"server_uri": "ldaps://ldap.acme.example", "start_tls": True}, "start_tls"),
        ({"bind_dn": "not a dn"}, "bind_dn"),
        ({"base_dn": ""}, "base_dn"),
        ({"bind_password_env": "s3cret password!"}, "bind_password_env"),
        ({"bind_password_env": "lower_case"}, "bind_password_env"),
        ({"user_filter": "(uid=alice)"}, "user_filter"),
        ({"user_filter": "(uid={username})(x"}, "user_filter"),
        ({"user_filter": "(uid={password})"}, "user_filter"),
        ({"user_filter": "(uid={username.__class__})"}, "user_filter"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
        ({"start_tls": "yes"}, "start_tls"),
        ({"password_mode": "plain"}, "password_mode"),
        ({"must_change_attribute": "bad attr!"}, "must_change_attribute"),
        (
            {"temporary_access_group_dn": "cn=x,", "temporary_access_attribute": ""},
            "temporary_access_group_dn",
        ),
        (
            {
                "temporary_access_group_dn": "cn=tap,dc=acme,dc=example",
                "temporary_access_attribute": "description",
                "temporary_access_value": "x",
            },
            "temporary_access_attribute",
        ),
        ({"temporary_access_attribute": "description"}, "temporary_access_value"),
        ({"unlock_attribute": "lockoutTime"}, "unlock_value"),
        ({"tls_ca_file": "relative/ca.pem"}, "tls_ca_file"),
        ({"password": "hunter2"}, "password"),
        ({"directory": "novell"}, "directory"),
        ({"password_attribute": "unicodePwd", "password_mode": "lock"}, "password_mode"),
        ({"uac_clear_bits": -1}, "uac_clear_bits"),
    ],
)
def test_ldap_settings_are_refused_per_field(change, field):
    errors = field_errors("ldap", {**LDAP, **change})
    assert field in errors, errors


def test_every_missing_required_ldap_setting_is_named():
    errors = field_errors("ldap", {})
    assert set(errors) == {"server_uri", "bind_dn", "bind_password_env", "base_dn"}


def test_active_directory_needs_an_encrypted_connection_to_set_a_password():
    plain = {**LDAP, "directory": "active_directory", "server_uri": "ldap://dc1.acme.example"}
    errors = field_errors("ldap", {**plain, "allow_unencrypted": True})
    assert "password_mode" in errors and "encrypted" in errors["password_mode"][0]
    assert validate_settings("ldap", {**plain, "start_tls": True})["start_tls"] is True


def test_webhook_and_manual_settings_are_refused_per_field(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    good = {"url": "https://automation.acme.example/vouchsafe", "secret_env": "ACME_HOOK_KEY"}
    assert validate_settings("webhook", good) == good
    for change, field in [
        ({"url": "http://automation.acme.example/"}, "url"),  # https in production
        ({"url": "ftp://automation.acme.example/"}, "url"),
        ({"url": "https://user:pw@automation.acme.example/"}, "url"),
        ({"url": "https://automation.acme.example/#x"}, "url"),
        ({"url": "https://automation.acme.example/ x"}, "url"),
        ({"secret_env": "the-key-itself"}, "secret_env"),
        ({"secret": "abc"}, "secret"),
    ]:
        assert field in field_errors("webhook", {**good, **change}), change
    assert set(field_errors("webhook", {})) == {"url", "secret_env"}

    assert validate_settings("manual", {}) == {"console": "generic", "steps": {}}
    for change, field in [
        ({"console": "notes"}, "console"),
        ({"steps": {"password_reset": []}}, "steps.password_reset"),
        ({"steps": {"password_reset": ["x"] * 11}}, "steps.password_reset"),
        ({"steps": {"coffee": ["x"]}}, "steps.coffee"),
        ({"steps": {"unlock": ["Console: {password}"]}}, "steps.unlock"),
        ({"steps": {"unlock": ["line\nbreak"]}}, "steps.unlock"),
        ({"steps": ["x"]}, "steps"),
    ]:
        assert field in field_errors("manual", change), change


def test_an_unknown_kind_or_a_non_object_is_refused():
    with pytest.raises(InvalidInput) as refused:
        validate_settings("scim", {})
    assert refused.value.code == "connector.kind_invalid"
    assert "settings" in field_errors("ldap", ["not", "an", "object"])


# --- the service ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_tenant_admins_configure_and_the_events_hold_no_secret(acme, monkeypatch):
    monkeypatch.setenv(ENV, "the-actual-bind-password")
    url_with_token = "https://automation.acme.example/hooks/tok_9f8e7d6c5b4a"

    config = connector_set(acme, kind="ldap", settings=LDAP)
    assert (config.kind, config.is_active) == ("ldap", True)
    assert config.settings == validate_settings("ldap", LDAP)
    [event] = events(acme, "connector.configured")
    assert event.data["kind"] == "ldap" and event.data["previous"] is None
    assert event.data["settings_summary"]["server_uri"] == LDAP["server_uri"]
    assert event.data["settings_summary"]["bind_password_env"] == ENV
    assert "bind_dn" in event.data["changed"] and event.target_id == str(config.pk)
    assert event.actor_id == str(config.updated_by.pk)  # the approver made it so

    webhook = {"url": url_with_token, "secret_env": "ACME_HOOK_KEY"}
    connector_set(acme, kind="webhook", settings=webhook)
    second = events(acme, "connector.configured")[-1]
    assert second.data["previous"]["kind"] == "ldap"
    assert second.data["settings_summary"]["url"]["origin"] == "https://automation.acme.example"
    trail = AuditEvent.objects.filter(tenant=acme, action__startswith="connector.")
    dumped = json.dumps([e.data for e in trail])
    assert "the-actual-bind-password" not in dumped and "tok_9f8e7d6c5b4a" not in dumped


@pytest.mark.django_db
def test_the_configuration_in_force_cannot_be_proposed_again(acme):
    connector_set(acme, kind="ldap", settings=LDAP)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(InvalidInput) as refused:
        connector_change_request(actor=admin, tenant=acme, kind="ldap", settings=dict(LDAP))
    assert refused.value.code == "connector.change_empty"
    assert len(events(acme, "connector.configured")) == 1
    assert ConnectorChange.objects.for_tenant(acme).count() == 1  # the first, applied
    connector_set(acme, kind="ldap", settings=LDAP, is_active=False)
    assert events(acme, "connector.configured")[-1].data["changed"] == ["is_active"]
    assert ConnectorConfig.objects.for_tenant(acme).get().is_active is False


@pytest.mark.django_db
def test_only_the_tenants_own_admins_propose(acme, globex, deskco):
    for role in (Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR):
        with pytest.raises(PolicyDenied) as refused:
            connector_change_request(
                actor=staff(role, tenant=acme), tenant=acme, kind="manual", settings={}
            )
        assert refused.value.code == "tenant.admin_required"
    with pytest.raises(PolicyDenied) as refused:
        connector_change_request(
            actor=staff(Role.TENANT_ADMIN, tenant=globex), tenant=acme, kind="manual", settings={}
        )
    assert refused.value.code == "tenant.no_access"
    active_grant(deskco, acme, roles=(Role.AGENT, Role.SUPERVISOR))
    msp_admin = make_user()
    member(msp_admin, Role.SUPERVISOR, provider=deskco)
    with pytest.raises(PolicyDenied) as refused:
        connector_change_request(actor=msp_admin, tenant=acme, kind="manual", settings={})
    assert refused.value.code == "tenant.admin_not_delegable"
    assert not ConnectorConfig.objects.for_tenant(acme).exists()
    assert not ConnectorChange.objects.for_tenant(acme).exists()
    assert events(acme, "connector.configured") == []
    assert len(events(acme, "connector.change_refused")) == 6


@pytest.mark.django_db
def test_an_ai_assistant_cannot_propose(acme):
    ai = api_key(acme, kind="ai_assistant").key.principal
    with pytest.raises(PolicyDenied) as refused:
        connector_change_request(actor=ai, tenant=acme, kind="manual", settings={})
    assert refused.value.code == "ai.action_blocked"


@pytest.mark.django_db
def test_invalid_settings_store_nothing(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(InvalidInput) as refused:
        connector_change_request(
            actor=admin, tenant=acme, kind="ldap", settings={**LDAP, "bind_dn": "x"}
        )
    assert refused.value.field_errors.keys() == {"bind_dn"}
    with pytest.raises(InvalidInput):
        connector_change_request(
            actor=admin, tenant=acme, kind="ldap", settings=LDAP, is_active="yes"
        )
    assert not ConnectorConfig.objects.for_tenant(acme).exists()
    assert not ConnectorChange.objects.for_tenant(acme).exists()


# --- which connector, per tenant -------------------------------------------------------------


@pytest.mark.django_db
def test_connector_for_is_manual_until_one_is_configured_and_active(acme, globex):
    assert isinstance(connector_for(acme), ManualConnector)
    connector_set(acme, kind="ldap", settings=LDAP)
    assert isinstance(connector_for(acme), LdapConnector)
    assert isinstance(connector_for(globex), ManualConnector)  # another tenant's is not ours
    hook = {"url": "https://automation.acme.example/", "secret_env": "ACME_HOOK_KEY"}
    connector_set(acme, kind="webhook", settings=hook)
    assert isinstance(connector_for(acme), WebhookConnector)
    connector_set(acme, kind="webhook", settings=hook, is_active=False)
    assert isinstance(connector_for(acme), ManualConnector)
    manual = connector_set(acme, kind="manual", settings={"console": "entra"})
    assert connector_for(acme).console == "entra" and manual.is_active


@pytest.mark.django_db
def test_configurations_are_invisible_across_tenants_under_row_level_security(
    app_role, acme, globex
):
    mine = connector_set(acme, kind="ldap", settings=LDAP)
    theirs = connector_set(globex, kind="manual", settings={})
    third = make_tenant()
    with as_app_role([acme.pk]):
        assert list(ConnectorConfig.objects.values_list("pk", flat=True)) == [mine.pk]
        assert connector_config_get(tenant=globex) is None
        assert isinstance(connector_for(globex), ManualConnector)  # their row is not read
        assert ConnectorConfig.objects.filter(pk=theirs.pk).update(kind="ldap") == 0
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            ConnectorConfig.objects.create(tenant=third, kind="ldap", updated_by=mine.updated_by)
    theirs.refresh_from_db()
    assert theirs.kind == "manual"


# --- test connection, audited ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_connection_is_tested_against_the_real_directory_and_recorded(acme, slapd, monkeypatch):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    settings = {
        "server_uri": slapd.uri,
        "allow_unencrypted": True,
        "bind_dn": SERVICE_DN,
        "bind_password_env": ENV,
        "base_dn": SUFFIX,
        "temporary_access_group_dn": TAP_GROUP,
    }
    connector_set(acme, kind="ldap", settings=settings)
    monkeypatch.setenv(ENV, SERVICE_PASSWORD)
    assert connector_test(actor=admin, tenant=acme).ok
    monkeypatch.setenv(ENV, "wrong-password-for-health")
    failed = connector_test(actor=admin, tenant=acme)
    assert not failed.ok and "invalidCredentials" in failed.detail
    first, second = events(acme, "connector.tested")
    assert (first.data["ok"], second.data["ok"], second.data["kind"]) == (True, False, "ldap")
    assert second.data["configuration"] == "active"
    assert "wrong-password-for-health" not in json.dumps(second.data)
    with pytest.raises(PolicyDenied):
        connector_test(actor=staff(Role.AGENT, tenant=acme), tenant=acme)

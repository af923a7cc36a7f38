"""R-19 in a directory: the LDAP connector takes the account out of the admin groups its settings
name (`admin_group_dns`) and puts it back from the snapshot, against a real OpenLDAP (slapd) and
a real Samba AD domain controller. Every outcome is read back from the server as its
administrator, never taken from the connector's answer.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from recovery.connectors.base import Capability, Snapshot
from recovery.connectors.ldap import LdapConnector
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount
from tenants.exceptions import InvalidInput

from ...ldap_server import PLACEHOLDER, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, LdapServer
from ...samba_server import BASE_DN, INSTALL_HINT, SambaDc
from ...samba_server import SERVICE_DN as AD_SERVICE_DN
from ...samba_server import SERVICE_PASSWORD as AD_SERVICE_PASSWORD

ENV, AD_ENV = "VOUCHSAFE_TEST_LDAP_ROLES_BIND", "VOUCHSAFE_TEST_AD_ROLES_BIND"
GROUPS = f"ou=groups,{SUFFIX}"
_groups = itertools.count(1)


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDc]:
    """A Samba AD DC for this module only, stopped at its end: test_samba_ad.py starts its own
    for the session afterwards, and two cannot run at once (Samba's pid file is global)."""
    try:
        server = SambaDc.start(tmp_path_factory.mktemp("samba-roles"))
    except FileNotFoundError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def bind_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SERVICE_PASSWORD)
    monkeypatch.setenv(AD_ENV, AD_SERVICE_PASSWORD)


def group(slapd: LdapServer, *members: str) -> str:
    dn = f"cn=admins{next(_groups)}-{os.getpid()},{GROUPS}"
    with slapd.admin() as conn:
        conn.add(dn, ["groupOfNames"], {"member": [PLACEHOLDER, *members]})
    return dn


def connector(slapd: LdapServer, *groups: str, **overrides: Any) -> LdapConnector:
    raw = {
        "server_uri": slapd.uri,
        "allow_unencrypted": True,  # slapd listens on 127.0.0.1 only
        "bind_dn": SERVICE_DN,
        "bind_password_env": ENV,
        "base_dn": SUFFIX,
        "admin_group_dns": ";".join(groups),
        **overrides,
    }
    return LdapConnector(settings=validate_settings("ldap", raw))


def account(uid: str) -> ProtectedAccount:
    return ProtectedAccount(external_id=f"ext-{uid}", username=uid, display_name=uid)


def test_admin_groups_are_settings_checked_as_distinguished_names(slapd):
    with pytest.raises(InvalidInput) as refused:
        connector(slapd, "cn=ok,dc=example", "not a dn")
    assert "admin_group_dns" in refused.value.field_errors
    assert Capability.ROLES_SUSPEND not in connector(slapd).capabilities
    assert Capability.ROLES_SUSPEND in connector(slapd, "cn=a,dc=example").capabilities


def test_suspend_removes_the_account_from_its_admin_groups_and_restore_puts_it_back(slapd):
    dn, uid, _ = slapd.add_person()
    other, _, _ = slapd.add_person()
    admins, operators, unrelated = group(slapd, dn, other), group(slapd, dn), group(slapd, dn)
    empty = group(slapd)  # an admin group the account is not in
    ldap = connector(slapd, admins, operators, empty)

    result = ldap.roles_suspend(account=account(uid))

    assert result.ok, result.error
    assert dn.lower() not in slapd.members(admins) and other.lower() in slapd.members(admins)
    assert dn.lower() not in slapd.members(operators)
    assert dn.lower() in slapd.members(unrelated)  # not configured: left alone
    assert dn.lower() not in slapd.members(empty)
    state = result.snapshot.state
    assert state["connector"] == "ldap" and state["user_id"] == dn
    assert [role["role_id"] for role in state["roles"]] == [admins, operators]
    assert len(result.detail["done"]) == 2

    again = ldap.roles_suspend(account=account(uid))  # a retry changes nothing
    assert again.ok and again.snapshot.state["roles"] == [] and again.detail["done"] == []

    restored = ldap.roles_restore(account=account(uid), snapshot=result.snapshot)
    assert restored.ok, restored.error
    assert dn.lower() in slapd.members(admins) and dn.lower() in slapd.members(operators)
    assert dn.lower() not in slapd.members(empty)
    twice = ldap.roles_restore(account=account(uid), snapshot=result.snapshot)
    assert twice.ok and twice.detail["done"] == []  # nothing granted twice


def test_a_group_refusing_the_removal_is_reported_and_the_others_still_go(slapd):
    dn, uid, _ = slapd.add_person()
    admins = group(slapd, dn)
    with slapd.admin() as conn:  # a group whose only member is the account: groupOfNames
        last = f"cn=solo{next(_groups)}-{os.getpid()},{GROUPS}"  # needs one, so it refuses
        conn.add(last, ["groupOfNames"], {"member": [dn]})
    ldap = connector(slapd, last, admins)

    result = ldap.roles_suspend(account=account(uid))

    assert not result.ok
    assert [failure["step"] for failure in result.detail["failed"]] == [f"removed from {last}"]
    assert result.detail["done"] == [f"removed from {admins}"]
    assert dn.lower() in slapd.members(last) and dn.lower() not in slapd.members(admins)
    assert [role["role_id"] for role in result.snapshot.state["roles"]] == [last, admins]
    assert "1 of 2 steps failed" in result.error and SERVICE_PASSWORD not in result.error


def test_restore_refuses_another_entry_and_a_foreign_snapshot(slapd):
    dn, uid, _ = slapd.add_person()
    admins = group(slapd)
    ldap = connector(slapd, admins)
    moved = Snapshot(
        "ext",
        {
            "connector": "ldap",
            "user_id": f"uid=someone-else,{GROUPS}",
            "roles": [{"role_id": admins}],
        },
    )
    refused = ldap.roles_restore(account=account(uid), snapshot=moved)
    assert not refused.ok and "nothing was changed" in refused.error
    assert dn.lower() not in slapd.members(admins)
    foreign = ldap.roles_restore(
        account=account(uid), snapshot=Snapshot("ext", {"connector": "entra", "roles": []})
    )
    assert not foreign.ok and foreign.detail["code"] == "ldap.snapshot_without_roles"


def test_a_missing_group_fails_the_whole_suspension_without_a_change(slapd):
    dn, uid, _ = slapd.add_person()
    admins = group(slapd, dn)
    ldap = connector(slapd, admins, f"cn=missing,{GROUPS}")
    result = ldap.roles_suspend(account=account(uid))
    assert not result.ok and result.snapshot is None
    assert dn.lower() in slapd.members(admins)


# --- Samba AD ------------------------------------------------------------------------------------


def ad_group(dc: SambaDc, *members: str) -> str:
    name = f"vs-admins{next(_groups)}-{os.getpid()}"
    dn = f"CN={name},CN=Users,{BASE_DN}"
    with dc.admin() as conn:
        conn.add(dn, ["group"], {"sAMAccountName": name[:20], "groupType": "-2147483646"})
    for member in members:
        dc.add_member(dn, member)
    return dn


def ad_connector(dc: SambaDc, *groups: str) -> LdapConnector:
    raw = {
        "directory": "active_directory",
        "server_uri": dc.tls_uri,
        "tls_ca_file": dc.ca_file,
        "bind_dn": AD_SERVICE_DN,
        "bind_password_env": AD_ENV,
        "base_dn": BASE_DN,
        "admin_group_dns": ";".join(groups),
    }
    return LdapConnector(settings=validate_settings("ldap", raw))


def test_samba_admin_group_removal_and_restore(dc):
    samba = dc
    dn, upn = samba.add_user()
    admins, helpdesk = ad_group(samba, dn), ad_group(samba, dn)
    ldap = ad_connector(samba, admins, helpdesk)
    who = ProtectedAccount(external_id="ext-ad", username=upn, display_name=upn)

    result = ldap.roles_suspend(account=who)

    assert result.ok, result.error
    assert dn.lower() not in samba.members(admins) and dn.lower() not in samba.members(helpdesk)
    assert not {admins.lower(), helpdesk.lower()} & {
        g.lower() for g in samba.read(dn, "memberOf").get("memberof", [])
    }
    restored = ldap.roles_restore(account=who, snapshot=result.snapshot)
    assert restored.ok, restored.error
    assert {admins.lower(), helpdesk.lower()} <= {
        g.lower() for g in samba.read(dn, "memberOf")["memberof"]
    }

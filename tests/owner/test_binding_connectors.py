"""`Connector.password_set` against the real slapd: OpenLDAP through the Password Modify
extended operation, Active Directory's `unicodePwd` over TLS only; the "must change" mark the
recovery set is ended; and no result, error or log ever carries the password."""

from __future__ import annotations

from typing import Any

import pytest

from recovery.connectors.base import CAPABILITY_MISSING, Capability
from recovery.connectors.ldap import LdapConnector
from recovery.connectors.manual import ManualConnector
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount

from ..ldap_server import (
    AD_TAP_GROUP,
    OLD_PASSWORD,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    TAP_GROUP,
    LdapServer,
)
from .binding_helpers import slapd  # noqa: F401 - a fixture

ENV = "VOUCHSAFE_TEST_LDAP_BIND_PWSET"
NEW = "sable kettle meadow ninety"


@pytest.fixture(autouse=True)
def bind_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SERVICE_PASSWORD)


def openldap(server: LdapServer, **overrides: Any) -> LdapConnector:
    raw = {
        "server_uri": server.uri,
        "allow_unencrypted": True,
        "bind_dn": SERVICE_DN,
        "bind_password_env": ENV,
        "base_dn": SUFFIX,
        "temporary_access_group_dn": TAP_GROUP,
        **overrides,
    }
    return LdapConnector(settings=validate_settings("ldap", raw))


def active_directory(server: LdapServer, **overrides: Any) -> LdapConnector:
    return openldap(
        server,
        **{
            "directory": "active_directory",
            "server_uri": server.tls_uri,
            "allow_unencrypted": False,
            "tls_ca_file": server.ca_file,
            "temporary_access_group_dn": AD_TAP_GROUP,
            "user_filter": "(&(objectClass=user)(mail={username}))",
            **overrides,
        },
    )


def account(username: str) -> ProtectedAccount:
    return ProtectedAccount(external_id=f"ext-{username}", username=username, display_name="x")


def test_openldap_sets_the_password_hashed_by_the_server_and_ends_must_change(slapd):  # noqa: F811
    dn, uid, _ = slapd.add_person()
    connector = openldap(slapd)
    executed = connector.execute(account=account(uid), case_type="password_reset", case_id=5)
    assert executed.ok and slapd.read(dn)["shadowlastchange"] == [b"0"]

    result = connector.password_set(account=account(uid), password=NEW)

    assert result.ok, result.error
    assert slapd.can_bind(dn, NEW) and not slapd.can_bind(dn, OLD_PASSWORD)
    entry = slapd.read(dn)
    assert entry["userpassword"][0].startswith(b"{SSHA}")  # never stored as typed
    assert NEW.encode() not in entry["userpassword"][0]
    assert int(entry["shadowlastchange"][0]) > 19_000  # days since 1970: changed today
    assert result.detail == {
        "changed": True,
        "method": "password modify (RFC 3062)",
        "cleared": ["shadowLastChange"],
    }
    assert NEW not in str(result)
    # A second call is harmless (the owner's session binds once anyway).
    assert connector.password_set(account=account(uid), password=NEW).ok
    assert slapd.can_bind(dn, NEW)


def test_a_password_that_was_not_marked_must_change_keeps_its_mark_untouched(slapd):  # noqa: F811
    dn, uid, _ = slapd.add_person(shadow=True)  # shadowLastChange 19700, not "must change"
    result = openldap(slapd).password_set(account=account(uid), password=NEW)
    assert result.ok and result.detail["cleared"] == []
    assert slapd.read(dn)["shadowlastchange"] == [b"19700"]


def test_failures_never_quote_the_password(slapd, caplog):  # noqa: F811
    result = openldap(slapd).password_set(account=account("nobody-here"), password=NEW)
    assert not result.ok and "No directory entry matches" in result.error
    empty = openldap(slapd).password_set(account=account("nobody-here"), password="")
    assert not empty.ok  # an empty newPasswd would make the server generate one
    wrong_bind = openldap(slapd, bind_dn=f"cn=nobody,{SUFFIX}")
    denied = wrong_bind.password_set(account=account("x"), password=NEW)
    assert not denied.ok and "refused the bind" in denied.error
    assert NEW not in caplog.text and NEW not in f"{result}{denied}"


def test_active_directory_replaces_unicodepwd_and_sets_pwdlastset_now(slapd):  # noqa: F811
    dn, upn = slapd.add_ad_user(user_account_control=0x10200)
    ad = active_directory(slapd)
    assert ad.execute(account=account(upn), case_type="password_reset", case_id=9).ok
    assert slapd.read(dn)["pwdlastset"] == [b"0"]

    result = ad.password_set(account=account(upn), password=NEW)

    assert result.ok, result.error
    entry = slapd.read(dn)
    assert entry["unicodepwd"] == [f'"{NEW}"'.encode("utf-16-le")]  # AD's quoted UTF-16LE
    assert entry["pwdlastset"] == [b"-1"]  # "set now": no change asked at the next sign-in
    assert result.detail["method"] == "replace unicodePwd"


def test_active_directory_never_gets_a_password_in_clear(slapd):  # noqa: F811
    dn, upn = slapd.add_ad_user()
    before = slapd.read(dn)["unicodepwd"]
    plain = LdapConnector(
        settings={**active_directory(slapd).s, "server_uri": slapd.uri, "start_tls": False}
    )
    result = plain.password_set(account=account(upn), password=NEW)
    assert not result.ok and "ldaps" in result.error
    assert slapd.read(dn)["unicodepwd"] == before


def test_the_manual_connector_cannot_set_a_password():
    result = ManualConnector().password_set(account=account("u"), password=NEW)
    assert not result.ok and result.detail["code"] == CAPABILITY_MISSING
    assert Capability.PASSWORD_SET not in ManualConnector.capabilities
    assert Capability.PASSWORD_SET in LdapConnector.capabilities
    assert NEW not in str(result)

"""The LDAP connector against a real OpenLDAP server (Debian's slapd, started by the fixture).

Every test reads the entry back with ldap3 as the server's root DN: what the connector says it
did is never taken on trust.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from recovery.connectors.base import Snapshot
from recovery.connectors.ldap import LdapConnector
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount

from ...ldap_server import (
    AD_TAP_GROUP,
    OLD_PASSWORD,
    PWD_LAST_SET,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    TAP_GROUP,
    LdapServer,
    free_port,
)

ENV = "VOUCHSAFE_TEST_LDAP_BIND"


@pytest.fixture(autouse=True)
def bind_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SERVICE_PASSWORD)


def connector(slapd: LdapServer, **overrides: Any) -> LdapConnector:
    raw = {
        "server_uri": slapd.uri,
        "allow_unencrypted": True,  # slapd listens on 127.0.0.1 only
        "bind_dn": SERVICE_DN,
        "bind_password_env": ENV,
        "base_dn": SUFFIX,
        "temporary_access_group_dn": TAP_GROUP,
        **overrides,
    }
    return LdapConnector(settings=validate_settings("ldap", raw))


def ad_connector(slapd: LdapServer, **overrides: Any) -> LdapConnector:
    ad = {
        "directory": "active_directory",
        "server_uri": slapd.tls_uri,
        "allow_unencrypted": False,
        "tls_ca_file": slapd.ca_file,
        "temporary_access_group_dn": AD_TAP_GROUP,
        # The AD default filter searches userPrincipalName, which OpenLDAP's copy of Microsoft's
        # schema gives no equality rule; the same value is in `mail` on the test entries.
        "user_filter": "(&(objectClass=user)(mail={username}))",
    }
    return connector(slapd, **{**ad, **overrides})


def account(username: str, external_id: str = "") -> ProtectedAccount:
    """The subject as Vouchsafe knows it (the connector only reads these fields)."""
    return ProtectedAccount(
        external_id=external_id or f"ext-{username}", username=username, display_name=username
    )


def without_csn(entry: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    return {name: values for name, values in entry.items() if name != "entrycsn"}


# --- password reset on OpenLDAP -------------------------------------------------------------


def test_password_reset_locks_the_password_and_requires_a_change(slapd):
    dn, uid, _ = slapd.add_person()
    before = slapd.read(dn)
    assert slapd.can_bind(dn, OLD_PASSWORD)

    result = connector(slapd).execute(account=account(uid), case_type="password_reset", case_id=41)

    assert result.ok, result.error
    after = slapd.read(dn)
    assert after["userpassword"] == [b"{CRYPT}!vouchsafe-case-41"]
    assert b"shadowAccount" in after["objectclass"]
    assert after["shadowlastchange"] == [b"0"]
    assert not slapd.can_bind(dn, OLD_PASSWORD)  # the old password no longer works
    assert not slapd.can_bind(dn, "!vouchsafe-case-41")  # nor does the locked value itself
    assert result.connector == "ldap" and result.path == f"{slapd.uri.rstrip('/')}/{dn}"
    assert result.detail["changed"] is True
    assert result.detail["object_classes_added"] == ["shadowAccount"]
    state = result.snapshot.state
    assert state["dn"] == dn and state["case_id"] == 41
    assert state["object_classes_added"] == ["shadowAccount"]
    assert state["attributes"] == {"shadowLastChange": []}
    assert set(state["secret"]) == {"userPassword"}  # the old hash, kept only to restore it
    assert result.snapshot.account_external_id == f"ext-{uid}"
    assert before["userpassword"] != after["userpassword"]


def test_the_old_password_hash_is_kept_apart_and_redacted_for_display(slapd):
    dn, uid, _ = slapd.add_person()
    old_hash = slapd.read(dn)["userpassword"][0].decode()
    result = connector(slapd).execute(account=account(uid), case_type="password_reset", case_id=7)
    [kept] = result.snapshot.state["secret"]["userPassword"]
    assert base64.b64decode(kept).decode() == old_hash  # kept to restore it exactly
    redacted = result.snapshot.redacted()
    shown = str(redacted)
    assert kept not in shown and old_hash not in shown
    assert redacted["secret"]["userPassword"][0].startswith("sha256:")
    assert redacted["dn"] == dn  # everything else stays
    assert old_hash not in str(result.detail) and old_hash not in result.path


def test_revert_restores_the_entry_exactly(slapd):
    dn, uid, _ = slapd.add_person(description="Finance team")
    before = without_csn(slapd.read(dn))
    ldap = connector(slapd)
    executed = ldap.execute(account=account(uid), case_type="password_reset", case_id=5)
    assert without_csn(slapd.read(dn)) != before

    reverted = ldap.revert(account=account(uid), snapshot=executed.snapshot)

    assert reverted.ok, reverted.error
    assert without_csn(slapd.read(dn)) == before  # hash, classes, every attribute as it was
    assert slapd.can_bind(dn, OLD_PASSWORD)
    assert reverted.detail["changed"] is True
    assert reverted.detail["object_classes_removed"] == ["shadowAccount"]


def test_revert_of_an_entry_that_already_had_shadow_attributes_puts_back_their_values(slapd):
    dn, uid, _ = slapd.add_person(shadow=True)  # shadowLastChange 19700
    before = without_csn(slapd.read(dn))
    ldap = connector(slapd)
    executed = ldap.execute(account=account(uid), case_type="password_reset", case_id=6)
    assert executed.snapshot.state["object_classes_added"] == []
    assert executed.snapshot.state["attributes"] == {"shadowLastChange": ["19700"]}
    assert slapd.read(dn)["shadowlastchange"] == [b"0"]
    assert ldap.revert(account=account(uid), snapshot=executed.snapshot).ok
    assert without_csn(slapd.read(dn)) == before


def test_executing_twice_changes_nothing_more(slapd):
    dn, uid, _ = slapd.add_person()
    ldap = connector(slapd)
    first = ldap.execute(account=account(uid), case_type="password_reset", case_id=9)
    written = slapd.read(dn)  # entryCSN included: any write would change it

    second = ldap.execute(account=account(uid), case_type="password_reset", case_id=9)

    assert first.ok and second.ok
    assert slapd.read(dn) == written
    assert second.detail == {"changed": False, "already_applied": True}
    assert second.snapshot is None  # the first call's snapshot stays the one to revert with
    # … and that first snapshot still restores the original entry.
    assert ldap.revert(account=account(uid), snapshot=first.snapshot).ok
    assert slapd.can_bind(dn, OLD_PASSWORD)


def test_reverting_twice_changes_nothing_more(slapd):
    dn, uid, _ = slapd.add_person()
    ldap = connector(slapd)
    executed = ldap.execute(account=account(uid), case_type="password_reset", case_id=10)
    assert ldap.revert(account=account(uid), snapshot=executed.snapshot).detail["changed"]
    restored = slapd.read(dn)
    again = ldap.revert(account=account(uid), snapshot=executed.snapshot)
    assert again.ok and again.detail["changed"] is False
    assert slapd.read(dn) == restored


def test_snapshot_reads_what_execute_will_change_and_changes_nothing(slapd):
    dn, uid, _ = slapd.add_person(shadow=True)
    before = slapd.read(dn)
    ldap = connector(slapd)
    ahead = ldap.snapshot(account=account(uid), case_type="password_reset")
    assert slapd.read(dn) == before
    executed = ldap.execute(account=account(uid), case_type="password_reset", case_id=11)
    assert ahead.state == {k: v for k, v in executed.snapshot.state.items() if k != "case_id"}
    # A write-ahead snapshot is enough to undo the change.
    assert ldap.revert(account=account(uid), snapshot=ahead).ok
    assert without_csn(slapd.read(dn)) == without_csn(before)


def test_password_mode_none_only_marks_the_password_as_to_be_changed(slapd):
    dn, uid, _ = slapd.add_person(shadow=True)
    result = connector(slapd, password_mode="none").execute(
        account=account(uid), case_type="password_reset", case_id=12
    )
    assert result.ok
    entry = slapd.read(dn)
    assert entry["shadowlastchange"] == [b"0"]
    assert slapd.can_bind(dn, OLD_PASSWORD)
    assert "secret" not in result.snapshot.state


# --- temporary access -----------------------------------------------------------------------


def test_mfa_reset_adds_temporary_access_that_revoke_removes(slapd):
    dn, uid, _ = slapd.add_person()
    ldap = connector(slapd)

    result = ldap.execute(account=account(uid), case_type="mfa_reset", case_id=20)

    assert result.ok, result.error
    assert dn.lower() in slapd.members(TAP_GROUP)
    assert result.snapshot.state["groups"] == [
        {"dn": TAP_GROUP, "attribute": "member", "was_member": False}
    ]
    assert result.detail["groups_joined"] == [TAP_GROUP]

    revoked = ldap.revoke_temporary_access(account=account(uid))
    assert revoked.ok and revoked.detail["changed"] is True
    assert dn.lower() not in slapd.members(TAP_GROUP)
    assert "cn=placeholder," + SUFFIX in slapd.members(TAP_GROUP)  # nobody else removed

    again = ldap.revoke_temporary_access(account=account(uid))
    assert again.ok and again.detail["changed"] is False


def test_temporary_access_twice_joins_once_and_revert_leaves_the_group(slapd):
    dn, uid, _ = slapd.add_person()
    ldap = connector(slapd)
    first = ldap.execute(account=account(uid), case_type="temporary_access", case_id=21)
    second = ldap.execute(account=account(uid), case_type="temporary_access", case_id=21)
    assert first.ok and second.ok and second.detail["changed"] is False
    assert dn.lower() in slapd.members(TAP_GROUP)
    assert ldap.revert(account=account(uid), snapshot=first.snapshot).ok
    assert dn.lower() not in slapd.members(TAP_GROUP)


def test_revert_keeps_a_membership_the_account_had_before(slapd):
    dn, uid, _ = slapd.add_person()
    slapd.add_member(TAP_GROUP, dn)
    ldap = connector(slapd)
    result = ldap.execute(account=account(uid), case_type="temporary_access", case_id=22)
    assert result.ok and result.detail == {"changed": False, "already_applied": True}
    assert dn.lower() in slapd.members(TAP_GROUP)


def test_temporary_access_as_an_attribute_is_set_revoked_and_reverted(slapd):
    dn, uid, _ = slapd.add_person(description="Finance team")
    ldap = connector(
        slapd,
        temporary_access_group_dn="",
        temporary_access_attribute="description",
        temporary_access_value="vouchsafe:temporary-access",
    )
    before = without_csn(slapd.read(dn))
    executed = ldap.execute(account=account(uid), case_type="temporary_access", case_id=23)
    assert slapd.read(dn)["description"] == [b"vouchsafe:temporary-access"]
    assert executed.snapshot.state["attributes"] == {"description": ["Finance team"]}

    assert ldap.revoke_temporary_access(account=account(uid)).detail["changed"] is True
    assert "description" not in slapd.read(dn)

    ldap.execute(account=account(uid), case_type="temporary_access", case_id=24)
    assert ldap.revert(account=account(uid), snapshot=executed.snapshot).ok
    assert without_csn(slapd.read(dn)) == before


# --- Active Directory defaults (an AD-shaped entry in Microsoft's schema, over ldaps) ------


def test_active_directory_password_reset_sets_pwdlastset_and_clears_never_expires(slapd):
    dn, upn = slapd.add_ad_user(user_account_control=0x10200)
    old_password = slapd.read(dn)["unicodepwd"]
    ad = ad_connector(slapd)

    result = ad.execute(account=account(upn), case_type="password_reset", case_id=30)

    assert result.ok, result.error
    entry = slapd.read(dn)
    assert entry["pwdlastset"] == [b"0"]
    assert entry["useraccountcontrol"] == [b"512"]  # 0x10000 "password never expires" cleared
    assert entry["unicodepwd"] != old_password  # a random password, quoted UTF-16LE
    assert entry["unicodepwd"][0].decode("utf-16-le").startswith('"')
    state = result.snapshot.state
    assert "secret" not in state and state["not_restorable"] == ["unicodePwd"]
    assert state["attributes"] == {
        "pwdLastSet": [PWD_LAST_SET],
        "userAccountControl": ["66048"],
    }
    assert result.detail["password_restorable"] is False

    reverted = ad.revert(account=account(upn), snapshot=result.snapshot)
    assert reverted.ok and reverted.detail["not_restorable"] == ["unicodePwd"]
    entry = slapd.read(dn)
    assert entry["useraccountcontrol"] == [b"66048"]
    assert entry["pwdlastset"] == [b"-1"]  # AD's "set now": the old FILETIME cannot be written


def test_active_directory_unlock_clears_lockout_time_and_revert_restores_it(slapd):
    dn, upn = slapd.add_ad_user()
    before = without_csn(slapd.read(dn))
    ad = ad_connector(slapd)
    result = ad.execute(account=account(upn), case_type="unlock", case_id=31)
    assert result.ok and slapd.read(dn)["lockouttime"] == [b"0"]
    assert ad.revert(account=account(upn), snapshot=result.snapshot).ok
    assert without_csn(slapd.read(dn)) == before


def test_active_directory_mfa_reset_joins_the_group(slapd):
    dn, upn = slapd.add_ad_user()
    ad = ad_connector(slapd)
    assert ad.execute(account=account(upn), case_type="mfa_reset", case_id=32).ok
    assert dn.lower() in slapd.members(AD_TAP_GROUP)
    assert ad.revoke_temporary_access(account=account(upn)).ok
    assert dn.lower() not in slapd.members(AD_TAP_GROUP)


def test_a_server_certificate_from_another_ca_is_refused(slapd):
    dn, upn = slapd.add_ad_user()
    before = slapd.read(dn)
    ad = ad_connector(slapd, tls_ca_file=slapd.other_ca_file)
    result = ad.execute(account=account(upn), case_type="password_reset", case_id=33)
    assert not result.ok and "certificate" in result.error.lower()
    assert slapd.read(dn) == before
    assert not ad.health().ok


def test_start_tls_on_the_plain_port_works(slapd):
    dn, uid, _ = slapd.add_person()
    ldap = connector(slapd, allow_unencrypted=False, start_tls=True, tls_ca_file=slapd.ca_file)
    assert ldap.health().ok
    assert ldap.execute(account=account(uid), case_type="mfa_reset", case_id=34).ok
    assert dn.lower() in slapd.members(TAP_GROUP)


# --- failures -------------------------------------------------------------------------------


def test_wrong_bind_password_is_a_clear_error_and_never_an_exception(slapd, monkeypatch):
    dn, uid, _ = slapd.add_person()
    before = slapd.read(dn)
    wrong = "not-the-service-password-4711"
    monkeypatch.setenv(ENV, wrong)

    result = connector(slapd).execute(account=account(uid), case_type="password_reset", case_id=1)

    assert result.ok is False and result.snapshot is None
    assert "refused the bind" in result.error and "invalidCredentials" in result.error
    assert wrong not in result.error and wrong not in result.path
    assert slapd.read(dn) == before
    for other in (
        connector(slapd).revert(
            account=account(uid), snapshot=Snapshot("x", {"connector": "ldap", "dn": dn})
        ),
        connector(slapd).revoke_temporary_access(account=account(uid)),
    ):
        assert other.ok is False and "invalidCredentials" in other.error


def test_a_missing_bind_password_variable_is_refused(slapd, monkeypatch):
    monkeypatch.delenv(ENV)
    result = connector(slapd).execute(account=account("x"), case_type="mfa_reset", case_id=1)
    assert not result.ok and f"environment variable {ENV} is empty" in result.error
    assert not connector(slapd).health().ok


def test_health_binds_and_searches(slapd, monkeypatch):
    ok = connector(slapd).health()
    assert ok.ok and SERVICE_DN in ok.detail and TAP_GROUP in ok.detail

    missing_base = connector(slapd, base_dn="dc=nowhere,dc=example").health()
    assert not missing_base.ok and "cannot be read" in missing_base.detail
    missing_group = connector(slapd, temporary_access_group_dn=f"cn=nope,{SUFFIX}").health()
    assert not missing_group.ok

    nobody = connector(slapd, server_uri=f"ldap://127.0.0.1:{free_port()}").health()
    assert not nobody.ok and "LDAPSocketOpenError" in nobody.detail

    monkeypatch.setenv(ENV, "wrong")
    refused = connector(slapd).health()
    assert not refused.ok and "invalidCredentials" in refused.detail


def test_an_account_missing_from_the_directory_is_refused(slapd):
    result = connector(slapd).execute(
        account=account("nobody-here"), case_type="password_reset", case_id=1
    )
    assert not result.ok and "No directory entry matches nobody-here" in result.error


def test_the_account_value_is_escaped_in_the_search_filter(slapd):
    slapd.add_person()
    slapd.add_person()
    # "*" would match every uid if it were put into the filter as it is.
    result = connector(slapd).execute(account=account("*"), case_type="mfa_reset", case_id=1)
    assert not result.ok and "No directory entry matches" in result.error
    injected = connector(slapd).execute(
        account=account("x)(uid=*"), case_type="mfa_reset", case_id=1
    )
    assert not injected.ok and "No directory entry matches" in injected.error


def test_a_filter_matching_several_entries_is_refused(slapd):
    dn, uid, _ = slapd.add_person()
    slapd.add_person()
    before = slapd.read(dn)
    ldap = connector(slapd, user_filter="(|(uid={username})(objectClass=inetOrgPerson))")
    result = ldap.execute(account=account(uid), case_type="password_reset", case_id=1)
    assert not result.ok and "More than one directory entry" in result.error
    assert slapd.read(dn) == before


def test_search_by_external_id(slapd):
    dn, _uid, number = slapd.add_person()
    ldap = connector(
        slapd, user_filter="(&(objectClass=inetOrgPerson)(employeeNumber={external_id}))"
    )
    result = ldap.execute(
        account=account("whatever", external_id=number), case_type="mfa_reset", case_id=1
    )
    assert result.ok and result.path.endswith(dn)


def test_case_types_the_directory_cannot_do_are_refused(slapd):
    dn, uid, _ = slapd.add_person()
    before = slapd.read(dn)
    ldap = connector(slapd)
    for case_type in ("mailbox_access", "privileged_role_restore", "exception", "unlock"):
        result = ldap.execute(account=account(uid), case_type=case_type, case_id=1)
        assert not result.ok, case_type
    assert (
        "unlock_attribute"
        in ldap.execute(account=account(uid), case_type="unlock", case_id=1).error
    )
    no_tap = connector(slapd, temporary_access_group_dn="")
    assert (
        "No temporary access state"
        in no_tap.execute(account=account(uid), case_type="mfa_reset", case_id=1).error
    )
    assert slapd.read(dn) == before


def test_a_refused_modification_is_reported_with_the_directory_reason(slapd):
    dn, uid, _ = slapd.add_person()
    # inetOrgPerson has no such attribute: the server refuses the whole modify.
    ldap = connector(slapd, must_change_attribute="pwdLastSet", must_change_object_class="")
    before = slapd.read(dn)
    result = ldap.execute(account=account(uid), case_type="password_reset", case_id=1)
    assert not result.ok and "refused the change" in result.error
    assert slapd.read(dn) == before  # one modify: nothing of it was applied


def test_a_password_the_connector_cannot_read_is_not_locked(slapd):
    # Without the old value, revert could not put it back: the reset is refused instead.
    dn, uid, _ = slapd.add_person(password=None)
    before = slapd.read(dn)
    result = connector(slapd).execute(account=account(uid), case_type="password_reset", case_id=1)
    assert not result.ok and "Cannot read userPassword" in result.error
    assert slapd.read(dn) == before


def test_revert_refuses_a_snapshot_of_another_entry(slapd):
    dn, uid, _ = slapd.add_person()
    other_dn, _, _ = slapd.add_person()
    before = slapd.read(dn)
    snapshot = Snapshot("x", {"connector": "ldap", "dn": other_dn, "attributes": {"sn": ["X"]}})
    result = connector(slapd).revert(account=account(uid), snapshot=snapshot)
    assert not result.ok and "not" in result.error and other_dn in result.error
    assert slapd.read(dn) == before
    foreign = connector(slapd).revert(account=account(uid), snapshot=Snapshot("x", {"request": 1}))
    assert not foreign.ok and "not taken by the ldap connector" in foreign.error

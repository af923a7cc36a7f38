"""The LDAP connector with its Active Directory defaults against a real Samba AD domain controller.

The connector binds as a delegated service account (a member of Account Operators) over LDAPS and
uses the `active_directory` defaults unchanged (userPrincipalName search, unicodePwd, pwdLastSet,
lockoutTime). Every outcome is read back from the DC as its Administrator, or proven by binding
as the user: what the connector reports is never taken on trust.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recovery.connectors.base import Snapshot
from recovery.connectors.ldap import LdapConnector
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount

from ...samba_server import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    BASE_DN,
    DOMAIN_ADMINS,
    INSTALL_HINT,
    LOCKOUT_THRESHOLD,
    OLD_PASSWORD,
    SERVICE_DN,
    SERVICE_PASSWORD,
    TAP_GROUP,
    UF_DONT_EXPIRE_PASSWD,
    UF_NORMAL_ACCOUNT,
    SambaDc,
)

ENV = "VOUCHSAFE_TEST_AD_BIND"
NEW_PASSWORD = "Owner-Chosen-Passw0rd"  # what the owner types in their artifact session


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDc]:
    try:
        dc = SambaDc.start(tmp_path_factory.mktemp("samba"))
    except FileNotFoundError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture(autouse=True)
def bind_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SERVICE_PASSWORD)


def ad(samba: SambaDc, **overrides: Any) -> LdapConnector:
    raw = {
        "directory": "active_directory",
        "server_uri": samba.tls_uri,
        "tls_ca_file": samba.ca_file,
        "bind_dn": SERVICE_DN,
        "bind_password_env": ENV,
        "base_dn": BASE_DN,
        "temporary_access_group_dn": TAP_GROUP,
        **overrides,
    }
    return LdapConnector(settings=validate_settings("ldap", raw))


def account(upn: str) -> ProtectedAccount:
    """The subject as Vouchsafe knows it (the connector only reads these fields)."""
    return ProtectedAccount(external_id=f"ext-{upn}", username=upn, display_name=upn)


def state(samba: SambaDc, dn: str) -> dict[str, list[str]]:
    return samba.read(dn, "pwdLastSet", "userAccountControl", "lockoutTime", "memberOf")


# --- password reset and the owner's password ------------------------------------------------


def test_password_reset_replaces_the_password_and_requires_a_change(samba):
    dn, upn = samba.add_user(flags=UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD)
    [pwd_last_set] = state(samba, dn)["pwdlastset"]

    result = ad(samba).execute(account=account(upn), case_type="password_reset", case_id=30)

    assert result.ok, result.error
    assert not samba.can_bind(upn, OLD_PASSWORD)  # refused: pwdLastSet 0 stops every bind
    after = state(samba, dn)
    assert after["pwdlastset"] == ["0"]  # must change at next logon
    assert after["useraccountcontrol"] == [str(UF_NORMAL_ACCOUNT)]  # never-expires cleared
    snapshot = result.snapshot.state
    assert snapshot["dn"] == dn and snapshot["case_id"] == 30
    assert snapshot["attributes"] == {
        "pwdLastSet": [pwd_last_set],
        "userAccountControl": [str(UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD)],
    }
    assert "secret" not in snapshot and snapshot["not_restorable"] == ["unicodePwd"]
    assert result.detail["password_restorable"] is False


def test_a_retried_password_reset_keeps_the_must_change_mark(samba):
    # AD stamps pwdLastSet with "now" whenever a password is written; a retry (a worker died
    # after the first modify) must not lose the mark the first call set.
    dn, upn = samba.add_user()
    ldap = ad(samba)
    first = ldap.execute(account=account(upn), case_type="password_reset", case_id=31)
    again = ldap.execute(account=account(upn), case_type="password_reset", case_id=31)
    assert first.ok and again.ok, again.error
    assert state(samba, dn)["pwdlastset"] == ["0"]
    assert not samba.can_bind(upn, OLD_PASSWORD)


def test_the_owner_chosen_password_is_written_as_unicodepwd_over_ldaps(samba):
    dn, upn = samba.add_user()
    ldap = ad(samba)
    assert ldap.execute(account=account(upn), case_type="password_reset", case_id=32).ok

    result = ldap.password_set(account=account(upn), password=NEW_PASSWORD)

    assert result.ok, result.error
    assert result.detail["method"] == "replace unicodePwd"
    # AD refuses any bind while pwdLastSet is 0, so this bind also proves the mark is gone.
    assert samba.can_bind(upn, NEW_PASSWORD)
    # The DC still takes the previous password for an hour after a reset ("old password
    # allowed period"); the random one execute wrote is that previous password, so the one
    # from before the recovery is two generations back and dead.
    assert not samba.can_bind(upn, OLD_PASSWORD)
    assert state(samba, dn)["pwdlastset"] != ["0"]
    assert NEW_PASSWORD not in str(result.detail) and NEW_PASSWORD not in result.path


def test_password_set_is_refused_without_tls_before_anything_is_sent(samba):
    _dn, upn = samba.add_user()
    # Settings validation refuses a password mode without TLS too; "none" passes it.
    plain = ad(
        samba, server_uri=samba.uri, allow_unencrypted=True, password_mode="none", tls_ca_file=""
    )
    result = plain.password_set(account=account(upn), password=NEW_PASSWORD)
    assert not result.ok and "only over ldaps:// or StartTLS" in result.error
    assert samba.can_bind(upn, OLD_PASSWORD)


def test_a_password_the_domain_refuses_leaves_a_half_done_reset_that_revert_undoes(samba):
    dn, upn = samba.add_user(flags=UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD)
    ldap = ad(samba)
    executed = ldap.execute(account=account(upn), case_type="password_reset", case_id=33)
    weak = "q7Z"  # shorter than the domain's minimum length of 7

    refused = ldap.password_set(account=account(upn), password=weak)

    assert not refused.ok
    assert "constraintViolation" in refused.error and "0000052D" in refused.error
    assert weak not in refused.error
    assert state(samba, dn)["pwdlastset"] == ["0"]  # still in the recovery state

    reverted = ldap.revert(account=account(upn), snapshot=executed.snapshot)

    assert reverted.ok, reverted.error
    after = state(samba, dn)
    assert after["useraccountcontrol"] == [str(UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD)]
    assert after["pwdlastset"] not in (["0"], executed.snapshot.state["attributes"]["pwdLastSet"])
    assert reverted.detail["not_restorable"] == ["unicodePwd"]  # AD never gives a password back
    # No bind check: for an hour after a reset the DC still takes the previous password
    # ("old password allowed period"), which here is the one from before the recovery.


# --- unlock ---------------------------------------------------------------------------------


def test_unlock_ends_a_real_lockout_and_revert_locks_the_account_again(samba):
    dn, upn = samba.add_user()
    for _attempt in range(LOCKOUT_THRESHOLD):
        assert not samba.can_bind(upn, "Wrong-Passw0rd")
    [locked_at] = state(samba, dn)["lockouttime"]
    assert locked_at != "0" and not samba.can_bind(upn, OLD_PASSWORD)  # the DC locked it
    ldap = ad(samba)

    result = ldap.execute(account=account(upn), case_type="unlock", case_id=34)

    assert result.ok, result.error
    assert state(samba, dn)["lockouttime"] == ["0"]
    assert samba.can_bind(upn, OLD_PASSWORD)
    assert result.snapshot.state["attributes"] == {"lockoutTime": [locked_at]}
    again = ldap.execute(account=account(upn), case_type="unlock", case_id=34)
    assert again.detail == {"changed": False, "already_applied": True}

    # "This wasn't me": Samba takes the old lockoutTime back, and the lockout with it.
    assert ldap.revert(account=account(upn), snapshot=result.snapshot).ok
    assert state(samba, dn)["lockouttime"] == [locked_at]
    assert not samba.can_bind(upn, OLD_PASSWORD)


# --- group-based temporary access -----------------------------------------------------------


def test_temporary_access_joins_the_group_once_and_revoke_removes_it(samba):
    dn, upn = samba.add_user()
    ldap = ad(samba)

    result = ldap.execute(account=account(upn), case_type="mfa_reset", case_id=35)

    assert result.ok, result.error
    assert dn.lower() in samba.members(TAP_GROUP)
    assert state(samba, dn)["memberof"] == [TAP_GROUP]
    assert result.snapshot.state["groups"] == [
        {"dn": TAP_GROUP, "attribute": "member", "was_member": False}
    ]
    retried = ldap.execute(account=account(upn), case_type="mfa_reset", case_id=35)
    assert retried.detail == {"changed": False, "already_applied": True}

    revoked = ldap.revoke_temporary_access(account=account(upn))
    assert revoked.ok and revoked.detail["changed"] is True
    assert dn.lower() not in samba.members(TAP_GROUP)
    assert ldap.revoke_temporary_access(account=account(upn)).detail["changed"] is False


def test_revert_of_temporary_access_leaves_the_group_and_only_that(samba):
    dn, upn = samba.add_user()
    other_dn, _ = samba.add_user()
    samba.add_member(TAP_GROUP, other_dn)
    ldap = ad(samba)
    executed = ldap.execute(account=account(upn), case_type="temporary_access", case_id=36)
    assert dn.lower() in samba.members(TAP_GROUP)

    reverted = ldap.revert(account=account(upn), snapshot=executed.snapshot)

    assert reverted.ok and reverted.detail["groups"] == [TAP_GROUP]
    assert samba.members(TAP_GROUP) == {other_dn.lower()}


# --- admin groups ---------------------------------------------------------------------------


def test_revert_puts_back_a_domain_admins_membership_a_snapshot_recorded(samba, monkeypatch):
    # The connector has no operation that removes admin-group memberships yet; this is the half
    # that exists: revert re-adds a membership the snapshot says the account had. It needs a
    # bind account that may write Domain Admins (on Windows, AdminSDHolder keeps Account
    # Operators out; Samba does not emulate it), so it binds as the Administrator here.
    dn, upn = samba.add_user()
    snapshot = Snapshot(
        f"ext-{upn}",
        {
            "connector": "ldap",
            "dn": dn,
            "groups": [{"dn": DOMAIN_ADMINS, "attribute": "member", "was_member": True}],
        },
    )
    monkeypatch.setenv(ENV, ADMIN_PASSWORD)
    ldap = ad(samba, bind_dn=ADMIN_DN)

    restored = ldap.revert(account=account(upn), snapshot=snapshot)

    assert restored.ok, restored.error
    assert dn.lower() in samba.members(DOMAIN_ADMINS)
    assert restored.detail["groups"] == [DOMAIN_ADMINS]
    again = ldap.revert(account=account(upn), snapshot=snapshot)
    assert again.ok and again.detail["changed"] is False


# --- transport and failures -----------------------------------------------------------------


def test_start_tls_on_the_plain_port_works(samba):
    dn, upn = samba.add_user()
    ldap = ad(samba, server_uri=samba.uri, start_tls=True)
    assert ldap.health().ok
    assert ldap.execute(account=account(upn), case_type="mfa_reset", case_id=37).ok
    assert dn.lower() in samba.members(TAP_GROUP)


def test_a_simple_bind_in_clear_is_refused_by_the_dc(samba):
    plain = ad(
        samba, server_uri=samba.uri, allow_unencrypted=True, password_mode="none", tls_ca_file=""
    )
    health = plain.health()
    assert not health.ok and "strongerAuthRequired" in health.detail
    assert SERVICE_PASSWORD not in health.detail


def test_a_server_certificate_from_another_ca_is_refused(samba):
    dn, upn = samba.add_user()
    before = state(samba, dn)
    other = ad(samba, tls_ca_file=samba.other_ca_file)
    result = other.execute(account=account(upn), case_type="password_reset", case_id=38)
    assert not result.ok and "certificate" in result.error.lower()
    assert state(samba, dn) == before and samba.can_bind(upn, OLD_PASSWORD)
    assert not other.health().ok


def test_a_wrong_service_password_is_the_dcs_refusal_and_never_an_exception(samba, monkeypatch):
    _dn, upn = samba.add_user()
    wrong = "Not-The-Service-Passw0rd"
    monkeypatch.setenv(ENV, wrong)
    result = ad(samba).execute(account=account(upn), case_type="password_reset", case_id=39)
    assert not result.ok and result.snapshot is None
    assert "invalidCredentials" in result.error and wrong not in result.error
    assert samba.can_bind(upn, OLD_PASSWORD)


def test_the_userprincipalname_is_escaped_in_the_search(samba):
    samba.add_user()
    for username in ("*", "*)(objectClass=user"):
        result = ad(samba).execute(account=account(username), case_type="mfa_reset", case_id=40)
        assert not result.ok and "No directory entry matches" in result.error

"""The manual connector: exact steps for the agent in the tenant's console, nothing changed."""

from __future__ import annotations

import pytest

from recovery.connectors.manual import SEPARATOR, ManualConnector
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount
from tenants.choices import CaseType

SUBJECT = ProtectedAccount(
    external_id="E1001", username="alice@acme.example", display_name="Alice Example"
)


def manual(**settings) -> ManualConnector:
    return ManualConnector(settings=validate_settings("manual", settings))


def test_entra_mfa_reset_names_the_exact_menu_path_and_needs_confirmation():
    result = manual(console="entra").execute(account=SUBJECT, case_type="mfa_reset", case_id=3)
    assert result.ok and result.connector == "manual" and result.snapshot is None
    first, second = result.detail["steps"]
    assert first == SEPARATOR.join(
        [
            "Entra admin center",
            "Users",
            "All users",
            "alice@acme.example",
            "Authentication methods",
            "Require re-register multifactor authentication",
        ]
    )
    assert "Revoke sessions" in second
    assert result.path == f"{first}\n{second}"
    assert result.detail["requires_confirmation"] is True
    assert result.detail["operation"] == "mfa_reset" and result.detail["console"] == "entra"


@pytest.mark.parametrize("console", ["entra", "active_directory", "google_workspace", "generic"])
@pytest.mark.parametrize("case_type", CaseType.values)
def test_every_console_has_steps_for_every_case_type_with_the_account_filled_in(console, case_type):
    result = manual(console=console).execute(account=SUBJECT, case_type=case_type, case_id=1)
    assert result.ok and result.detail["steps"]
    assert "alice@acme.example" in result.path
    assert "{" not in result.path  # every placeholder was filled


def test_steps_never_ask_the_agent_to_choose_or_pass_on_a_password():
    for console in ("entra", "active_directory", "google_workspace", "generic"):
        connector = manual(console=console)
        for case_type in CaseType.values:
            for step in connector.execute(account=SUBJECT, case_type=case_type, case_id=1).detail[
                "steps"
            ]:
                lowered = step.lower()
                assert "type a new password" not in lowered and "tell the" not in lowered
                if "reset password" in lowered or "backup verification codes" in lowered:
                    assert "do not" in lowered, step  # never read out or passed on


def test_a_tenants_own_steps_replace_the_defaults_and_are_filled_safely():
    connector = manual(
        console="entra",
        steps={
            "password_reset": ["Okta admin > People > {username} ({external_id}) > Reset"],
            "revert": ["Restore {display_name} from the case record"],
        },
    )
    curly = ProtectedAccount(external_id="{0}", username="a{username}b", display_name="D")
    result = connector.execute(account=curly, case_type="password_reset", case_id=1)
    assert result.detail["steps"] == ["Okta admin > People > a{username}b ({0}) > Reset"]
    reverted = connector.revert(account=SUBJECT, snapshot=None)
    assert reverted.ok and reverted.path == "Restore Alice Example from the case record"
    # Case types the tenant did not override keep the console's defaults.
    assert (
        "Entra admin center"
        in connector.execute(account=SUBJECT, case_type="mfa_reset", case_id=1).path
    )


def test_revert_and_revoke_give_steps_too_and_health_is_ok():
    connector = manual(console="entra")
    revoked = connector.revoke_temporary_access(account=SUBJECT)
    assert revoked.ok and revoked.detail["operation"] == "revoke_temporary_access"
    assert "Temporary Access Pass" in revoked.path and revoked.detail["requires_confirmation"]
    reverted = connector.revert(account=SUBJECT, snapshot=None)
    assert reverted.ok and "Revoke sessions" in reverted.path
    assert connector.snapshot(account=SUBJECT, case_type="mfa_reset") is None
    assert connector.health().ok
    assert ManualConnector().console == "generic"  # no configuration at all

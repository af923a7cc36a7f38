"""The manual connector: Vouchsafe changes nothing itself and tells the agent exactly what to do.

`execute` answers with the steps for the case type in the tenant's console, each a menu path
with the account filled in, and `requires_confirmation`: the change is made only when a person
has done it there. No step asks the agent to choose, read or pass on a password or a pass
(R-10): those reach the owner through the Vouchsafe artifact.
"""

from __future__ import annotations

from typing import Any

from tenants.choices import CaseType

from ..models import ProtectedAccount
from .base import CAPABILITY_MISSING, Capability, ExecutionResult, Health, Snapshot
from .choices import ManualConsole

SEPARATOR = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "  # between menu items
REVERT = "revert"
REVOKE = "revoke_temporary_access"

_NO_SECRET = "do not read, note or pass on any password or pass it shows"  # noqa: S105


def _step(*menu: str) -> str:
    """One step: a menu path in the other console, its items joined by SEPARATOR."""
    return SEPARATOR.join(menu)


DEFAULT_STEPS: dict[str, dict[str, list[str]]] = {
    ManualConsole.ENTRA: {
        CaseType.PASSWORD_RESET: [
            _step("Entra admin center", "Users", "All users", "{username}", "Revoke sessions"),
            _step(
                "Entra admin center",
                "Users",
                "All users",
                "{username}",
                f"Reset password ({_NO_SECRET}; the owner sets their own with the Vouchsafe link)",
            ),
        ],
        CaseType.MFA_RESET: [
            _step(
                "Entra admin center",
                "Users",
                "All users",
                "{username}",
                "Authentication methods",
                "Require re-register multifactor authentication",
            ),
            _step("Entra admin center", "Users", "All users", "{username}", "Revoke sessions"),
        ],
        CaseType.UNLOCK: [
            _step(
                "Entra admin center",
                "Users",
                "All users",
                "{username}",
                "Edit properties",
                "Settings",
                "Account enabled: on",
            ),
        ],
        CaseType.TEMPORARY_ACCESS: [
            _step(
                "Entra admin center",
                "Groups",
                "Vouchsafe temporary access",
                "Members",
                "Add members",
                "{username} (the owner creates their pass through the Vouchsafe link)",
            ),
        ],
        CaseType.MAILBOX_ACCESS: [
            _step(
                "Exchange admin center",
                "Recipients",
                "Mailboxes",
                "{username}",
                "Delegation (only the delegation the case names; nothing else)",
            ),
        ],
        CaseType.PRIVILEGED_ROLE_RESTORE: [
            _step(
                "Entra admin center",
                "Identity governance",
                "Privileged Identity Management",
                "Roles",
                "the role named in the case",
                "Add assignments",
                "{username} (eligible, not active)",
            ),
        ],
    },
    ManualConsole.ACTIVE_DIRECTORY: {
        CaseType.PASSWORD_RESET: [
            _step(
                "Active Directory Users and Computers",
                "{username}",
                "Properties",
                "Account",
                "User must change password at next logon: on",
            ),
            _step(
                "Active Directory Users and Computers",
                "{username}",
                "Properties",
                "Account",
                "Password never expires: off",
            ),
        ],
        CaseType.UNLOCK: [
            _step(
                "Active Directory Users and Computers",
                "{username}",
                "Properties",
                "Account",
                "Unlock account",
            ),
        ],
        CaseType.TEMPORARY_ACCESS: [
            _step(
                "Active Directory Users and Computers",
                "Vouchsafe temporary access (group)",
                "Members",
                "Add",
                "{username}",
            ),
        ],
        CaseType.MFA_RESET: [
            _step(
                "Active Directory Users and Computers",
                "Vouchsafe temporary access (group)",
                "Members",
                "Add",
                "{username} (lets the owner register a new MFA method)",
            ),
        ],
    },
    ManualConsole.GOOGLE: {
        CaseType.PASSWORD_RESET: [
            _step(
                "Admin console",
                "Directory",
                "Users",
                "{username}",
                "Security",
                "Sign-in cookies",
                "Reset",
            ),
            _step(
                "Admin console",
                "Directory",
                "Users",
                "{username}",
                "Reset password",
                f"Ask for a password change at the next sign-in ({_NO_SECRET})",
            ),
        ],
        CaseType.MFA_RESET: [
            _step(
                "Admin console",
                "Directory",
                "Users",
                "{username}",
                "Security",
                "2-step verification",
                "Turn off (the owner enrols again with the Vouchsafe link)",
            ),
            _step(
                "Admin console",
                "Directory",
                "Users",
                "{username}",
                "Security",
                "Sign-in cookies",
                "Reset",
            ),
        ],
        CaseType.TEMPORARY_ACCESS: [
            _step(
                "Admin console",
                "Directory",
                "Users",
                "{username}",
                "Security",
                "Backup verification codes: do not generate them here; the owner gets a pass "
                "through the Vouchsafe link",
            ),
        ],
    },
}
_REVEAL_NOTHING = f"({_NO_SECRET})"
GENERIC_STEPS: dict[str, list[str]] = {
    CaseType.PASSWORD_RESET: [
        _step("Directory console", "{username}", "End every session"),
        _step(
            "Directory console",
            "{username}",
            f"Require a new password at the next sign-in {_REVEAL_NOTHING}",
        ),
    ],
    CaseType.MFA_RESET: [
        _step("Directory console", "{username}", "Require the owner to register MFA again"),
        _step("Directory console", "{username}", "End every session"),
    ],
    CaseType.UNLOCK: [_step("Directory console", "{username}", "Unlock the account")],
    CaseType.TEMPORARY_ACCESS: [
        _step(
            "Directory console",
            "{username}",
            f"Allow one temporary sign-in for registration {_REVEAL_NOTHING}",
        ),
    ],
    CaseType.MAILBOX_ACCESS: [
        _step("Mail console", "{username}", "Grant the access the case names, nothing else")
    ],
    CaseType.PRIVILEGED_ROLE_RESTORE: [
        _step("Identity console", "{username}", "Restore the role the case names (eligible)")
    ],
    CaseType.EXCEPTION: [
        "Do exactly what the approved exception case describes for {username}, nothing more"
    ],
    REVERT: [
        _step(
            "Directory console",
            "{username}",
            "Put back what the case changed, as the case records it (ended sessions stay ended)",
        ),
    ],
    REVOKE: [
        _step("Directory console", "{username}", "Remove the temporary access the case allowed")
    ],
}
REVERT_STEPS: dict[str, list[str]] = {
    ManualConsole.ENTRA: [
        _step("Entra admin center", "Users", "All users", "{username}", "Revoke sessions"),
        _step(
            "Entra admin center",
            "Groups",
            "Vouchsafe temporary access",
            "Members",
            "remove {username}",
        ),
        _step(
            "Entra admin center",
            "Users",
            "All users",
            "{username}",
            "Authentication methods: delete any method registered since the case was executed",
        ),
    ],
}
REVOKE_STEPS: dict[str, list[str]] = {
    ManualConsole.ENTRA: [
        _step(
            "Entra admin center",
            "Groups",
            "Vouchsafe temporary access",
            "Members",
            "remove {username}",
        ),
        _step(
            "Entra admin center",
            "Users",
            "All users",
            "{username}",
            "Authentication methods",
            "Temporary Access Pass",
            "Delete",
        ),
    ],
    ManualConsole.ACTIVE_DIRECTORY: [
        _step(
            "Active Directory Users and Computers",
            "Vouchsafe temporary access (group)",
            "Members",
            "remove {username}",
        ),
    ],
}


def _fill(template: str, account: ProtectedAccount) -> str:
    # Only these three names can appear (validation.STEP_PLACEHOLDERS); values are data.
    return template.format(
        username=account.username,
        external_id=account.external_id,
        display_name=account.display_name,
    )


class ManualConnector:
    """Instructions only. Every method is read-only and can be called any number of times."""

    kind = "manual"
    # Every step is a person's, in the other console.
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, *, settings: dict[str, Any] | None = None) -> None:
        settings = settings or {}
        self.console: str = settings.get("console", ManualConsole.GENERIC)
        self.overrides: dict[str, list[str]] = settings.get("steps", {})

    def steps_for(self, operation: str) -> list[str]:
        """The templates for a case type, or for REVERT / REVOKE; the tenant's own first."""
        if operation in self.overrides:
            return list(self.overrides[operation])
        if operation == REVERT:
            return REVERT_STEPS.get(self.console, GENERIC_STEPS[REVERT])
        if operation == REVOKE:
            return REVOKE_STEPS.get(self.console, GENERIC_STEPS[REVOKE])
        return DEFAULT_STEPS.get(self.console, {}).get(operation) or GENERIC_STEPS.get(
            operation, []
        )

    def _result(self, operation: str, account: ProtectedAccount) -> ExecutionResult:
        steps = [_fill(step, account) for step in self.steps_for(operation)]
        if not steps:
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path="",
                error=f"No manual steps are defined for {operation}.",
            )
        return ExecutionResult(
            ok=True,
            connector=self.kind,
            path="\n".join(steps),
            detail={
                "requires_confirmation": True,
                "operation": operation,
                "console": self.console,
                "steps": steps,
            },
        )

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        return None  # the state lives in another console; Vouchsafe cannot read it

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        return self._result(case_type, account)

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        return self._result(REVERT, account)

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        return self._result(REVOKE, account)

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        # A person follows these steps in another console: nobody may be handed a password.
        return ExecutionResult(
            ok=False,
            connector=self.kind,
            path="",
            error="The manual connector cannot set a password: the owner sets it at the "
            "organisation's own sign-in page, where the recovery required a change.",
            detail={"code": CAPABILITY_MISSING, "capability": "password_set"},
        )

    def health(self) -> Health:
        return Health(ok=True, detail="Manual: nothing to reach; an agent follows the steps.")

"""Where a recovery really happens: the interface every connector implements.

A connector acts on the tenant's directory (or tells a person exactly what to do in another
console, for the manual connector). Vouchsafe never holds the new credential: the connector
puts the account into a state in which its owner sets it, through the artifact sent to them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from ..models import ProtectedAccount
from .cloud import AuthMethod, ReportedChange, TemporaryPass


@dataclass(frozen=True)
class Snapshot:
    """What the connector read before a change, enough to put it back (R-37)."""

    account_external_id: str
    state: dict[str, Any]

    def redacted(self) -> dict[str, Any]:
        """The state without secret values, fit for an audit event or a screen.

        A connector keeps what it must restore but may not show (an LDAP password hash) under
        `state["secret"]`; here each such value becomes its SHA-256 fingerprint.
        """
        public = {key: value for key, value in self.state.items() if key != "secret"}
        secret = self.state.get("secret")
        if secret:
            public["secret"] = {
                name: [
                    "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
                    for value in values
                ]
                for name, values in secret.items()
            }
        return public


@dataclass(frozen=True)
class ExecutionResult:
    """What a connector did: where (`path`), whether it worked, and what it changed."""

    ok: bool
    connector: str
    path: str
    snapshot: Snapshot | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


CAPABILITY_MISSING = "connector.capability_missing"


class Capability(StrEnum):
    """What a connector does natively. The workflow reads `Connector.capabilities`; whatever a
    connector lacks falls back to steps a person does in the directory's console and records
    in Vouchsafe (tracked manual steps)."""

    EXECUTE = "execute"  # put the account in the recovery state for the case type
    REVERT = "revert"  # put back what a snapshot recorded
    PASSWORD_SET = "password_set"  # noqa: S105 - the owner's chosen password is set (R-11)
    # Issue the vendor's one-time credential (an Entra Temporary Access Pass, an Okta reset
    # link, Google backup codes) into the owner's artifact session only
    TEMPORARY_PASS = "temporary_pass"  # noqa: S105 - a name, not a secret
    SESSIONS_REVOKE = "sessions_revoke"  # end sessions and refresh tokens
    METHODS_REMOVE = "methods_remove"  # list and remove the lost authenticators
    ROLES_SUSPEND = "roles_suspend"  # remove standing admin roles and restore them
    CHANGES_READ = "changes_read"  # report changes for the re-establishment window
    CHANGE_UNDO = "change_undo"  # undo a change reported inside the window
    # grant and remove a time-bound delegation of a shared or functional mailbox (issue 14)
    MAILBOX_DELEGATE = "mailbox_delegate"


def capability_missing(connector: str, operation: str) -> ExecutionResult:
    """The answer of a connector asked for something it cannot do natively."""
    return ExecutionResult(
        ok=False,
        connector=connector,
        path=operation,
        detail={"code": CAPABILITY_MISSING},
        error=f"The {connector} connector cannot do this natively ({operation}).",
    )


class Connector(Protocol):
    """One tenant's way to change accounts. Every method is safe to call twice."""

    kind: str
    # What it does natively (`Capability`); the owner portal asks for a password only when
    # PASSWORD_SET is among them.
    capabilities: frozenset[Capability]

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        """Read what `execute` would change, changing nothing (None when nothing would change
        or the connector cannot read it). A caller may store it before `execute` (write-ahead),
        so a retry after a crash still knows the state before the first attempt."""
        ...

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        """Snapshot, then apply the recovery state for `case_type` (e.g. force a password reset,
        or allow a temporary access pass to be used)."""
        ...

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Put back what `snapshot` recorded (a repudiated case)."""
        ...

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        """End any temporary access state the connector set for `account`."""
        ...

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        """Set the password the account owner chose in their recovery session (R-11) and end
        any "must change" state the recovery set. The password appears in no result, error,
        log or snapshot. A connector that cannot do it returns ok=False with
        `detail["code"] == CAPABILITY_MISSING`; it never passes the password on elsewhere."""
        ...

    def health(self) -> Health: ...


class MailboxDelegating(Protocol):
    """A connector with `Capability.MAILBOX_DELEGATE`: it gives one account access to another's
    mailbox and takes it back. Both are safe to repeat (one already there, or already gone,
    counts as done). A connector without the capability is never asked: the workflow tracks
    the grant and the removal as manual steps."""

    kind: str
    capabilities: frozenset[Capability]

    def mailbox_delegate_add(
        self, *, mailbox: ProtectedAccount, delegate: ProtectedAccount
    ) -> ExecutionResult:
        """Give `delegate` access to `mailbox`; `detail` names both as the vendor knows them
        (`mailbox_address`, `delegate_address`), which `mailbox_delegate_remove` takes back."""
        ...

    def mailbox_delegate_remove(
        self, *, mailbox_address: str, delegate_address: str
    ) -> ExecutionResult:
        """Take back exactly the access `mailbox_delegate_add` answered (by the addresses it
        named), whoever holds those names now."""
        ...


class CloudConnector(Connector, Protocol):
    """A connector to a cloud identity provider: containment and the window as well (R-19,
    R-34, R-35). Each method answers `capability_missing` for what `capabilities` lacks."""

    def temporary_pass_issue(
        self, *, account: ProtectedAccount, case_type: str, lifetime_minutes: int
    ) -> tuple[ExecutionResult, TemporaryPass | None]:
        """Issue the vendor's one-time credential for the owner, called only from the owner's
        artifact session (R-12). The pass appears in no result, log or snapshot."""
        ...

    def sessions_revoke(self, *, account: ProtectedAccount) -> ExecutionResult: ...

    def methods_list(self, *, account: ProtectedAccount) -> list[AuthMethod]: ...

    def method_remove(self, *, account: ProtectedAccount, method: AuthMethod) -> ExecutionResult:
        """Remove one authenticator; one already gone counts as removed."""
        ...

    def roles_suspend(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Remove the user's admin role assignments; `snapshot.state["roles"]` holds what
        `roles_restore` grants back."""
        ...

    def roles_restore(
        self, *, account: ProtectedAccount, snapshot: Snapshot
    ) -> ExecutionResult: ...

    def changes_since(
        self, *, account: ProtectedAccount, since: datetime
    ) -> list[ReportedChange]: ...

    def change_undo(self, *, account: ProtectedAccount, change: ReportedChange) -> ExecutionResult:
        """Undo one reported change (delete the new device, revoke the role grant, ...)."""
        ...

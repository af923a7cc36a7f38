"""Where a recovery really happens: the interface every connector implements.

A connector acts on the tenant's directory (or tells a person exactly what to do in another
console, for the manual connector). Vouchsafe never holds the new credential: the connector
puts the account into a state in which its owner sets it, through the artifact sent to them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models import ProtectedAccount


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


class Connector(Protocol):
    """One tenant's way to change accounts. Every method is safe to call twice."""

    kind: str
    # Whether `password_set` can work at all (the owner portal says so before asking for one).
    can_set_password: bool

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

"""What the cloud directory clients answer, in one vocabulary for Entra ID, Okta and Google.

Each client (`graph_client`, `okta_client`, `google_client`) speaks its vendor's API and
answers these types, so that the connectors and the workflow above them read one shape: the
user, their authentication methods, their admin role assignments, and the changes the vendor
reports for the re-establishment window (R-35's six kinds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..policy.floors import TEMPORARY_PASS_CEILING_SECONDS

# R-31, in the minutes the vendors' pass APIs take.
MAX_PASS_MINUTES = TEMPORARY_PASS_CEILING_SECONDS // 60


class ChangeKind(StrEnum):
    """The six changes R-35 refuses during the re-establishment window."""

    MFA_ENROLLED = "mfa_enrolled"  # an additional authenticator registered
    ADDRESS_CHANGED = "address_changed"  # a recovery or notification address changed
    MAILBOX_RULE = "mailbox_rule"  # mailbox forwarding, redirect or hiding rule
    DELEGATE_GRANTED = "delegate_granted"  # mailbox or account delegate added
    OAUTH_CONSENT = "oauth_consent"  # consent granted to an OAuth application
    PRIVILEGED_ROLE = "privileged_role"  # a privileged role assigned or activated


@dataclass(frozen=True)
class DirectoryUser:
    id: str  # the vendor's immutable id (Entra object id, Okta user id, Google user id)
    username: str  # UPN, Okta login, primary e-mail
    display_name: str
    enabled: bool


@dataclass(frozen=True)
class AuthMethod:
    """One authenticator bound to the user, as the vendor lists it."""

    id: str
    kind: str  # the vendor's own type name, e.g. "fido2", "microsoftAuthenticator", "push"
    label: str = ""
    created_at: datetime | None = None
    phishing_resistant: bool = False


@dataclass(frozen=True)
class RoleAssignment:
    """An admin role the user holds; `restore` needs role and scope to grant it back (R-19)."""

    id: str
    role_id: str
    role_name: str
    scope: str = "/"


@dataclass(frozen=True)
class ReportedChange:
    """A change the vendor reported on the user (audit log, system log, activity report)."""

    id: str  # the vendor's event id: the same event read twice is one change
    at: datetime
    kind: ChangeKind
    summary: str
    # What undoing it needs, in the vendor's terms (e.g. the method or assignment id).
    target: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TemporaryPass:
    """A one-time credential the vendor issued for the owner (an Entra Temporary Access Pass,
    an Okta reset link, Google backup codes). `secret` goes only into the owner's artifact
    session: it is left out of `repr`, so no log or error carries it (R-10)."""

    id: str
    secret: str = field(repr=False)
    expires_at: datetime | None = None
    usable_once: bool = True

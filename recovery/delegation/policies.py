"""Pure decisions about mailboxes: which case types an account's kind allows, and whether a
mailbox may be asked for as a delegation. No database writes; each refusal has a code."""

from __future__ import annotations

from django.utils.translation import gettext as _

from tenants.choices import CaseType
from tenants.policies import ALLOW, Decision

from ..choices import MailboxType
from ..models import ProtectedAccount

# Kinds of account that are a mailbox many people use, not one person's sign-in.
SHARED_KINDS = frozenset({MailboxType.SHARED, MailboxType.FUNCTIONAL})
# Case types that would give someone the mailbox's own sign-in: a shared or functional
# mailbox has none of these (an unlock would send a password link to its contact); access to
# it is a delegation (`mailbox_access`).
OWN_CREDENTIAL_CASE_TYPES = frozenset(
    {CaseType.PASSWORD_RESET, CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS, CaseType.UNLOCK}
)


def is_shared_mailbox(account: ProtectedAccount) -> bool:
    return account.mailbox_type in SHARED_KINDS


def case_type_allowed(account: ProtectedAccount, case_type: str) -> Decision:
    """Whether a case of `case_type` may be opened on `account` given its kind (from the
    system of record); a refusal says why."""
    if not is_shared_mailbox(account):
        return ALLOW
    if case_type in OWN_CREDENTIAL_CASE_TYPES:
        return Decision(
            False,
            "case.type_not_for_account_kind",
            _(
                "A shared or functional mailbox has no sign-in of its own to unlock or recover "
                "(no password, MFA or temporary pass). Whoever needs it asks for access: open a "
                "mailbox access case on their own account."
            ),
        )
    if case_type == CaseType.MAILBOX_ACCESS:
        return Decision(
            False,
            "delegation.subject_is_mailbox",
            _(
                "A mailbox access case is opened on the requester's own account; the shared "
                "mailbox is what it asks access to."
            ),
        )
    return ALLOW


def case_types_for(account: ProtectedAccount, case_types: list[str]) -> list[str]:
    """`case_types` without those `account`'s kind refuses (the console's choices)."""
    return [value for value in case_types if case_type_allowed(account, value)]


def mailbox_allowed(
    account: ProtectedAccount, case_type: str, mailbox: ProtectedAccount | None
) -> Decision:
    """Whether `mailbox` may be the object of a case of `case_type` on `account`.

    A mailbox access case names one shared or functional mailbox of the same tenant whose
    system of record names an owner who is not the requester; other case types name none."""
    if case_type != CaseType.MAILBOX_ACCESS:
        if mailbox is None:
            return ALLOW
        return Decision(
            False,
            "delegation.mailbox_only_for_access",
            _("Only a mailbox access case names a mailbox."),
        )
    if mailbox is None:
        return Decision(
            False,
            "delegation.mailbox_required",
            _("Name the shared or functional mailbox the requester needs access to."),
        )
    if not is_shared_mailbox(mailbox):
        return Decision(
            False,
            "delegation.mailbox_not_shared",
            _(
                "Access is delegated only to a shared or functional mailbox; a person's own "
                "mailbox is not delegated through a case."
            ),
        )
    if not mailbox.mailbox_owner_external_id:
        return Decision(
            False,
            "delegation.mailbox_without_owner",
            _(
                "The system of record names no owner for this mailbox, so nobody can approve "
                "access to it. Have its owner recorded there first."
            ),
        )
    if mailbox.mailbox_owner_external_id == account.external_id:
        return Decision(
            False,
            "sod.requester_is_mailbox_owner",
            _(
                "The requester is the mailbox's registered owner, who would approve their own "
                "access: the owner reaches the mailbox through the mail system itself."
            ),
        )
    return ALLOW

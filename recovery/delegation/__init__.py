"""Shared and functional mailboxes: which case types an account's kind allows, and time-bound
mailbox delegation (issue 14, item 6).

A shared or functional mailbox has no password, MFA or temporary-pass recovery of its own
(`policies.case_type_refusal`). Access to it is a `MailboxDelegation`: requested by a
`mailbox_access` case whose subject is the requester's own account (verified like any case),
approved by the mailbox's registered owner in their own portal session plus a supervisor (the
case's normal approval), granted through the tenant's connector at execution until an expiry
from the policy, and removed by the sweep when it expires. No artifact or reset link is ever
issued for the mailbox itself.
"""

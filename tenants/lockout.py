"""Per-account throttling of staff password and OTP failures, with an audited lockout.

A failure is counted (and the lock set) in a transaction of its own, committed before its
audit events are written in a second one. An audit outage therefore cannot undo the count: the
attempt still counts towards the lockout, and the sign-in or step-up it belongs to is refused
with `FailureNotRecorded` (R-44: fail closed; the limit holds while the trail is down).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record

from .exceptions import DomainError
from .models import User

logger = logging.getLogger(__name__)

AUDIT_UNAVAILABLE = (
    "This attempt was refused because it could not be recorded in the audit trail; it still "
    "counts towards the lockout. Try again later."
)


class FailureNotRecorded(DomainError):
    """A failed attempt was counted, but its audit event could not be written: refuse."""

    code = "auth.audit_unavailable"


@dataclass(frozen=True)
class _Counted:
    """One failure as committed: its number, and the lock it set (if it was the last one)."""

    attempt: int
    locked_until: datetime | None


def is_locked(user: User) -> bool:
    """True while the account's lockout lasts."""
    return user.locked_until is not None and user.locked_until > timezone.now()


def _count(user: User) -> _Counted | None:
    """Count one failure under the account's row lock and commit it; None if already locked."""
    with transaction.atomic():
        row = User.objects.select_for_update().get(pk=user.pk)
        if is_locked(row):
            return None
        attempt = row.failed_attempts + 1
        counted = _Counted(attempt=attempt, locked_until=None)
        if attempt >= settings.STAFF_LOCKOUT_THRESHOLD:
            until = timezone.now() + timedelta(seconds=settings.STAFF_LOCKOUT_SECONDS)
            counted = _Counted(attempt=attempt, locked_until=until)
        row.failed_attempts = 0 if counted.locked_until else attempt
        row.locked_until = counted.locked_until or row.locked_until
        row.save(update_fields=["failed_attempts", "locked_until"])
    user.failed_attempts, user.locked_until = row.failed_attempts, row.locked_until
    return counted


def _record(user: User, kind: str, counted: _Counted) -> None:
    """The audit events of a committed failure (and of the lock it set), in one transaction."""
    with transaction.atomic():
        record(
            action="auth.login_failed",
            actor=Actor.for_user(user),
            target=user,
            data={"kind": kind, "attempt": counted.attempt},
        )
        if counted.locked_until is not None:
            record(
                action="auth.account_locked",
                actor=Actor.system("lockout"),
                target=user,
                data={"kind": kind, "until": counted.locked_until.isoformat()},
            )


def register_failure(user: User, *, kind: str) -> bool:
    """Count one failed `kind` attempt ("password", "otp", "step_up", "passkey"); True if the
    account is locked now.

    Call it outside the transaction of the refusal it accompanies. The count commits first;
    if its audit events then cannot be written, it raises `FailureNotRecorded` (the count and
    any lock stay) and the caller refuses the sign-in or step-up.
    """
    counted = _count(user)
    if counted is None:
        return True
    try:
        _record(user, kind, counted)
    except Exception as failure:
        logger.error(
            "Staff %s failure of user %s counted (attempt %s) but not recorded: %r",
            kind,
            user.pk,
            counted.attempt,
            failure,
        )
        raise FailureNotRecorded(AUDIT_UNAVAILABLE) from failure
    return counted.locked_until is not None


def register_success(user: User) -> None:
    """Clear the failure count after a fully successful sign-in or step-up."""
    if user.failed_attempts:
        User.objects.filter(pk=user.pk).update(failed_attempts=0)
        user.failed_attempts = 0

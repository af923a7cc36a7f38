"""Per-account throttling of staff password and OTP failures, with an audited lockout."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record

from .models import User


def is_locked(user: User) -> bool:
    """True while the account's lockout lasts."""
    return user.locked_until is not None and user.locked_until > timezone.now()


def register_failure(user: User, *, kind: str) -> bool:
    """Count one failed `kind` attempt ("password", "otp", "step_up"); True if now locked.

    Runs in its own transaction so the count survives the refusal it accompanies.
    """
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        actor = Actor.for_user(locked)
        if is_locked(locked):
            return True
        locked.failed_attempts += 1
        record(
            action="auth.login_failed",
            actor=actor,
            target=locked,
            data={"kind": kind, "attempt": locked.failed_attempts},
        )
        now_locked = locked.failed_attempts >= settings.STAFF_LOCKOUT_THRESHOLD
        if now_locked:
            locked.locked_until = timezone.now() + timedelta(seconds=settings.STAFF_LOCKOUT_SECONDS)
            locked.failed_attempts = 0
            record(
                action="auth.account_locked",
                actor=Actor.system("lockout"),
                target=locked,
                data={"kind": kind, "until": locked.locked_until.isoformat()},
            )
        locked.save(update_fields=["failed_attempts", "locked_until"])
    user.failed_attempts, user.locked_until = locked.failed_attempts, locked.locked_until
    return now_locked


def register_success(user: User) -> None:
    """Clear the failure count after a fully successful sign-in or step-up."""
    if user.failed_attempts:
        User.objects.filter(pk=user.pk).update(failed_attempts=0)
        user.failed_attempts = 0

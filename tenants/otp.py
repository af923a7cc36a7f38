"""Writes of staff second factors: enrolment, backup codes and completed sign-ins, audited."""

from __future__ import annotations

from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.context import Actor
from audit.services import record

from .lockout import register_success
from .models import User

BACKUP_CODE_COUNT = 10


def backup_codes_issue(*, user: User, count: int = BACKUP_CODE_COUNT) -> list[str]:
    """Replace the user's backup codes with `count` new single-use ones; returns them once."""
    with transaction.atomic():
        device, _created = StaticDevice.objects.get_or_create(
            user=user, defaults={"name": "Backup codes"}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _i in range(count)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
    return codes


def totp_enrolment_confirm(*, user: User, device: TOTPDevice) -> list[str]:
    """Confirm a TOTP device the user proved with a code, and issue fresh backup codes."""
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = backup_codes_issue(user=user)
        record(
            action="auth.otp_enrolled",
            actor=Actor.for_user(user),
            target=user,
            data={"backup_codes": len(codes)},
        )
    register_success(user)
    return codes


def sign_in_completed(*, user: User, device: Device) -> None:
    """Record a sign-in that passed password and OTP, and clear the failure count."""
    with transaction.atomic():
        record(
            action="auth.login_succeeded",
            actor=Actor.for_user(user),
            target=user,
            data={"device_type": type(device).__name__},
        )
    register_success(user)

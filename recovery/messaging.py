"""Sending a message to a contact method the system of record holds: email, SMS or voice.

Providers are small and replaceable: email goes through Django's email backend (SMTP in
production), SMS and voice through `settings.SMS_PROVIDER` (a dotted path; the default writes
JSON lines to a file for development and tests). A provider never raises for a delivery
problem: it answers `Delivery(ok=False, error=...)`, and the caller decides (R-42 blocks T1/T2
execution on a failed notification).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone
from django.utils.module_loading import import_string

from .choices import PHONE_KINDS, ContactKind
from .models import ContactMethod


@dataclass(frozen=True)
class Delivery:
    """What a provider reports for one message."""

    ok: bool
    provider: str
    error: str = ""


class PhoneProvider(Protocol):
    name: str

    def send(self, *, to: str, body: str, voice: bool) -> Delivery: ...


class FilePhoneProvider:
    """Development and tests: each SMS or call is one JSON line in `SMS_OUTBOX_PATH`."""

    name = "file"

    def send(self, *, to: str, body: str, voice: bool) -> Delivery:
        path = Path(settings.SMS_OUTBOX_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"at": timezone.now().isoformat(), "to": to, "voice": voice, "body": body}
        with path.open("a", encoding="utf-8") as outbox:
            outbox.write(json.dumps(line) + "\n")
        return Delivery(ok=True, provider=self.name)


@cache
def phone_provider() -> PhoneProvider:
    return import_string(settings.SMS_PROVIDER)()


def email_send(to: str, *, subject: str, body: str) -> Delivery:
    """Send one email through Django's backend; a backend failure is a failed delivery."""
    try:
        sent = EmailMessage(subject=subject, body=body, to=[to]).send(fail_silently=False)
    except Exception as error:
        return Delivery(ok=False, provider="email", error=f"{type(error).__name__}: {error}"[:300])
    return Delivery(ok=sent == 1, provider="email", error="" if sent == 1 else "not accepted")


def message_send(contact: ContactMethod, *, subject: str, body: str) -> Delivery:
    """Send `body` to `contact` through the provider for its kind. Never put a secret here
    unless the message's whole purpose is to carry a one-time code to the owner."""
    if contact.kind == ContactKind.EMAIL:
        return email_send(contact.value, subject=subject, body=body)
    if contact.kind in PHONE_KINDS:
        voice = contact.kind == ContactKind.DESK_PHONE
        try:
            return phone_provider().send(to=contact.value, body=body, voice=voice)
        except Exception as error:
            return Delivery(ok=False, provider="phone", error=f"{type(error).__name__}"[:300])
    return Delivery(ok=False, provider="none", error=f"cannot send to a {contact.kind} contact")

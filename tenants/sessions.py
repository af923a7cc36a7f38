"""Staff console sessions: a new key at every privilege change, and ending a user's sessions
at once (R-62: lost role, membership or grant).

The password step rotates the key in Django's `login`; the second factor (TOTP, backup code or
passkey) in `second_factor_login`; a step-up in SessionRotationMiddleware (tenants/middleware.py).
The data stays, the old key stops working: a key seen before the change is worth nothing after.

Ending sessions:

Sessions live in the session store Django is configured with; a session names its user only
inside its signed data, so the live ones are read and those of the users asked for are
deleted through the configured engine (which also clears a cached copy). Losing access is rare,
so reading the live sessions then is cheap enough; run it in the transaction of the change,
so a rolled-back change keeps the sessions.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.models import Device


def session_rotate(request: HttpRequest) -> None:
    """Give the signed-in session of `request` a new key (same data); the old key is deleted."""
    session = getattr(request, "session", None)
    if session is not None and session.session_key and SESSION_KEY in session:
        session.cycle_key()


def second_factor_login(request: HttpRequest, device: Device) -> None:
    """Mark the session verified with `device` (django-otp) under a new session key."""
    otp_login(request, device)
    session_rotate(request)


def sessions_end_for_users(user_ids: Collection[int]) -> dict[int, int]:
    """Delete every live session of these users; returns how many ended, per user id."""
    wanted = {str(user_id) for user_id in user_ids}
    store = import_module(settings.SESSION_ENGINE).SessionStore
    ended: dict[int, int] = {}
    live = Session.objects.filter(expire_date__gt=timezone.now())
    for session in live.iterator():
        user_id = str(session.get_decoded().get(SESSION_KEY, ""))
        if user_id in wanted:
            store(session_key=session.session_key).delete()
            ended[int(user_id)] = ended.get(int(user_id), 0) + 1
    return ended

"""Ending a staff user's console sessions at once (R-62: lost role, membership or grant).

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
from django.utils import timezone


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

"""Each staff user's console language and time zone (issue 6: multilingual desks)."""

from __future__ import annotations

import functools
import zoneinfo

from django.conf import settings
from django.db import transaction

from audit.context import Actor
from audit.services import record

from .exceptions import InvalidInput
from .models import User


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (the choices offered in the console)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The zone for a stored name; UTC if the name is no longer known on this machine."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def user_preferences_update(*, actor: User, language: str, time_zone: str) -> User:
    """Store the actor's own language and time zone ("" for browser language / UTC)."""
    if language and language not in dict(settings.LANGUAGES):
        raise InvalidInput("That language is not offered.", code="preferences.language_unknown")
    if time_zone and time_zone not in time_zone_names():
        raise InvalidInput(
            "That time zone is not known; pick one from the list.",
            code="preferences.time_zone_unknown",
        )
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=actor.pk)
        before = {"language": user.language, "time_zone": user.time_zone}
        after = {"language": language, "time_zone": time_zone}
        if before == after:
            return user
        User.objects.filter(pk=user.pk).update(**after)
        record(
            action="user.preferences_changed",
            actor=Actor.for_user(actor, organisation="platform"),
            target=user,
            data={"before": before, "after": after},
        )
    user.language, user.time_zone = language, time_zone
    return user

"""Counting anonymous portal requests (an enrolment link asked for, an IdP sign-in started)
in the shared cache, so a stranger cannot flood an owner's inbox or the sign-in table."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest

RATE_WINDOW_SECONDS = 3600
RATE_PER_ADDRESS = 30  # an office behind one address enrols many people


def over_limit(key: str, limit: int) -> bool:
    """Count one request against `key`; True once the window holds more than `limit`."""
    cache.add(key, 0, timeout=RATE_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=RATE_WINDOW_SECONDS)
        count = 1
    return count > limit


def address_over_limit(request: HttpRequest, what: str) -> bool:
    """`over_limit` per client address (REMOTE_ADDR, which the WSGI server sets from the
    trusted proxy hop) for one kind of anonymous request."""
    address = request.META.get("REMOTE_ADDR", "")[:45]
    return over_limit(f"owner:{what}:ip:{address}", RATE_PER_ADDRESS)

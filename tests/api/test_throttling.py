"""The API's rate-limit counters: atomic under concurrency, one window each, gone after it."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache import caches
from django.test import override_settings

from api.throttling import rate_parse, window_count

THREADS, CALLS = 8, 25


def _counts_from_threads(bucket: str) -> list[int]:
    seen: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def hammer() -> None:
        start.wait()
        for _ in range(CALLS):
            count = window_count(bucket, 60)
            with lock:
                seen.append(count)

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def test_concurrent_requests_each_get_their_own_count_on_redis():
    seen = _counts_from_threads(f"test:{uuid.uuid4().hex}")
    assert sorted(seen) == list(range(1, THREADS * CALLS + 1))


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_concurrent_requests_each_get_their_own_count_in_local_memory():
    seen = _counts_from_threads(f"test:{uuid.uuid4().hex}")
    assert sorted(seen) == list(range(1, THREADS * CALLS + 1))


def test_a_window_counter_expires_just_after_its_window():
    bucket = f"test:{uuid.uuid4().hex}"
    window_count(bucket, 60)
    cache = caches["default"]
    ttl = cache._cache.get_client().ttl(cache.make_and_validate_key(bucket))
    assert 55 <= ttl <= 61


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("1200/min", (1200, 60)), ("5/s", (5, 1)), ("100/hour", (100, 3600)), ("9/day", (9, 86400))],
)
def test_rates_read_as_drf_writes_them(rate, parsed):
    assert rate_parse(rate) == parsed

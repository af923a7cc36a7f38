"""The owner portal's tests: the anonymous-request counters (recovery/owner/throttle.py) live
in this run's Redis database across tests, so each test starts with none."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()

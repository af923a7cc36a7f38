"""Filter fields shared by the API's lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC.

    Python accepts offsets up to ±23:59 and PostgreSQL only up to ±15:59, so every value is
    converted to UTC first: `…T20:00-23:30` finds what it should instead of failing.
    """

    def filter(self, qs: QuerySet, value: datetime | None) -> Any:
        return super().filter(qs, value.astimezone(UTC) if value is not None else value)

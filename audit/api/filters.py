"""Filters of the trail; every value is matched inside the tenant's own chain."""

from __future__ import annotations

import django_filters

from api.filters import UtcDateTimeFilter

from ..context import ActorType
from ..models import AuditEvent
from ..registry import ACTIONS


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.MultipleChoiceFilter(
        choices=[(a, a) for a in sorted(ACTIONS)], distinct=False
    )
    actor_type = django_filters.ChoiceFilter(choices=ActorType.choices)
    actor_id = django_filters.CharFilter(max_length=64)
    target_type = django_filters.CharFilter(max_length=100)
    target_id = django_filters.CharFilter(max_length=64)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    after_seq = django_filters.NumberFilter(field_name="seq", lookup_expr="gt", min_value=0)

    class Meta:
        model = AuditEvent
        fields: list[str] = []


class AlertFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(field_name="data__type", max_length=100)
    target_id = django_filters.CharFilter(max_length=64, label="Case id")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

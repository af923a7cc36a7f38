"""Explicit filters: ids are plain numbers matched inside the tenant's own queryset, so another
tenant's id finds nothing and confirms nothing (no auto-generated foreign-key filters)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from api.filters import UtcDateTimeFilter
from tenants.choices import CaseType, Tier

from ..cases.choices import CaseStatus, Decision, Route
from ..cases.models import Approval, RecoveryCase
from ..models import ProtectedAccount


class CaseFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=CaseStatus.choices, distinct=False)
    tier = django_filters.MultipleChoiceFilter(choices=Tier.choices, distinct=False)
    case_type = django_filters.MultipleChoiceFilter(choices=CaseType.choices, distinct=False)
    queue = django_filters.ChoiceFilter(field_name="route", choices=Route.choices)
    account = django_filters.NumberFilter(field_name="account_id", min_value=1)
    opened_by = django_filters.NumberFilter(
        field_name="opened_by_id", min_value=1, label="Id of the user who opened the case"
    )
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = UtcDateTimeFilter(field_name="updated_at", lookup_expr="lt")
    q = django_filters.CharFilter(
        method="search", max_length=200, label="Account username, name or external id contains"
    )

    class Meta:
        model = RecoveryCase
        fields: list[str] = []

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(account__username__icontains=value)
            | Q(account__display_name__icontains=value)
            | Q(account__external_id__icontains=value)
        )


class AccountFilter(django_filters.FilterSet):
    tier = django_filters.MultipleChoiceFilter(choices=Tier.choices, distinct=False)
    external_id = django_filters.CharFilter(max_length=200)
    q = django_filters.CharFilter(
        method="search", max_length=200, label="Username, name or external id contains"
    )

    class Meta:
        model = ProtectedAccount
        fields: list[str] = []

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(username__icontains=value)
            | Q(display_name__icontains=value)
            | Q(external_id__icontains=value)
        )


class ApprovalFilter(django_filters.FilterSet):
    case = django_filters.NumberFilter(field_name="case_id", min_value=1)
    decision = django_filters.ChoiceFilter(choices=Decision.choices)
    live = django_filters.BooleanFilter(
        field_name="invalidated_at", lookup_expr="isnull", label="Not voided by a later change"
    )

    class Meta:
        model = Approval
        fields: list[str] = []

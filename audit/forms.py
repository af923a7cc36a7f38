"""Console forms of the audit area: the trail's filters (the API's FilterSet, extended) and the
page cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext_lazy as _

from .api.filters import AuditEventFilter
from .registry import ACTIONS

# The console's filters in the order the form shows them (the API's `after_seq` is left out:
# the console pages with its own cursor).
FIELD_ORDER = (
    "action_prefix",
    "action",
    "actor",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "since",
    "until",
)
LABELS = {
    "action": _("Actions"),
    "actor_type": _("Actor type"),
    "actor_id": _("Actor id"),
    "target_type": _("Target type"),
    "target_id": _("Target id"),
    "since": _("From"),
    "until": _("Until (not included)"),
}


def _action_families() -> list[tuple[str, str]]:
    """`case.`, `approval.` …: the first part of every registered action."""
    families = sorted({action.split(".", 1)[0] + "." for action in ACTIONS})
    return [(family, family) for family in families]


class AuditTrailFilter(AuditEventFilter):
    """The API's trail filters plus an action family and an actor name, laid out for a form.

    Instants without an offset (the browser's `datetime-local`) are read in the user's time
    zone, which the console activates for each request.
    """

    action_prefix = django_filters.ChoiceFilter(
        field_name="action",
        lookup_expr="startswith",
        choices=_action_families(),
        label=_("Action family"),
    )
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="icontains", max_length=200, label=_("Actor name")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: self.filters[name] for name in FIELD_ORDER}
        for name, label in LABELS.items():
            self.filters[name].label = label
        for name in ("since", "until"):
            self.filters[name].extra["widget"] = forms.DateTimeInput(
                attrs={"type": "datetime-local", "step": "1"}
            )
        self.filters["action"].extra["widget"] = forms.SelectMultiple(attrs={"size": "4"})
        for name in ("action_prefix", "actor_type"):
            self.filters[name].extra["empty_label"] = _("Any")

    def params(self) -> dict[str, str | list[str]]:
        """The valid filters as query values (instants in UTC), to store and apply again later."""
        values: dict[str, str | list[str]] = {}
        for name, value in self.form.cleaned_data.items():
            if value in (None, "", []):
                continue
            if isinstance(value, list):
                values[name] = [str(item) for item in value]
            elif isinstance(value, datetime):
                values[name] = value.astimezone(UTC).isoformat()
            else:
                values[name] = str(value)
        return values

    @classmethod
    def from_params(cls, params: dict[str, str | list[str]], **kwargs: Any) -> AuditTrailFilter:
        """The filterset `params()` describes, bound again (as the export job does)."""
        data = MultiValueDict(
            {name: value if isinstance(value, list) else [value] for name, value in params.items()}
        )
        return cls(data, **kwargs)


class CursorForm(forms.Form):
    """Where a page of the trail starts: after (`newer_than`) or before (`older_than`) a seq."""

    older_than = forms.IntegerField(min_value=1, required=False)
    newer_than = forms.IntegerField(min_value=0, required=False)

    def cursor(self) -> dict[str, int]:
        """The valid cursor values; a malformed cursor counts as none (the first page)."""
        if not self.is_valid():
            return {}
        return {name: value for name, value in self.cleaned_data.items() if value is not None}

"""Console form of the detection simulation: how many days of cases to replay, and thresholds to
use instead of the policy's (each checked against its platform floor, as the command checks it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from tenants.exceptions import InvalidInput

from ..policy.forms import DEFAULT_DAYS, MAX_DAYS, MIN_DAYS
from .simulate import THRESHOLDS, thresholds_checked

THRESHOLD_LABELS = {
    "repeat_case_window_seconds": _("Repeat case window (seconds)"),
    "repeat_after_denial_window_seconds": _("Window after a denied case (seconds)"),
    "push_denial_lookback_seconds": _("Push-denial lookback (seconds)"),
    "caller_reuse_window_seconds": _("Caller reuse window (seconds)"),
    "caller_reuse_subjects": _("Caller reuse: subjects"),
}


class DetectionSimulateForm(forms.Form):
    days = forms.IntegerField(
        label=_("Days of past cases to replay"),
        min_value=MIN_DAYS,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        required=False,
        help_text=_("The simulation runs in the background; the page stays usable."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in THRESHOLDS:
            self.fields[name] = forms.IntegerField(
                label=THRESHOLD_LABELS[name],
                required=False,
                help_text=_("Empty: the policy's value for each case."),
            )

    def clean_days(self) -> int:
        days = self.cleaned_data["days"]
        return DEFAULT_DAYS if days is None else days

    def clean(self) -> dict[str, Any]:
        """Each threshold given is checked as the simulation checks it, its refusal shown on
        its own field."""
        cleaned = super().clean()
        for name in THRESHOLDS:
            if cleaned.get(name) is None:
                continue
            try:
                thresholds_checked({name: cleaned[name]})
            except InvalidInput as refused:
                self.add_error(name, f"{refused.message} ({refused.code})")
        return cleaned

    def overrides(self) -> dict[str, int]:
        """The thresholds given (a valid form's)."""
        return {
            name: self.cleaned_data[name]
            for name in THRESHOLDS
            if self.cleaned_data.get(name) is not None
        }

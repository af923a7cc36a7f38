"""Console forms of the review pages: one decision (approve or deny) on one case."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _


class OneTimeCodeInput(forms.TextInput):
    """A text input for a one-time code that never echoes a submitted code back."""

    def format_value(self, value: Any) -> str | None:
        return None


class DecisionForm(forms.Form):
    """A written reason and a fresh authenticator code (step-up) for one decision."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        help_text=_("Recorded with your decision in the audit trail."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    token = forms.CharField(
        label=_("Fresh authenticator code"),
        max_length=8,
        help_text=_("A new 6-digit code from your authenticator app; each code is used once."),
        widget=OneTimeCodeInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

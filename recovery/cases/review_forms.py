"""Console forms of the review pages: one decision (approve or deny) on one case, and how an
alert ends."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..detection.choices import AlertStatus


class OneTimeCodeInput(forms.TextInput):
    """A text input for a one-time code that never echoes a submitted code back."""

    def format_value(self, value: Any) -> str | None:
        return None


# A WebAuthn `get()` answer is a few kilobytes; anything much larger is not one.
STEP_UP_ASSERTION_MAX = 64 * 1024


def step_up_assertion_field() -> forms.CharField:
    """The hidden field static/staff/passkey.js fills with the passkey's answer (JSON)."""
    return forms.CharField(
        required=False,
        max_length=STEP_UP_ASSERTION_MAX,
        widget=forms.HiddenInput(attrs={"data-step-up-assertion": ""}),
    )


class DecisionForm(forms.Form):
    """A written reason and a fresh step-up for one decision: the passkey's answer over a
    challenge bound to the case (required at T2), or an authenticator code where the policy
    accepts one."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        help_text=_("Recorded with your decision in the audit trail."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    token = forms.CharField(
        label=_("Or a fresh authenticator code"),
        max_length=8,
        required=False,
        help_text=_(
            "Only where the policy accepts one (never for T2): a new 6-digit code from your "
            "authenticator app; each code is used once."
        ),
        widget=OneTimeCodeInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    step_up_assertion = step_up_assertion_field()


class AlertResolveForm(forms.Form):
    """How an alert ends, and why (`recovery.detection.alerts.alert_resolve`)."""

    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[
            (AlertStatus.RESOLVED, _("Resolved")),
            (AlertStatus.FALSE_POSITIVE, _("False positive")),
        ],
    )
    reason = forms.CharField(label=_("What was done or found"), min_length=10, max_length=300)

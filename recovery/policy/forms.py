"""Console forms of the policy pages: the document and a replay window, two versions to compare.

Bounds are the API's (`recovery/api/serializers.py`: PolicyTextInput, PolicySimulateInput), so a
request the console accepts is one the API would accept too.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

MAX_SOURCE_CHARS = 200_000
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 30


class PolicyEditorForm(forms.Form):
    """The policy document as typed (YAML or JSON; whitespace kept, so lines do not move) and,
    for a simulation, how many days of past cases to replay under it."""

    text = forms.CharField(
        label=_("Policy document (YAML)"),
        max_length=MAX_SOURCE_CHARS,
        strip=False,
        help_text=_("Validate checks the syntax, the schema and every platform floor."),
        widget=forms.Textarea(
            attrs={"class": "code", "rows": 30, "spellcheck": "false", "autocapitalize": "off"}
        ),
    )

    days = forms.IntegerField(
        label=_("Days of past cases to replay"),
        min_value=MIN_DAYS,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        required=False,
        help_text=_("The simulation runs in the background; the page stays usable."),
    )

    def clean_text(self) -> str:
        """The text as typed: browsers send a textarea's line breaks as CRLF."""
        return self.cleaned_data["text"].replace("\r\n", "\n")

    def clean_days(self) -> int:
        """Left empty, the window is the API's default."""
        days = self.cleaned_data["days"]
        return DEFAULT_DAYS if days is None else days


class DiffForm(forms.Form):
    """Two versions to compare by id; 0 stands for the platform default policy."""

    old = forms.IntegerField(label=_("From version"), min_value=0, required=False)
    new = forms.IntegerField(label=_("To version"), min_value=0, required=False)

"""What the agent's case page shows of the owner's signals, and its form.

Reads only: whether the owner saved codes (and how many wrong ones the case has had), how many
passkeys could confirm, and the latest in-app confirmation with the number to read out. The
POSTs are in `case_views`; the services decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..cases.forms import CaseForm
from ..cases.models import RecoveryCase
from ..policy.rules import Requirements
from .choices import ConfirmationStatus
from .confirmation import confirmation_latest, eligible_passkeys
from .models import OwnerConfirmation, RecoveryCodeSet
from .signals import CODE_INPUT_MAX, case_code_set, code_attempt_limit, codes_wrong_count


class RecoveryCodeForm(CaseForm):
    """The saved recovery code the caller reads out, typed by the agent."""

    prefix = "recovery-code"

    code = forms.CharField(
        label=_("Saved recovery code the caller reads out"),
        max_length=CODE_INPUT_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


@dataclass(frozen=True)
class ConfirmationView:
    """The latest confirmation request as the agent sees it (status by database time)."""

    confirmation: OwnerConfirmation
    status: str
    status_label: str

    @property
    def open(self) -> bool:
        return self.status == ConfirmationStatus.OPEN

    @property
    def number(self) -> str:
        return self.confirmation.number if self.open else ""


def confirmation_view(case: RecoveryCase) -> ConfirmationView | None:
    confirmation = confirmation_latest(case)
    if confirmation is None:
        return None
    status = confirmation.status
    if status == ConfirmationStatus.OPEN and confirmation.expired:
        status = ConfirmationStatus.EXPIRED
    return ConfirmationView(confirmation, status, str(ConfirmationStatus(status).label))


@dataclass(frozen=True)
class SavedCodes:
    code_set: RecoveryCodeSet | None
    wrong: int
    limit: int

    @property
    def locked(self) -> bool:
        return self.wrong >= self.limit


def owner_signals_context(
    case: RecoveryCase, req: Requirements, bound: dict[str, forms.Form]
) -> dict[str, Any]:
    """The case page's context for the saved-code and in-app confirmation actions."""
    prefix = RecoveryCodeForm.prefix
    return {
        "recovery_code_form": bound[prefix] if prefix in bound else RecoveryCodeForm(case=case),
        "saved_codes": SavedCodes(
            case_code_set(case), codes_wrong_count(case), code_attempt_limit(req)
        ),
        "confirm_passkeys": len(eligible_passkeys(case, req)),
        "confirmation": confirmation_view(case),
        "now": timezone.now(),
    }

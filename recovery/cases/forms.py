"""Console forms for the agent workspace and the case page.

They check the shape of what an agent sends; the services decide. No form has a field for a
phone number, an address, a code destination or a password: contacts are picked by id from the
account's own records, and codes go only where the system of record says (R-03, R-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tenants.choices import CaseType
from tenants.models import Tenant

from ..challenges.services import CHANNEL_OF_KIND
from ..choices import PHONE_KINDS
from ..models import ContactMethod
from .choices import Channel, SignalClass
from .models import Evidence, RecoveryCase

# An agent is talking to someone: every channel but the API's.
AGENT_CHANNELS = [(value, label) for value, label in Channel.choices if value != Channel.API]


@dataclass(frozen=True)
class EvidenceMethod:
    """One kind of check an agent can record by hand, and the signal class it stands for."""

    signal_class: str
    label: Promise
    needs_contact: bool = False


# S2 codes and S3 attestations have their own buttons (challenges); these are the rest.
EVIDENCE_METHODS: dict[str, EvidenceMethod] = {
    "recovery_code": EvidenceMethod(SignalClass.S1, _("Saved recovery code checked (S1)")),
    "callback_on_file": EvidenceMethod(
        SignalClass.S2, _("Callback to a contact on record (S2)"), needs_contact=True
    ),
    "identity_proofing": EvidenceMethod(
        SignalClass.S4, _("Repeated identity proofing against the enrolment record (S4)")
    ),
    "authenticator_push": EvidenceMethod(
        SignalClass.S5, _("Sign-in with an authenticator still bound to the account (S5)")
    ),
    "knowledge_answer": EvidenceMethod(
        SignalClass.CONTEXT, _("Knowledge answer (kept as context, never evidence)")
    ),
}


def contacts_on_record(tenant: Tenant) -> QuerySet[ContactMethod]:
    """The tenant's contact methods as the system of record holds them now (none replaced)."""
    return (
        ContactMethod.objects.for_tenant(tenant)
        .filter(replaced_at__isnull=True)
        .order_by("kind", "id")
    )


def current_contacts(case: RecoveryCase) -> QuerySet[ContactMethod]:
    """The contact methods on record now for the case's account."""
    return contacts_on_record(case.tenant).filter(account_id=case.account_id)


class ContactChoiceField(forms.ModelChoiceField):
    """A contact on record, shown by its kind and masked hint only (R-14)."""

    def label_from_instance(self, obj: ContactMethod) -> str:
        return f"{obj.get_kind_display()} {obj.masked}"


class EvidenceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Evidence) -> str:
        return f"{obj.signal_class} {obj.method} ({obj.get_result_display()})"


class AccountSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Find an account"),
        required=False,
        max_length=200,
        help_text=_("Part of the name, username or external id."),
    )


class CaseOpenForm(forms.Form):
    """Open a case on one account; the case types offered are those the actor may work."""

    prefix = "open"

    case_type = forms.ChoiceField(label=_("Case type"))
    channel = forms.ChoiceField(
        label=_("How the caller reached you"), choices=AGENT_CHANNELS, initial=Channel.PHONE
    )
    claimant_statement = forms.CharField(
        label=_("What the caller says"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Kept on the case as untrusted context; it never counts as evidence."),
    )
    justification = forms.CharField(
        label=_("Justification (exception requests only)"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the standard path cannot be used: at least 30 characters."),
    )

    def __init__(self, *args: Any, case_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(CaseType.choices)
        self.fields["case_type"].choices = [(value, labels[value]) for value in case_types]


class CaseForm(forms.Form):
    """A form posted on the case page; `case` narrows its choices to the case's own rows."""

    def __init__(self, *args: Any, case: RecoveryCase, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.case = case


class EvidenceForm(CaseForm):
    prefix = "evidence"

    method = forms.ChoiceField(
        label=_("What you checked"),
        choices=[(key, method.label) for key, method in EVIDENCE_METHODS.items()],
    )
    contact_method = ContactChoiceField(
        label=_("Contact on record you called back"),
        queryset=ContactMethod.objects.none(),
        required=False,
        empty_label=_("(not a callback)"),
    )
    verified = forms.TypedChoiceField(
        label=_("Result"),
        choices=[("yes", _("Confirmed")), ("no", _("Failed"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, case: RecoveryCase, **kwargs: Any) -> None:
        super().__init__(*args, case=case, **kwargs)
        field = self.fields["contact_method"]
        field.queryset = current_contacts(case).filter(kind__in=PHONE_KINDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        method = EVIDENCE_METHODS.get(data.get("method", ""))
        if method and method.needs_contact and not data.get("contact_method"):
            self.add_error("contact_method", _("Pick the contact on record you called back."))
        if method and not method.needs_contact:
            data["contact_method"] = None  # only a callback names a contact
        return data


class ChallengeSendForm(CaseForm):
    """Which contact on record gets a one-time code: one button per contact, by id."""

    prefix = "send"

    contact_method = ContactChoiceField(
        label=_("Contact on record"), queryset=ContactMethod.objects.none()
    )

    def __init__(self, *args: Any, case: RecoveryCase, **kwargs: Any) -> None:
        super().__init__(*args, case=case, **kwargs)
        field = self.fields["contact_method"]
        field.queryset = current_contacts(case).filter(kind__in=list(CHANNEL_OF_KIND))


class ChallengeVerifyForm(forms.Form):
    code = forms.CharField(
        label=_("Code the owner reads back"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def verify_prefix(challenge_pk: int) -> str:
    """One code box per open challenge: each has its own field names."""
    return f"challenge-{challenge_pk}"


class AttachmentForm(CaseForm):
    prefix = "attachment"

    file = forms.FileField(label=_("File"), help_text=_("PNG, JPEG, PDF or plain text."))
    evidence = EvidenceChoiceField(
        label=_("Evidence it supports (optional)"),
        queryset=Evidence.objects.none(),
        required=False,
    )

    def __init__(self, *args: Any, case: RecoveryCase, **kwargs: Any) -> None:
        super().__init__(*args, case=case, **kwargs)
        field = self.fields["evidence"]
        field.queryset = Evidence.objects.for_tenant(case.tenant).filter(case=case).order_by("pk")


class NoteForm(CaseForm):
    prefix = "note"

    text = forms.CharField(
        label=_("Note"),
        max_length=10_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Anything that looks like a secret is masked before the note is stored."),
    )


class EndCaseForm(CaseForm):
    """Cancel an open case, or close an executed one: both need a written reason."""

    prefix = "end"

    reason = forms.CharField(
        label=_("Reason"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class ManualStepForm(CaseForm):
    prefix = "manual"

    path = forms.CharField(
        label=_("The exact path you followed"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Menu by menu, as you did it in the other console."),
    )

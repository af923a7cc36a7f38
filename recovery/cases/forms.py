"""Console forms for the agent workspace and the case page.

They check the shape of what an agent sends; the services decide. No form has a field for a
phone number, an address, a code destination or a password: contacts are picked by id from the
account's own records, and codes go only where the system of record says (R-03, R-10).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from tenants.choices import CaseType
from tenants.models import Tenant

from ..challenges.services import CHANNEL_OF_KIND
from ..detection.choices import CallerKind
from ..models import ContactMethod, ProtectedAccount
from ..proofing.choices import AttendedMode
from .choices import Channel
from .models import Evidence, RecoveryCase
from .review_forms import step_up_assertion_field
from .services import CONTEXT_STATEMENT_MAX, CONTEXT_TOPIC_MAX

# A containment step's id, "<operation>:<target>": the target is a provider's id or a username.
CONTAINMENT_STEP_ID_MAX = 1000
# An agent is talking to someone: every channel but the API's.
AGENT_CHANNELS = [(value, label) for value, label in Channel.choices if value != Channel.API]


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
    mailbox = forms.ModelChoiceField(
        label=_("Shared mailbox (mailbox access only)"),
        queryset=ProtectedAccount.objects.none(),
        required=False,
        help_text=_(
            "The shared or functional mailbox this person needs; its registered owner approves "
            "in their own sign-in, and a supervisor approves the case."
        ),
    )
    delegation_hours = forms.IntegerField(
        label=_("For how many hours (mailbox access only)"),
        required=False,
        min_value=1,
        help_text=_("Empty for the policy's default; never more than the policy's maximum."),
    )
    regrant_hours = forms.IntegerField(
        label=_("Grant the roles back for how many hours (privileged role restore only)"),
        required=False,
        min_value=1,
        help_text=_(
            "Empty for the policy's maximum; the roles are removed again when the time is up "
            "and another restore case is needed."
        ),
    )

    caller_number = forms.CharField(
        label=_("Number the call came from"), required=False, max_length=64
    )
    caller_email = forms.CharField(
        label=_("Address the email came from"), required=False, max_length=254
    )
    caller_chat = forms.CharField(label=_("Chat handle"), required=False, max_length=200)
    caller_name = forms.CharField(
        label=_("Name the caller gave"),
        required=False,
        max_length=200,
        help_text=_(
            "How the contact reached you. Kept only as a keyed hash and a masked hint to spot "
            "one caller working through several accounts; never used to send anything."
        ),
    )

    def __init__(
        self,
        *args: Any,
        case_types: list[str],
        mailboxes: QuerySet[ProtectedAccount] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(CaseType.choices)
        self.fields["case_type"].choices = [(value, labels[value]) for value in case_types]
        if mailboxes is None or CaseType.MAILBOX_ACCESS not in case_types:
            del self.fields["mailbox"], self.fields["delegation_hours"]
        else:
            self.fields["mailbox"].queryset = mailboxes
        if CaseType.PRIVILEGED_ROLE_RESTORE not in case_types:
            del self.fields["regrant_hours"]

    def clean(self) -> dict[str, Any]:
        """`case_open`'s arguments: the mailbox as an account, the lengths in seconds."""
        data = super().clean() or {}
        if "delegation_hours" in self.fields:
            hours = data.pop("delegation_hours", None)
            data["delegation_seconds"] = hours * 3600 if hours else None
        if "regrant_hours" in self.fields:
            hours = data.pop("regrant_hours", None)
            data["regrant_seconds"] = hours * 3600 if hours else None
        data["caller"] = {kind: data.pop(f"caller_{kind}", "") for kind in CallerKind.values}
        return data


class CaseForm(forms.Form):
    """A form posted on the case page; `case` narrows its choices to the case's own rows."""

    def __init__(self, *args: Any, case: RecoveryCase, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.case = case


class ContextForm(CaseForm):
    """A fact the caller gave, kept on the case as context: it never counts as evidence."""

    prefix = "context"

    topic = forms.CharField(
        label=_("What it is about"),
        max_length=CONTEXT_TOPIC_MAX,
        help_text=_("A few words, such as “last office visited” or “ticket”."),
    )
    statement = forms.CharField(
        label=_("What the caller said"),
        max_length=CONTEXT_STATEMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "Kept as context and never counted, whatever it says. Anything that looks like a "
            "secret is masked before it is stored."
        ),
    )


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


class SuspiciousCallerForm(CaseForm):
    """The "suspicious contact" button (R-56): why the caller's identifiers go on the
    tenant's watch-list."""

    prefix = "suspicious"

    reason = forms.CharField(
        label=_("What was suspicious"),
        min_length=10,
        max_length=300,
        help_text=_(
            "The number, address, handle and name this case was opened with go on the watch-list: "
            "a later case with any of them is raised one tier and alerts the security queue."
        ),
    )


class EndCaseForm(CaseForm):
    """Cancel an open case, or close an executed one: both need a written reason."""

    prefix = "end"

    reason = forms.CharField(
        label=_("Reason"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class ExecuteForm(CaseForm):
    """Execute a ready case: the executor confirms with their passkey, over a challenge bound to
    this execution of the case as it stands (static/staff/passkey.js fills the answer in)."""

    prefix = "execute"

    step_up_assertion = step_up_assertion_field()


class ContainmentStepForm(CaseForm):
    """Record a pending containment step (its id, a hidden field of the step's own form) as
    done in the directory's console. Like executing, it takes the person's passkey over a
    challenge issued for "execute" on the case as it stands (static/staff/passkey.js fills
    the answer in)."""

    prefix = "containment"

    step = forms.CharField(max_length=CONTAINMENT_STEP_ID_MAX, widget=forms.HiddenInput)
    step_up_assertion = step_up_assertion_field()


class ManualStepForm(CaseForm):
    prefix = "manual"

    path = forms.CharField(
        label=_("The exact path you followed"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Menu by menu, as you did it in the other console."),
    )


# --- attended sessions (S4 by a trusted referee) --------------------------------------------


class AttendedStartForm(CaseForm):
    """A trusted referee starts an attended session; the server draws the live challenge."""

    prefix = "attended"

    mode = forms.ChoiceField(
        label=_("How you see the person"),
        choices=AttendedMode.choices,
        initial=AttendedMode.REMOTE_VIDEO,
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label=_("Why the attended path is used for this case"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Kept with the session record (R-09)."),
    )


class CoercionForm(forms.Form):
    """The mandatory question of every attended session (R-07), answered before it can go on."""

    prefix = "coercion"

    observed = forms.TypedChoiceField(
        label=_("Did you observe signs of coercion, manipulation or social engineering?"),
        choices=[("no", _("No")), ("yes", _("Yes"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label=_("What you observed"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required when you answer yes: the session then ends and nothing counts."),
    )


# What a referee typically sees and does; anything else goes in the "other" boxes, one a line.
DOCUMENTS = [
    ("passport", _("Passport")),
    ("national_id_card", _("National identity card")),
    ("driving_licence", _("Driving licence")),
    ("residence_permit", _("Residence permit")),
    ("employee_badge", _("Employee badge with photo")),
]
STEPS = [
    ("document_inspected", _("Inspected the document's security features")),
    ("face_matched_document", _("Compared the person's face with the document photo")),
    ("live_challenge_watched", _("Watched the person perform the live challenge")),
    ("name_matched_account", _("Checked that the document names the account holder")),
]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class AttendedCompleteForm(forms.Form):
    """The session record (R-09) and the outcome; the service refuses it until the coercion
    question is answered, and refuses an onsite pass without the biometric comparison."""

    prefix = "complete"

    documents_presented = forms.MultipleChoiceField(
        label=_("Documents presented"),
        choices=DOCUMENTS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    documents_other = forms.CharField(
        label=_("Other documents presented (one a line)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    steps_completed = forms.MultipleChoiceField(
        label=_("Steps completed"),
        choices=STEPS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    steps_other = forms.CharField(
        label=_("Other steps completed (one a line)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    live_challenge_passed = forms.BooleanField(
        label=_("The person performed the live challenge shown above"),
        required=False,
        help_text=_("Leave it unticked if they did not: the session ends and nothing counts."),
    )
    biometric_compared = forms.BooleanField(
        label=_("Onsite only: I compared the person with the enrolment reference (biometric)"),
        required=False,
    )
    outcome_note = forms.CharField(
        label=_("Outcome note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["documents"] = [
            *data.get("documents_presented", []),
            *_lines(data.get("documents_other", "")),
        ]
        data["steps"] = [*data.get("steps_completed", []), *_lines(data.get("steps_other", ""))]
        return data


class FraudFlagForm(forms.Form):
    """One click freezes the case; the reason is filled in already and may be edited."""

    prefix = "fraud"

    reason = forms.CharField(
        label=_("What you observed"),
        max_length=2000,
        initial=_("The referee suspects fraud during the attended session."),
        widget=forms.Textarea(attrs={"rows": 2}),
    )

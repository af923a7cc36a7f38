"""Input and output shapes of the recovery API. Names are unique across the schema."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenants.choices import CaseType

from ..cases.choices import Channel, SignalClass, Verifier
from ..cases.methods import method_get
from ..cases.models import Approval, CaseNote, Evidence, EvidenceAttachment, RecoveryCase
from ..cases.services import CONTEXT_STATEMENT_MAX, CONTEXT_TOPIC_MAX
from ..connectors.choices import ConnectorKind
from ..connectors.models import ConnectorChange, ConnectorChangeStatus, ConnectorConfig
from ..connectors.summary import settings_sha256, settings_summary
from ..delegation.serializers import CaseDelegationOutput
from ..models import ContactMethod, ProtectedAccount
from ..policy.models import PolicyVersion
from .revert_serializers import CaseRevertOutput

CONTEXT_LABEL = _("Context the caller gave (never counted)")


class ContactOutput(serializers.ModelSerializer):
    masked = serializers.CharField(read_only=True, help_text="Hint only, never the value (R-14).")

    class Meta:
        model = ContactMethod
        fields = ["id", "kind", "masked", "source", "registered_at", "sim_changed_at"]


class AccountOutput(serializers.ModelSerializer):
    class Meta:
        model = ProtectedAccount
        fields = [
            "id",
            "external_id",
            "username",
            "display_name",
            "tier",
            "no_helpdesk_reset",
            "proofing_level",
            "source",
            "synced_at",
            "frozen_at",
            "created_at",
        ]


class AccountDetailOutput(AccountOutput):
    contacts = ContactOutput(many=True, read_only=True)

    class Meta(AccountOutput.Meta):
        fields = [*AccountOutput.Meta.fields, "contacts"]


class AccountCaseBrief(serializers.ModelSerializer):
    class Meta:
        model = ProtectedAccount
        fields = ["id", "external_id", "username", "display_name", "tier"]


class CaseOutput(serializers.ModelSerializer):
    account = AccountCaseBrief(read_only=True)

    class Meta:
        model = RecoveryCase
        fields = [
            "id",
            "account",
            "case_type",
            "channel",
            "status",
            "tier",
            "tier_reasons",
            "route",
            "repeat_attempt",
            "policy_version",
            "revision",
            "created_at",
            "updated_at",
            "submitted_at",
            "cooling_off_until",
            "ended_at",
            "end_reason",
        ]


class CaseNeedsOutput(serializers.Serializer):
    accepted_classes = serializers.ListField(child=serializers.CharField())
    classes_missing = serializers.IntegerField()
    evidence_met = serializers.BooleanField()
    approvals = serializers.IntegerField()
    approvals_required = serializers.IntegerField()
    security_officer_approvals = serializers.IntegerField()
    security_officer_approvals_required = serializers.IntegerField()
    tenant_approver_missing = serializers.BooleanField()
    approvals_met = serializers.BooleanField()
    summary = serializers.ListField(child=serializers.CharField())


class TimelineEntryOutput(serializers.Serializer):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor_label = serializers.CharField()
    actor_type = serializers.CharField()
    actor_org = serializers.CharField()
    action = serializers.CharField()
    summary = serializers.CharField()


class TemporaryPassOutput(serializers.Serializer):
    given_at = serializers.DateTimeField(
        help_text="When the provider's one-time pass began, in the owner's recovery session."
    )
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When the provider ends it (null: the provider did not say)."
    )


class ContainmentStepOutput(serializers.Serializer):
    id = serializers.CharField(
        help_text="`<operation>:<target>`: the `step` to send to `containment/record/`."
    )
    operation = serializers.CharField(
        help_text="What to do: `method_remove` (a lost sign-in method), `sessions_revoke` "
        "(every session and refresh token), `revoke_temporary_access` (the one-time pass), "
        "`roles_suspend` / `roles_restore` (standing admin roles, R-19), "
        "`roles_regrant_expire` (a re-grant's time box ended), or `change_undo <kind>` (a "
        "change inside the re-establishment window, R-35). `manual_step` says it in words.",
    )
    target = serializers.CharField(
        help_text="The method's or the pass's id at the provider, or the account's username."
    )
    code = serializers.CharField(
        help_text="Why the connector did not do it, e.g. `connector.capability_missing` or "
        "`entra.forbidden`."
    )
    manual_step = serializers.CharField(
        help_text="What a person does in the directory's own admin console instead."
    )


class CaseContainmentOutput(serializers.Serializer):
    """A cloud recovery's pass (its times, never the pass) and the containment steps a person
    still has to do and record (R-34)."""

    temporary_pass = TemporaryPassOutput(
        allow_null=True, help_text="The pass the owner was given (null: none yet)."
    )
    done_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When containment ran after the owner's new method was verified (null: not "
        "yet). The connector's steps are in the timeline (`containment.step_done`).",
    )
    pending = ContainmentStepOutput(
        many=True,
        help_text="Steps the connector failed or cannot do: the case cannot be closed "
        "(`case.containment_pending`) until each is recorded.",
    )


class CaseDetailOutput(CaseOutput):
    needs = CaseNeedsOutput(read_only=True, help_text="What the policy still needs.")
    timeline = TimelineEntryOutput(many=True, read_only=True)
    containment = CaseContainmentOutput(
        read_only=True,
        allow_null=True,
        help_text="Null unless the case was executed through a connector that gives the owner "
        "a one-time pass (Entra ID, Okta, Google Workspace).",
    )
    revert = CaseRevertOutput(
        read_only=True,
        allow_null=True,
        help_text="Null unless the case is a repudiated recovery whose revert ran (R-37).",
    )
    delegation = CaseDelegationOutput(
        read_only=True,
        allow_null=True,
        help_text="Null unless the case is a mailbox access case: the delegation it asks for.",
    )

    class Meta(CaseOutput.Meta):
        fields = [
            *CaseOutput.Meta.fields,
            "claimant_statement",
            "justification",
            "needs",
            "timeline",
            "containment",
            "revert",
            "delegation",
        ]


class CallerInput(serializers.Serializer):
    """How the contact arrived; kept only as keyed hashes and masked hints, never a channel."""

    number = serializers.CharField(required=False, allow_blank=True, max_length=64)
    email = serializers.CharField(required=False, allow_blank=True, max_length=254)
    chat = serializers.CharField(required=False, allow_blank=True, max_length=200)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class CaseCreateInput(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1)
    case_type = serializers.ChoiceField(choices=CaseType.choices)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)
    claimant_statement = serializers.CharField(
        required=False, allow_blank=True, max_length=5000, default=""
    )
    justification = serializers.CharField(
        required=False, allow_blank=True, max_length=5000, default=""
    )
    mailbox_id = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="mailbox_access only: the shared or functional mailbox the subject (the "
        "requester's own account) asks access to.",
    )
    delegation_hours = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="mailbox_access only: how long the delegation lasts (default and maximum "
        "from the tenant's policy).",
    )
    regrant_hours = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="privileged_role_restore only: how long the suspended roles are granted back "
        "before they are removed again (R-19; default and maximum: the policy's "
        "role_regrant_max_seconds).",
    )
    caller = CallerInput(
        required=False,
        help_text="How the contact arrived (inbound number, email address, chat handle, name "
        "given): detection compares them across cases (R-55 d) and with the watch-list (R-56). "
        "Kept only as keyed hashes and masked hints; never used to send anything.",
    )


class EvidenceOutput(serializers.ModelSerializer):
    verifier = serializers.CharField(
        read_only=True,
        help_text="The code that checked the claim (" + ", ".join(Verifier.values) + "); "
        "empty for context and refusals.",
    )
    verifier_ref = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Id of the verifier's record: the challenge, proofing session or attended "
        "session.",
    )
    method_label = serializers.SerializerMethodField(
        help_text="The method's name in the catalogue, in the request's language."
    )
    topic = serializers.SerializerMethodField(help_text="Context only: what the fact is about.")
    statement = serializers.SerializerMethodField(
        help_text="Context only: what the caller said, with secrets masked."
    )

    class Meta:
        model = Evidence
        fields = [
            "id",
            "signal_class",
            "method",
            "method_label",
            "result",
            "reason_code",
            "verifier",
            "verifier_ref",
            "contact_hint",
            "collected_at",
            "digest",
            "topic",
            "statement",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_method_label(self, evidence: Evidence) -> str:
        if evidence.signal_class == SignalClass.CONTEXT:
            return str(CONTEXT_LABEL)
        method = method_get(evidence.method)
        return str(method.label) if method else ""

    def _context_value(self, evidence: Evidence, key: str) -> str:
        if evidence.signal_class != SignalClass.CONTEXT:
            return ""
        return str((evidence.details or {}).get(key, ""))

    @extend_schema_field(OpenApiTypes.STR)
    def get_topic(self, evidence: Evidence) -> str:
        return self._context_value(evidence, "topic")

    @extend_schema_field(OpenApiTypes.STR)
    def get_statement(self, evidence: Evidence) -> str:
        return self._context_value(evidence, "statement")


class ContextInput(serializers.Serializer):
    """A fact the caller gave, kept as context: it never counts as evidence (R-02)."""

    topic = serializers.CharField(
        max_length=CONTEXT_TOPIC_MAX, help_text="What the fact is about, e.g. `ticket_number`."
    )
    statement = serializers.CharField(
        max_length=CONTEXT_STATEMENT_MAX,
        help_text="What the caller said; secrets in it are masked before storage (R-49).",
    )


STEP_UP_ASSERTION_MAX = 64 * 1024


def _step_up_assertion(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=STEP_UP_ASSERTION_MAX,
        trim_whitespace=True,
        help_text=help_text,
    )


class DecisionInput(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    step_up_assertion = _step_up_assertion(
        "The approver's passkey answer (the PublicKeyCredential as JSON text) to the options "
        "of `step-up/options/?action=approve`: bound to this case as it stands. Required at "
        "T2 and wherever the tenant's policy accepts passkeys only."
    )
    otp = serializers.RegexField(
        r"^\d{6,8}$",
        required=False,
        help_text="A fresh code from the approver's authenticator app, where the policy "
        "accepts one (T0/T1 only).",
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("step_up_assertion") and not attrs.get("otp"):
            raise serializers.ValidationError(
                {"step_up_assertion": ["A fresh step-up: a passkey answer (or an otp)."]}
            )
        return attrs


class ExecuteInput(serializers.Serializer):
    step_up_assertion = _step_up_assertion(
        "The executor's passkey answer (the PublicKeyCredential as JSON text) to the options "
        "of `step-up/options/?action=execute`: required for every execution by a person; API "
        "keys send none (they execute T0 only)."
    )


class StepRecordInput(serializers.Serializer):
    """A tracked step (containment, revert or delegation) a person did by hand."""

    step = serializers.CharField(
        max_length=1000,
        help_text="The id of a pending step of the case (`containment.pending`, "
        "`revert.pending` or `delegation.steps`).",
    )
    step_up_assertion = _step_up_assertion(
        "The passkey answer (the PublicKeyCredential as JSON text) to the options of "
        "`step-up/options/?action=execute`, bound to this case as it stands: recording a step "
        "takes the execution's own step-up. No code is accepted."
    )


class ApprovalOutput(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = Approval
        fields = [
            "id",
            "case",
            "approver",
            "roles",
            "via_grant",
            "decision",
            "reason",
            "snapshot_hash",
            "created_at",
            "invalidated_at",
            "invalidated_reason",
        ]


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class NoteInput(serializers.Serializer):
    text = serializers.CharField(max_length=10000, trim_whitespace=False)


class SummaryInput(NoteInput):
    model_id = serializers.CharField(max_length=200)
    model_version = serializers.CharField(max_length=100)
    prompt_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    retrieved_document_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False, default=list
    )


class NoteOutput(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = CaseNote
        fields = ["id", "author", "text", "secrets_masked", "flagged", "advisory", "created_at"]


class AttachmentInput(serializers.Serializer):
    file = serializers.FileField()
    evidence_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class AttachmentOutput(serializers.ModelSerializer):
    class Meta:
        model = EvidenceAttachment
        fields = [
            "id",
            "evidence",
            "original_name",
            "content_type",
            "size",
            "sha256",
            "uploaded_at",
        ]


class AccountSyncInput(serializers.Serializer):
    source = serializers.CharField(max_length=100, help_text="The system of record, e.g. hris.")
    accounts = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=1000,
        help_text="Account objects as in the JSON import format; each carries all its contacts.",
    )


class AccountSyncOutput(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    contacts_added = serializers.IntegerField()
    contacts_replaced = serializers.IntegerField()


class PolicyVersionOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "number",
            "format",
            "sha256",
            "status",
            "created_by",
            "created_at",
            "requested_at",
            "activated_at",
            "superseded_at",
        ]


class PolicyVersionDetailOutput(PolicyVersionOutput):
    class Meta(PolicyVersionOutput.Meta):
        fields = [*PolicyVersionOutput.Meta.fields, "source"]


class PolicyCurrentOutput(serializers.Serializer):
    number = serializers.IntegerField(help_text="0 means the platform default.")
    sha256 = serializers.CharField()
    source = serializers.CharField()


class PolicyTextInput(serializers.Serializer):
    text = serializers.CharField(max_length=200_000, trim_whitespace=False)


class PolicyValidOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    sha256 = serializers.CharField()


class PolicySimulateInput(PolicyTextInput):
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)


class ManualStepInput(serializers.Serializer):
    path = serializers.CharField(
        max_length=2000, help_text="The exact path you followed in the other console."
    )


# --- the tenant's connector (recovery/api/connectors.py) ------------------------------------

SUMMARY_HELP = (
    "Every setting as it may be shown: plain values, a URL as {origin, sha256} (never its "
    "path), a setting without a declared rule as {sha256}. Never a secret: settings name the "
    "environment variables or files that hold them."
)


@extend_schema_field(OpenApiTypes.OBJECT)
class SettingsSummaryField(serializers.Field):
    """A configuration's `settings_summary`, computed from the object's kind and settings."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, help_text=SUMMARY_HELP, **kwargs)

    def to_representation(self, value):
        return settings_summary(value.kind, value.settings)


@extend_schema_field(OpenApiTypes.STR)
class SettingsSha256Field(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value):
        return settings_sha256(value.settings)


class ConnectorConfigOutput(serializers.ModelSerializer):
    settings_summary = SettingsSummaryField()
    settings_sha256 = SettingsSha256Field()
    updated_by = serializers.CharField(source="updated_by.username", read_only=True)

    class Meta:
        model = ConnectorConfig
        fields = [
            "kind",
            "is_active",
            "settings_summary",
            "settings_sha256",
            "updated_by",
            "updated_at",
        ]


class ConnectorChangeOutput(serializers.ModelSerializer):
    settings_summary = SettingsSummaryField()
    settings_sha256 = SettingsSha256Field()
    status = serializers.CharField(read_only=True, help_text=", ".join(ConnectorChangeStatus))
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = ConnectorChange
        fields = [
            "id",
            "kind",
            "is_active",
            "status",
            "settings_summary",
            "settings_sha256",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "reason",
        ]


class ConnectorDiffRowOutput(serializers.Serializer):
    setting = serializers.CharField(help_text="A setting's name, or kind / is_active.")
    current = serializers.JSONField(allow_null=True, help_text="As settings_summary shows it.")
    proposed = serializers.JSONField(allow_null=True)
    changed = serializers.BooleanField()


class ConnectorStateOutput(serializers.Serializer):
    current = ConnectorConfigOutput(allow_null=True, help_text="None: the manual connector.")
    pending = ConnectorChangeOutput(
        allow_null=True, help_text="The change waiting for a second tenant admin."
    )
    diff = ConnectorDiffRowOutput(
        many=True, help_text="The pending change beside the configuration in force."
    )


class ConnectorChangeInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ConnectorKind.choices)
    settings = serializers.DictField(
        default=dict,
        help_text="The kind's settings (see docs/operations.md); defaults fill in what is "
        "left out. Secrets are named by environment variable or file, never given.",
    )
    is_active = serializers.BooleanField(default=True)


class ConnectorRejectInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why, for the requester.")


class ConnectorWithdrawInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ConnectorTestInput(serializers.Serializer):
    change = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="A pending change to test; left out, the configuration in force is tested.",
    )


class ConnectorTestOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()
    configuration = serializers.CharField(help_text="What was tested: active or pending.")
    change = serializers.IntegerField(allow_null=True)

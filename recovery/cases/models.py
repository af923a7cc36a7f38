"""Recovery cases, their evidence and their approvals."""

import uuid

import pgtrigger
from auditlog.receivers import log_create
from auditlog.registry import auditlog
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.signals import post_save

from tenants.choices import CaseType, Tier
from tenants.querysets import TenantOwnedManager

from ..connectors.cloud import ChangeKind
from .choices import (
    COUNTING_VERIFIERS,
    CaseStatus,
    ChangeOutcome,
    ChangeSource,
    Channel,
    Decision,
    EvidenceResult,
    Route,
    SignalClass,
    Verifier,
)
from .querysets import RecoveryCaseManager


class RecoveryCase(models.Model):
    """One request to restore access to one protected account; moves only through services."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="cases"
    )
    case_type = models.CharField(max_length=32, choices=CaseType.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    claimant_statement = models.TextField(
        blank=True, help_text="What the caller said: untrusted text, never evidence."
    )
    justification = models.TextField(
        blank=True, help_text="Why an exception is requested (exception cases only, R-24)."
    )
    status = models.CharField(
        max_length=24, choices=CaseStatus.choices, default=CaseStatus.COLLECTING_EVIDENCE
    )
    tier = models.CharField(max_length=2, choices=Tier.choices)
    tier_reasons = models.JSONField(default=list, blank=True)
    route = models.CharField(max_length=16, choices=Route.choices)
    repeat_attempt = models.BooleanField(default=False)
    correlation_id = models.UUIDField(
        default=uuid.uuid4,
        db_index=True,
        help_text="Shared by cases the detection rules link (the same subject or caller).",
    )
    policy_version = models.PositiveIntegerField(help_text="Policy version number decided under.")
    policy_source = models.CharField(max_length=32)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    opened_by_person = models.UUIDField()
    opened_via_provider = models.ForeignKey(
        "tenants.ServiceProvider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The human agent working the case; empty while an AI-drafted case waits "
        "for one (no notice or challenge leaves until then, R-66).",
    )
    taken_at = models.DateTimeField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=1, help_text="Bumped by every change.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    cooling_off_until = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    regrant_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="privileged_role_restore only: how long the suspended roles are granted back "
        "(R-19, within the policy's role_regrant_max_seconds); then removed again.",
    )

    objects = RecoveryCaseManager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "route"], name="case_queue"),
            # the API's newest-first pages: a small tenant in a large database stays fast
            models.Index(fields=["tenant", "-id"], name="case_tenant_newest"),
            models.Index(fields=["account", "created_at"], name="case_account_time"),
            # the approval queue, in its order: a page reads as many pending cases as it shows
            # (plus those the rules skip), however long the tenant's backlog
            models.Index(
                fields=["tenant", "submitted_at", "id"],
                condition=Q(status=CaseStatus.PENDING_APPROVAL),
                name="case_pending_queue",
            ),
        ]
        constraints = [
            # only a role restore is time-boxed, and for at least an hour.
            models.CheckConstraint(
                condition=Q(regrant_seconds__isnull=True)
                | Q(case_type=CaseType.PRIVILEGED_ROLE_RESTORE, regrant_seconds__gte=3600),
                name="case_regrant_only_for_restore",
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.case_type}, {self.status})"


class Evidence(models.Model):
    """One verification signal (or a context fact), accepted or rejected with a reason code."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(RecoveryCase, on_delete=models.PROTECT, related_name="evidence")
    signal_class = models.CharField(max_length=8, choices=SignalClass.choices)
    method = models.CharField(max_length=64)
    result = models.CharField(max_length=16, choices=EvidenceResult.choices)
    reason_code = models.CharField(max_length=64, blank=True)
    contact_method = models.ForeignKey(
        "recovery.ContactMethod",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    contact_hint = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    collected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    collected_at = models.DateTimeField(auto_now_add=True)
    digest = models.CharField(max_length=64, help_text="sha256 of the evidence as recorded.")
    verifier = models.CharField(
        max_length=24,
        choices=Verifier.choices,
        blank=True,
        help_text="The code that checked the claim; empty for context and refusals.",
    )
    verifier_ref = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Id of the verifier's record (challenge, proofing or attended session).",
    )

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            # Nothing counts because someone says so: an accepted row names its verifier.
            models.CheckConstraint(
                condition=~Q(result=EvidenceResult.ACCEPTED)
                | Q(verifier__in=sorted(COUNTING_VERIFIERS), verifier_ref__isnull=False)
                | Q(verifier=Verifier.LEGACY_ASSERTION),
                name="evidence_accepted_has_verifier",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.signal_class} {self.method} {self.result}"


class Approval(models.Model):
    """A decision by an eligible person other than the opener, bound to the case snapshot."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(RecoveryCase, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approver_person = models.UUIDField()
    # Denormalised from the case so the database itself refuses self-approval.
    case_opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    case_opened_by_person = models.UUIDField()
    roles = models.JSONField(help_text="The approver's roles in the tenant at the time.")
    via_grant = models.BooleanField(help_text="The approver acted through an MSP grant.")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.TextField()
    snapshot_hash = models.CharField(max_length=64)
    step_up = models.JSONField(
        help_text="The approver's fresh step-up; a passkey's assertion is kept whole (R-47)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        help_text="After this the approval counts for nothing (policy approval_lifetime_seconds)."
    )
    invalidated_at = models.DateTimeField(null=True, blank=True)
    invalidated_reason = models.CharField(max_length=200, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(approver=F("case_opened_by")), name="approval_not_by_opener"
            ),
            models.CheckConstraint(
                condition=~Q(approver_person=F("case_opened_by_person")),
                name="approval_not_by_opener_person",
            ),
            models.UniqueConstraint(
                fields=["case", "approver_person"],
                condition=Q(invalidated_at__isnull=True),
                name="approval_one_live_per_person",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_id} on case {self.case_id}"


class StepUpChallenge(models.Model):
    """A server-issued WebAuthn challenge binding one step-up to one action on one case as it
    stands: SHA-256(snapshot hash | action | case id | nonce). Lives 120 s, spent once (R-47)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(RecoveryCase, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16)
    snapshot_hash = models.CharField(max_length=64)
    nonce = models.CharField(max_length=64, unique=True)
    challenge = models.CharField(max_length=64, unique=True, help_text="Hex SHA-256.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    spent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        indexes = [models.Index(fields=["user", "spent_at"], name="stepup_challenge_user")]

    def __str__(self) -> str:
        return f"step-up challenge for {self.action} of case {self.case_id} by {self.user_id}"


class EvidenceAttachment(models.Model):
    """A file attached to a case (optionally to one piece of evidence); bytes live on disk."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(RecoveryCase, on_delete=models.PROTECT, related_name="attachments")
    evidence = models.ForeignKey(
        Evidence, null=True, blank=True, on_delete=models.PROTECT, related_name="attachments"
    )
    original_name = models.CharField(
        max_length=200, help_text="The uploader's file name, checked; for display only."
    )
    stored_name = models.CharField(
        max_length=32, unique=True, help_text="Random name of the file in the evidence store."
    )
    content_type = models.CharField(max_length=64, help_text="Sniffed from the bytes.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"attachment {self.pk} ({self.content_type}, {self.size} bytes)"


class CaseNote(models.Model):
    """Free text on a case, stored only after secrets in it were masked (R-49)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(RecoveryCase, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(help_text="As written, with secrets replaced by a mask.")
    secrets_masked = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False, help_text="Something was masked: review it.")
    advisory = models.BooleanField(
        default=False, help_text="An AI assistant's summary: advisory, never a decision (R-65)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"note {self.pk} on case {self.case_id}"


auditlog.register(RecoveryCase, exclude_fields=["claimant_statement"])
# A case's creation is `case.opened` in the hash-chained trail, whose data names what the server
# set at opening; auditlog keeps the field diffs of the case's later changes only.
post_save.disconnect(
    sender=RecoveryCase, dispatch_uid=auditlog._dispatch_uid(post_save, log_create)
)
# Evidence and approvals are written only by services that record each write in the chain
# (`verification.signal_*`, `approval.*`): a field diff would repeat it in an unchained store.
auditlog.register(EvidenceAttachment, exclude_fields=["stored_name"])
# Masking is a heuristic: the note text stays out of the field diffs entirely.
auditlog.register(CaseNote, exclude_fields=["text"])


EXECUTOR_CHECK_SQL = """
SELECT * INTO case_row FROM recovery_recoverycase WHERE id = NEW.case_id;
IF NOT FOUND OR case_row.tenant_id <> NEW.tenant_id THEN
    RAISE EXCEPTION 'execution.case_mismatch: case % is not in tenant %',
        NEW.case_id, NEW.tenant_id USING ERRCODE = 'check_violation';
END IF;
IF EXISTS (
    SELECT 1 FROM recovery_approval a
    WHERE a.case_id = NEW.case_id AND a.invalidated_at IS NULL
      AND a.approver_person = NEW.executed_by_person
) THEN
    RAISE EXCEPTION 'sod.executor_is_approver: an approver of case % cannot execute it',
        NEW.case_id USING ERRCODE = 'check_violation';
END IF;
IF case_row.tier = 'T2' AND case_row.opened_by_person = NEW.executed_by_person THEN
    RAISE EXCEPTION 'sod.executor_is_opener: the opener of T2 case % cannot execute it',
        NEW.case_id USING ERRCODE = 'check_violation';
END IF;
RETURN NEW;
"""


class CaseExecution(models.Model):
    """What a case changed through its tenant's connector, and what it was before (R-37)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.OneToOneField(RecoveryCase, on_delete=models.PROTECT, related_name="execution")
    connector = models.CharField(max_length=16)
    path = models.TextField(help_text="Where the change was made (or the steps to make it).")
    snapshot = models.JSONField(null=True, blank=True, help_text="State before the change.")
    detail = models.JSONField(default=dict, blank=True)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # The executor's natural person, so the database itself refuses an approver.
    executed_by_person = models.UUIDField()
    step_up = models.JSONField(
        null=True,
        blank=True,
        help_text="The executor's fresh passkey step-up for this execution, its assertion whole.",
    )
    executed_at = models.DateTimeField(auto_now_add=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    # A cloud connector's one-time pass, issued into the owner's artifact session:
    # which session, the vendor's pass id, when it started and expires. Never the pass itself.
    temporary_pass = models.JSONField(null=True, blank=True)
    # Containment after the owner bound the new method: when it ran, and every step
    # the connector failed or cannot do, each a manual step until a person records it done.
    containment_done_at = models.DateTimeField(null=True, blank=True)
    containment_steps = models.JSONField(default=list, blank=True)
    # A repudiation's revert (R-37, R-41, recovery.cases.services.repudiation): when it ran
    # through the connector, and every step the connector failed or cannot do (or, under the
    # manual connector, every listed step), each pending until a person records it done.
    revert_ran_at = models.DateTimeField(null=True, blank=True)
    revert_steps = models.JSONField(default=list, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        triggers = [
            # Backs `executor_refusal` (recovery.cases.services.execution): no live approver
            # of the case, and for a T2 case not its opener, carries it out, by any account of
            # that person.
            pgtrigger.Trigger(
                name="executor_not_approver_or_opener",
                operation=pgtrigger.Insert | pgtrigger.UpdateOf("case_id", "executed_by_person"),
                when=pgtrigger.Before,
                declare=[("case_row", "recovery_recoverycase%ROWTYPE")],
                func=EXECUTOR_CHECK_SQL,
            ),
        ]

    def __str__(self) -> str:
        return f"execution of case {self.case_id} via {self.connector}"


# --- the re-establishment window after a recovery (R-35, recovery.cases.services.window) ---


class ReestablishmentWindow(models.Model):
    """An account's window since its last T1/T2 recovery: when it opened, the recovery that
    opened it, and how far the poll has read the connector's change log."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.OneToOneField(
        "recovery.ProtectedAccount", on_delete=models.CASCADE, related_name="+"
    )
    case = models.ForeignKey("recovery.RecoveryCase", on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(
        help_text="The execution that opened it; earlier changes are not the window's."
    )
    polled_until = models.DateTimeField(
        help_text="The connector's changes up to here have been read."
    )
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A poll of this window is running until then."
    )

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"window of account {self.account_id} (case {self.case_id})"


class WindowChange(models.Model):
    """A change reported inside a window (ingested or polled), acted on once: one row per
    account and vendor event id, whichever way it came first."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.CASCADE, related_name="+"
    )
    case = models.ForeignKey("recovery.RecoveryCase", on_delete=models.PROTECT, related_name="+")
    vendor_id = models.CharField(
        max_length=255, help_text="The provider's event id (an ingested event's external id)."
    )
    kind = models.CharField(
        max_length=32, choices=[(kind.value, kind.value) for kind in ChangeKind]
    )
    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    summary = models.CharField(max_length=300, blank=True)
    target = models.JSONField(default=dict, blank=True, help_text="What undoing it needs.")
    ingested_event = models.BigIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(
        max_length=16, choices=ChangeOutcome.choices, default=ChangeOutcome.PENDING
    )
    acted_at = models.DateTimeField(null=True, blank=True)
    answer = models.JSONField(default=dict, blank=True, help_text="The connector's answer.")
    manual_step = models.TextField(blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "vendor_id"], name="window_change_once_per_vendor_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["reported_at"],
                condition=models.Q(outcome="pending"),
                name="window_change_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on account {self.account_id} ({self.outcome})"


# --- standing privileged roles suspended by a T2 recovery (R-19, services/roles.py) ---------


class RoleSuspension(models.Model):
    """The standing admin roles a T2 recovery took from an account, and what grants them back.

    One active suspension per account (`restored_at` empty): a second T2 recovery while it is
    active adds what it took to the same snapshot. A `privileged_role_restore` case closes it.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="+"
    )
    case = models.ForeignKey(
        RecoveryCase,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The T2 recovery that suspended the roles.",
    )
    connector = models.CharField(max_length=16)
    snapshot = models.JSONField(
        null=True,
        blank=True,
        help_text="The connector's snapshot of the roles (what a restore grants back); empty "
        "when the connector could not read them (a person removed them).",
    )
    suspended_at = models.DateTimeField(auto_now_add=True)
    restored_at = models.DateTimeField(null=True, blank=True)
    restore_case = models.ForeignKey(
        RecoveryCase, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # the re-grant is time-boxed. When it ends (`regrant_until`), the expiry sweep removes
    # the roles again through the connector (or leaves a person a tracked step) and the
    # account is suspended again (`regrant_ended_at`, the next suspension `follows` this one).
    regrant_until = models.DateTimeField(
        null=True, blank=True, help_text="When the roles granted back are removed again."
    )
    regrant_ended_at = models.DateTimeField(null=True, blank=True)
    regrant_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="An expiry sweep is removing the roles until then."
    )
    follows = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The suspension whose time-boxed re-grant ended when this one began.",
    )

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(restored_at__isnull=True),
                name="role_suspension_one_active_per_account",
            ),
            # Never granted back for good: a restore carries the end of its time box.
            models.CheckConstraint(
                condition=Q(restored_at__isnull=True) | Q(regrant_until__isnull=False),
                name="role_suspension_regrant_time_boxed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["regrant_until"],
                condition=Q(restored_at__isnull=False, regrant_ended_at__isnull=True),
                name="role_regrant_due",
            ),
        ]

    def __str__(self) -> str:
        state = "restored" if self.restored_at else "active"
        return f"role suspension of account {self.account_id} ({state})"

from django.db import models

from tenants.querysets import TenantOwnedManager

from .choices import UNRESOLVED, AlertStatus, CallerKind


class CallerIdentifier(models.Model):
    """How the contact behind a case arrived (R-55 d, R-56): a keyed hash of the normalised
    value and a masked hint, never the value itself. Data about the caller, never a channel:
    no code, link or notice is ever sent to it (R-04, R-10)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="caller_identifiers"
    )
    kind = models.CharField(max_length=16, choices=CallerKind.choices)
    digest = models.CharField(max_length=64, help_text="HMAC-SHA256 of the normalised value.")
    hint = models.CharField(max_length=64, help_text="Masked, for people to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "kind"], name="caller_identifier_one_per_kind")
        ]
        indexes = [
            models.Index(fields=["tenant", "kind", "digest"], name="caller_identifier_lookup")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.hint}"


class WatchedCaller(models.Model):
    """A caller identifier an agent flagged as suspicious (R-56): a case that opens with it has
    its tier raised by one and an alert raised."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=CallerKind.choices)
    digest = models.CharField(max_length=64)
    hint = models.CharField(max_length=64)
    reason = models.CharField(max_length=300)
    flagged_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    flagged_at = models.DateTimeField()
    case = models.ForeignKey(
        "recovery.RecoveryCase",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The case it was flagged on.",
    )

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "digest"], name="watched_caller_unique"
            )
        ]

    def __str__(self) -> str:
        return f"watched {self.kind} {self.hint}"


class ReviewOpened(models.Model):
    """When an approver who could decide a case first opened its review page (R-26): a decision
    soon after it is `fast_decision`."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("recovery.RecoveryCase", on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    first_opened_at = models.DateTimeField()

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "reviewer"], name="review_opened_once")
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} first reviewed by {self.reviewer_id}"


class Alert(models.Model):
    """An alert as people work it (issue 16 part 4): every `alert.raised` event lands on the
    unresolved alert of the same kind about the same thing (its count grows) or opens a new
    one with a due time (`due_at`, the SLA). A security officer acknowledges it, then resolves
    it or marks it a false positive, with a reason; each step is recorded in the trail."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=64, help_text="The alert's type (the rule that fired).")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    facts = models.JSONField(default=dict, blank=True, help_text="The newest raise's data.")
    count = models.PositiveIntegerField(default=1)
    first_raised_at = models.DateTimeField()
    last_raised_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="Acknowledged by then, or it is overdue.")
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    acknowledged_by = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "target_type", "target_id"],
                condition=models.Q(status__in=["open", "acknowledged"]),
                name="alert_one_unresolved",
            )
        ]
        indexes = [models.Index(fields=["tenant", "status", "due_at"], name="alert_queue")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.target_type}:{self.target_id} ({self.status})"

    @property
    def unresolved(self) -> bool:
        return self.status in UNRESOLVED

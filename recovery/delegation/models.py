"""A time-bound mailbox delegation. Re-exported by `recovery.models`."""

from auditlog.registry import auditlog
from django.db import models
from django.db.models import Q

from tenants.querysets import TenantOwnedManager

from .choices import GRANTED_STATUSES, LIVE_STATUSES, DelegationStatus, OwnerDecision


class MailboxDelegation(models.Model):
    """Access of one account (`delegate`, the subject of its `mailbox_access` case) to one
    shared or functional mailbox, for `lifetime_seconds` from the execution.

    Created with the case; the mailbox's registered owner (from the system of record) decides
    in their own portal session; the execution grants it through the tenant's connector (or
    leaves a tracked manual step); the sweep removes it at `expires_at`. What a person must do
    in the mail system's own console is kept in `steps`, like containment steps.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.OneToOneField(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="delegation"
    )
    mailbox = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="+"
    )
    delegate = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="+"
    )
    owner_external_id = models.CharField(
        max_length=200, help_text="The mailbox's registered owner when it was requested."
    )
    lifetime_seconds = models.PositiveIntegerField(
        help_text="How long it lasts from the execution (within the policy's maximum)."
    )
    status = models.CharField(
        max_length=16, choices=DelegationStatus.choices, default=DelegationStatus.REQUESTED
    )
    owner_decision = models.CharField(
        max_length=8, choices=OwnerDecision.choices, default=OwnerDecision.NONE, blank=True
    )
    owner_decided_at = models.DateTimeField(null=True, blank=True)
    owner_session = models.ForeignKey(
        "recovery.OwnerPortalSession",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The owner's own portal session the decision was made in.",
    )
    owner_proof = models.JSONField(
        default=dict, blank=True, help_text="How that session was authenticated."
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    connector = models.CharField(max_length=32, blank=True)
    granted_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    grant_answer = models.JSONField(default=dict, blank=True, help_text="The connector's answer.")
    removal_answer = models.JSONField(default=dict, blank=True, help_text="The connector's answer.")
    steps = models.JSONField(
        default=list, blank=True, help_text="Manual steps: pending until a person records them."
    )

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            # Nothing counts because someone says so: no grant without the owner's decision,
            # made in a portal session, and an expiry.
            models.CheckConstraint(
                condition=~Q(status__in=sorted(GRANTED_STATUSES))
                | Q(
                    owner_decision=OwnerDecision.APPROVED,
                    owner_session__isnull=False,
                    expires_at__isnull=False,
                ),
                name="delegation_granted_needs_owner",
            ),
            models.CheckConstraint(
                condition=Q(owner_decision=OwnerDecision.NONE) | Q(owner_session__isnull=False),
                name="delegation_owner_decided_in_session",
            ),
            models.CheckConstraint(
                condition=~Q(mailbox=models.F("delegate")), name="delegation_not_to_itself"
            ),
            models.UniqueConstraint(
                fields=["mailbox", "delegate"],
                condition=Q(status__in=sorted(LIVE_STATUSES)),
                name="delegation_one_live_per_pair",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status__in=sorted(LIVE_STATUSES)),
                name="delegation_expiring",
            ),
        ]

    def __str__(self) -> str:
        return f"delegation {self.pk} of mailbox {self.mailbox_id} ({self.status})"


auditlog.register(MailboxDelegation)

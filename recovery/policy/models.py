"""Versions of a tenant's recovery policy. Re-exported by `recovery.models`."""

import pgtrigger
from auditlog.registry import auditlog
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from tenants.querysets import TenantOwnedManager

from .choices import PolicyFormat, PolicyStatus


class PolicyVersion(models.Model):
    """One immutable version of a tenant's policy document and its activation record.

    The source text is what was reviewed; `document` is its parsed form and `sha256` the hash
    of the source. None of them, nor the tenant, number or format, ever changes (a trigger
    refuses it), so a validated version is cached per process by (tenant, number). A version
    becomes active only when a second tenant_admin approves it with a fresh step-up (R-27);
    activating one supersedes the previous active version.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    number = models.PositiveIntegerField()
    format = models.CharField(max_length=8, choices=PolicyFormat.choices)
    source = models.TextField()
    document = models.JSONField()
    sha256 = models.CharField(max_length=64)
    status = models.CharField(
        max_length=24, choices=PolicyStatus.choices, default=PolicyStatus.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="policy_unique_number"),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status=PolicyStatus.ACTIVE),
                name="policy_one_active_per_tenant",
            ),
            models.CheckConstraint(
                condition=Q(status=PolicyStatus.DRAFT) | Q(requested_by__isnull=False),
                name="policy_requested_has_requester",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[PolicyStatus.DRAFT, PolicyStatus.PENDING_ACTIVATION])
                | Q(approved_by__isnull=False, activated_at__isnull=False),
                name="policy_activated_has_approver",
            ),
            # Dual control in the database too: the approver is neither author nor requester.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True)
                | (~Q(approved_by=F("created_by")) & ~Q(approved_by=F("requested_by"))),
                name="policy_approver_is_second_person",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="policy_text_immutable",
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(
                    "tenant", "number", "format", "source", "document", "sha256"
                ),
            )
        ]

    def __str__(self) -> str:
        return f"policy v{self.number} ({self.status})"


auditlog.register(PolicyVersion, exclude_fields=["document"])

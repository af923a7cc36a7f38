"""Recovery artifacts: the one-time link or temporary access pass an owner recovers with."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tenants.querysets import TenantOwnedManager


class ArtifactKind(models.TextChoices):
    RESET_LINK = "reset_link", _("Password reset link")
    TEMPORARY_ACCESS_PASS = "temporary_access_pass", _("Temporary access pass")


class ArtifactPurpose(models.TextChoices):
    PASSWORD = "password", _("Password")
    MFA = "mfa", _("MFA")
    MAILBOX = "mailbox", _("Mailbox")


class ArtifactStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    CONSUMED = "consumed", _("Consumed")
    REVOKED = "revoked", _("Revoked")


class RecoveryArtifact(models.Model):
    """Bound to one tenant, account, case and purpose (R-32); only a hash is kept (R-29).

    At most one is active per account (R-33): a newer one revokes the older. Expiry is the
    `expires_at` column, checked at the moment of use against database time; a sweep revokes
    what has expired and ends the connector's temporary access state.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="artifacts"
    )
    case = models.ForeignKey(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="artifacts"
    )
    kind = models.CharField(max_length=32, choices=ArtifactKind.choices)
    purpose = models.CharField(max_length=16, choices=ArtifactPurpose.choices)
    secret_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the token.")
    status = models.CharField(
        max_length=16, choices=ArtifactStatus.choices, default=ArtifactStatus.ACTIVE
    )
    sent_to = models.ForeignKey(
        "recovery.ContactMethod", on_delete=models.PROTECT, related_name="+"
    )
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=32, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(status="active"),
                name="artifact_one_active_per_account",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="artifact_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for case {self.case_id} ({self.status})"

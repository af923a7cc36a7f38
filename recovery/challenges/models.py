"""Verification challenges of a case. Re-exported by `recovery.models`."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now

from tenants.querysets import TenantOwnedManager

from .choices import ChallengeChannel, ChallengeKind, ChallengeStatus, ConfirmedVia

# R-31 ceilings, whatever the tenant's policy says; the database refuses a longer row too.
LIFETIME_CEILINGS = {
    ChallengeChannel.SMS: 10 * 60,
    ChallengeChannel.VOICE: 10 * 60,
    ChallengeChannel.EMAIL: 24 * 3600,
}
# a tenant may lower the failed-attempt limit, never raise it above this.
MAX_FAILED_ATTEMPTS = 5


class VerificationChallenge(models.Model):
    """One code or attestation link sent to a contact method the system of record held before
    the case opened. Stores hashes only, never the code or the link token (R-29).

    Bound to one tenant, one case (so one account) and one purpose (`kind`, R-32). Used at most
    once (`status` moves from `open` by compare-and-set, R-30), until `expires_at` by database
    time (R-31), with at most `max_attempts` wrong codes (R-53).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="challenges"
    )
    kind = models.CharField(max_length=16, choices=ChallengeKind.choices)
    contact_method = models.ForeignKey(
        "recovery.ContactMethod", on_delete=models.PROTECT, related_name="+"
    )
    channel = models.CharField(max_length=8, choices=ChallengeChannel.choices)
    contact_hint = models.CharField(max_length=64, help_text="Masked contact (R-14).")
    code_hash = models.CharField(
        max_length=200, blank=True, help_text="Salted slow hash of the code; never the code."
    )
    link_hash = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text="SHA-256 of the confirmation link's token; never the token.",
    )
    attester_person = models.UUIDField(
        null=True, blank=True, help_text="S3: the only person (person_id) who may confirm."
    )
    status = models.CharField(
        max_length=16, choices=ChallengeStatus.choices, default=ChallengeStatus.OPEN
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Wrong codes so far.")
    max_attempts = models.PositiveSmallIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(help_text="Set from database time when created.")
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_via = models.CharField(max_length=16, choices=ConfirmedVia.choices, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="S3: the signed-in manager who confirmed.",
    )
    evidence = models.ForeignKey(
        "recovery.Evidence", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    delivery_provider = models.CharField(max_length=32, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        indexes = [models.Index(fields=["case", "kind", "status"], name="challenge_case_kind")]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "contact_method", "kind"],
                condition=Q(status=ChallengeStatus.OPEN),
                name="challenge_one_open_per_contact",
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1, max_attempts__lte=MAX_FAILED_ATTEMPTS),
                name="challenge_attempt_limit",
            ),
            models.CheckConstraint(
                condition=Q(
                    channel__in=[ChallengeChannel.SMS, ChallengeChannel.VOICE],
                    expires_at__lte=F("created_at")
                    + timedelta(seconds=LIFETIME_CEILINGS[ChallengeChannel.SMS]),
                )
                | Q(
                    channel=ChallengeChannel.EMAIL,
                    expires_at__lte=F("created_at")
                    + timedelta(seconds=LIFETIME_CEILINGS[ChallengeChannel.EMAIL]),
                ),
                name="challenge_lifetime_ceiling",
            ),
            models.CheckConstraint(
                condition=~Q(kind=ChallengeKind.CODE, code_hash=""),
                name="challenge_code_hashed",
            ),
            models.CheckConstraint(
                condition=~Q(kind=ChallengeKind.ATTESTATION)
                | Q(attester_person__isnull=False, link_hash__isnull=False),
                name="challenge_attestation_bound",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} challenge {self.pk} via {self.channel} {self.contact_hint}"


# No django-auditlog diffs: every write of a challenge is a service that records it in the chain
# (`verification.challenge_sent`, `verification.challenge_failed`, `verification.signal_accepted`,
# ...), see recovery/cases/models.py.

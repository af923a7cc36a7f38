import uuid

from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import GrantStatus, PrincipalKind, Role
from .querysets import TenantOwnedManager


class User(AbstractUser):
    """A staff user. `person_id` is shared by every account of one natural person."""

    person_id = models.UUIDField(
        default=uuid.uuid4,
        db_index=True,
        help_text="Identifies the natural person; two accounts of one person share it.",
    )
    failed_attempts = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(
        max_length=16,
        choices=PrincipalKind.choices,
        default=PrincipalKind.HUMAN,
        help_text="Non-human principals act only through their API key and cannot sign in.",
    )
    language = models.CharField(
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text="Console language; blank follows the browser.",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="IANA time zone for dates in the console; blank is UTC.",
    )

    @property
    def is_human(self) -> bool:
        return self.kind == PrincipalKind.HUMAN


class StepUpUse(models.Model):
    """A spent step-up proof: one authenticator code authorises exactly one privileged action."""

    nonce = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"step-up {self.nonce} by {self.user_id}"


class Tenant(models.Model):
    """A client organisation. Everything it owns carries its id."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    security_contact_email = models.EmailField(
        blank=True,
        help_text="Gets T1/T2 recovery notices and repudiation pages (R-40, R-41).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class ServiceProvider(models.Model):
    """An MSP whose staff serve tenants only through delegation grants."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in exactly one tenant or one service provider."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    provider = models.ForeignKey(
        ServiceProvider,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="memberships",
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    certified_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="trusted_referee: the referee's certification is current until then (R-09).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(tenant__isnull=False, provider__isnull=True)
                    | Q(tenant__isnull=True, provider__isnull=False)
                ),
                name="membership_tenant_xor_provider",
            ),
            models.UniqueConstraint(
                fields=["user", "tenant", "role"],
                condition=Q(tenant__isnull=False),
                name="membership_unique_tenant_role",
            ),
            models.UniqueConstraint(
                fields=["user", "provider", "role"],
                condition=Q(provider__isnull=False),
                name="membership_unique_provider_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} @ {self.tenant or self.provider}"


class DelegationGrant(models.Model):
    """A tenant's time-bound, scoped, revocable permission for an MSP's staff to act in it."""

    provider = models.ForeignKey(ServiceProvider, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="grants")
    allowed_roles = models.JSONField(help_text="Roles the provider's staff may use in the tenant.")
    allowed_tiers = models.JSONField(help_text='Account tiers they may work on, e.g. ["T0"].')
    allowed_case_types = models.JSONField(help_text="Case types they may open or work on.")
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=GrantStatus.choices, default=GrantStatus.PENDING
    )
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__gt=models.F("valid_from")), name="grant_window_not_empty"
            ),
            models.CheckConstraint(
                condition=~Q(status=GrantStatus.ACTIVE) | Q(approved_by__isnull=False),
                name="grant_active_needs_approver",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} → {self.tenant} ({self.status})"


class ApiKey(models.Model):
    """A tenant's API credential: `vsk_<prefix>_<secret>`; only a hash of the secret is kept.

    Each key is the credential of its own non-human principal (`principal`), so every action
    made with it is attributed to that integration or AI assistant, never to a person.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    principal = models.OneToOneField(User, on_delete=models.PROTECT, related_name="api_key")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(help_text='What the key may do, e.g. ["cases:read"].')
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class BackgroundJob(models.Model):
    """A long console operation (simulation, export) run by a worker; the page polls it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_by", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


auditlog.register(User, exclude_fields=["last_login", "failed_attempts"], mask_fields=["password"])
auditlog.register(Tenant)
auditlog.register(ServiceProvider)
auditlog.register(Membership)
auditlog.register(DelegationGrant)
auditlog.register(ApiKey, exclude_fields=["last_used_at"], mask_fields=["secret_hash"])

import uuid

from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device

from .choices import (
    GrantStatus,
    PasskeyReplacementStatus,
    PrincipalKind,
    Role,
    RouteKind,
    RouteStatus,
    StaffPasskeyStatus,
)
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


class WebAuthnCredential(models.Model):
    """What a verified WebAuthn registration leaves (`tenants.webauthn.RegisteredPasskey`):
    shared by staff passkeys and the account owner's."""

    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url.")
    public_key = models.BinaryField()
    sign_count = models.BigIntegerField(default=0)
    aaguid = models.CharField(max_length=36, blank=True)
    attestation_format = models.CharField(max_length=32)
    backup_eligible = models.BooleanField(default=False)
    backup_state = models.BooleanField(default=False)
    transports = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True


class StaffPasskeyReplacement(models.Model):
    """A staff user who lost their passkeys asks for a new one; a second staff member approves.

    `expires_at` is the deadline of the current step: for a request, the approval; once
    approved, the registration of the new passkey (checked at the moment of use).
    """

    requester = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=16,
        choices=PasskeyReplacementStatus.choices,
        default=PasskeyReplacementStatus.REQUESTED,
    )
    requested_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField()
    approved_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_in = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(approved_by=models.F("requester")),
                name="passkey_replacement_second_person",
            ),
            models.CheckConstraint(
                condition=Q(status=PasskeyReplacementStatus.REQUESTED)
                | Q(status=PasskeyReplacementStatus.CANCELLED, approved_by__isnull=True)
                | Q(approved_by__isnull=False, approved_in__isnull=False),
                name="passkey_replacement_approved_has_approver",
            ),
            models.UniqueConstraint(
                fields=["requester"],
                condition=Q(
                    status__in=[
                        PasskeyReplacementStatus.REQUESTED,
                        PasskeyReplacementStatus.APPROVED,
                    ]
                ),
                name="passkey_replacement_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"passkey replacement {self.pk} for {self.requester_id} ({self.status})"


class StaffPasskey(WebAuthnCredential, Device):
    """A staff user's WebAuthn credential (user verification required).

    It is also a django-otp device, so a session signs in with it; such a session stays
    verified only while the passkey is active (`confirmed` follows `status`).
    """

    status = models.CharField(
        max_length=16, choices=StaffPasskeyStatus.choices, default=StaffPasskeyStatus.ACTIVE
    )
    status_reason = models.CharField(max_length=200, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    replacement = models.OneToOneField(
        StaffPasskeyReplacement,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="passkey",
        help_text="The approved replacement it was registered under, if any.",
    )
    created_at = models.DateTimeField(db_default=Now())
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status=StaffPasskeyStatus.ACTIVE, confirmed=True)
                | (~Q(status=StaffPasskeyStatus.ACTIVE) & Q(confirmed=False)),
                name="staff_passkey_confirmed_iff_active",
            ),
        ]

    def __str__(self) -> str:
        return f"passkey {self.pk} of user {self.user_id} ({self.status})"


class StaffPasskeyUse(models.Model):
    """A verified staff assertion, kept so the same signed answer is never accepted twice.

    `digest` is the SHA-256 of the credential id and what the authenticator signed over
    (authenticator data and the client data hash), so a re-encoded or re-signed copy of one
    answer is the same row.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    passkey = models.ForeignKey(StaffPasskey, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"assertion {self.digest[:12]} of passkey {self.passkey_id}"


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


class IncidentControl(models.Model):
    """A tenant's incident switches (R-68, issue 16): AI assistance off, recoveries frozen.

    No row: both off. Each change is made by `tenants.incident` with a fresh step-up and
    recorded in the tenant's chain; lifting a freeze takes a second person. No row level
    security on purpose: a request outside any tenant's scope (an API key being authenticated)
    must never miss a switch that is on.
    """

    tenant = models.OneToOneField(
        Tenant, primary_key=True, on_delete=models.CASCADE, related_name="incident_control"
    )
    ai_off = models.BooleanField(
        default=False, help_text="AI assistants' API keys are refused in this tenant."
    )
    ai_changed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ai_changed_at = models.DateTimeField(null=True, blank=True)
    frozen = models.BooleanField(
        default=False,
        help_text="New cases open in the security queue; no recovery is executed.",
    )
    frozen_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: ai_off={self.ai_off} frozen={self.frozen}"


class AlertRoute(models.Model):
    """Where the tenant's alerts go (issue 16 part 4): a security contact's address, a signed
    webhook, or a Slack or Microsoft Teams incoming webhook.

    Changed only under dual control (`tenants.routes`): one tenant admin proposes adding or
    removing a route, a second one (another account and another person) approves with a fresh
    step-up. Until then a proposed route sends nothing and a route proposed for removal keeps
    sending. The target of a chat or webhook route is a credential (whoever has the URL may
    post), so it is shown and recorded only as its origin.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=RouteKind.choices)
    target = models.CharField(
        max_length=2000, help_text="An email address, or the https URL of the webhook."
    )
    label = models.CharField(max_length=100, blank=True, help_text="Who or what it reaches.")
    secret = models.CharField(
        max_length=128, blank=True, help_text="HMAC-SHA256 key of a signed webhook route."
    )
    status = models.CharField(
        max_length=16, choices=RouteStatus.choices, default=RouteStatus.PROPOSED
    )
    requested_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty only for a security contact carried over from the earlier setting.",
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    removal_requested_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removal_requested_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who removed, rejected or withdrew it.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "target"],
                condition=Q(status__in=["proposed", "active", "removal_proposed"]),
                name="alert_route_once",
            ),
            # Dual control in the database too: nobody approves their own proposal.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True)
                | Q(requested_by__isnull=True)
                | ~Q(approved_by=models.F("requested_by")),
                name="alert_route_second_approver",
            ),
            models.CheckConstraint(
                condition=~Q(status="removed")
                | Q(removal_requested_by__isnull=True)
                | ~Q(decided_by=models.F("removal_requested_by")),
                name="alert_route_second_remover",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} route {self.pk} ({self.status})"

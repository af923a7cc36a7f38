"""Owner portal records. Re-exported by `recovery.models`.

Secrets are never stored: links, session tokens and saved codes are kept as SHA-256 / HMAC
digests (R-29). Each enrolled passkey and each saved-code set is also a `ContactMethod`
(`source = owner_portal`), so the quarantine and notice rules (R-04, R-38) apply to it as to a
new phone number.
"""

from auditlog.registry import auditlog
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from tenants.models import WebAuthnCredential
from tenants.querysets import TenantOwnedManager

from .choices import (
    ConfirmationStatus,
    IdpConfigStatus,
    IdpSignInPurpose,
    IdpSignInStatus,
    PasskeyStatus,
    PortalSessionKind,
    PortalSessionStatus,
)

OWNER_PORTAL_SOURCE = "owner_portal"


class OwnerPortalSession(models.Model):
    """A browser session of one account owner in the portal, never a staff session.

    An enrolment session starts as a one-time link (`link_hash`) sent to an address on record;
    opening it (POST) activates it and sets the portal's own cookie (`token_hash`). An artifact
    session is opened by a recovery artifact and is bound to its case and purpose (R-11, R-32):
    a password session may set the password and nothing else (R-12).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="portal_sessions"
    )
    kind = models.CharField(max_length=16, choices=PortalSessionKind.choices)
    status = models.CharField(
        max_length=8, choices=PortalSessionStatus.choices, default=PortalSessionStatus.PENDING
    )
    link_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    sent_to = models.ForeignKey(
        "recovery.ContactMethod", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    case = models.ForeignKey(
        "recovery.RecoveryCase", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    artifact = models.OneToOneField(
        "recovery.RecoveryArtifact",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="portal_session",
    )
    purpose = models.CharField(
        max_length=16, blank=True, help_text="The artifact's purpose (password, mfa)."
    )
    created_at = models.DateTimeField(db_default=Now())
    link_expires_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    bound_at = models.DateTimeField(
        null=True, blank=True, help_text="When the owner set the password or bound the credential."
    )
    bound_detail = models.JSONField(default=dict, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind=PortalSessionKind.ARTIFACT)
                | Q(case__isnull=False, artifact__isnull=False),
                name="portal_artifact_session_bound",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} portal session {self.pk} ({self.status})"


class OwnerPasskey(WebAuthnCredential):
    """A WebAuthn credential the owner registered (user verification required)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="passkeys"
    )
    contact = models.OneToOneField(
        "recovery.ContactMethod", on_delete=models.PROTECT, related_name="passkey"
    )
    label = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=8, choices=PasskeyStatus.choices, default=PasskeyStatus.ACTIVE
    )
    registered_in = models.ForeignKey(
        OwnerPortalSession, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    last_used_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"passkey {self.pk} of account {self.account_id} ({self.status})"


class RecoveryCodeSet(models.Model):
    """Ten saved recovery codes (S1), shown once; regenerating replaces the whole set."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="code_sets"
    )
    contact = models.OneToOneField(
        "recovery.ContactMethod", on_delete=models.PROTECT, related_name="code_set"
    )
    registered_in = models.ForeignKey(
        OwnerPortalSession, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    replaced_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(replaced_at__isnull=True),
                name="code_set_one_current_per_account",
            ),
        ]

    def __str__(self) -> str:
        return f"recovery code set {self.pk} of account {self.account_id}"


class RecoveryCode(models.Model):
    """One saved code, as a keyed digest; used at most once (compare-and-set on `used_at`)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    code_set = models.ForeignKey(RecoveryCodeSet, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_for = models.ForeignKey(
        "recovery.RecoveryCase", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"recovery code {self.pk} ({'used' if self.used_at else 'unused'})"


class RecoveryCodeCheck(models.Model):
    """One saved code an agent typed for a case (S1 verifier record); wrong ones count (R-53)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="code_checks"
    )
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    matched = models.BooleanField()
    code = models.OneToOneField(
        RecoveryCode, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    evidence = models.ForeignKey(
        "recovery.Evidence", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"code check {self.pk} on case {self.case_id} ({self.matched})"


class OwnerConfirmation(models.Model):
    """An in-app confirmation request (S5): the owner types the number the agent reads out
    (nothing to choose from on their page) and signs a WebAuthn assertion over a challenge bound
    to this case, the nonce and the number."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "recovery.RecoveryCase", on_delete=models.PROTECT, related_name="confirmations"
    )
    account = models.ForeignKey(
        "recovery.ProtectedAccount", on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    number = models.CharField(max_length=4, help_text="What the agent reads out to the caller.")
    nonce = models.CharField(max_length=64, unique=True)
    link_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        max_length=12, choices=ConfirmationStatus.choices, default=ConfirmationStatus.OPEN
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    passkey = models.ForeignKey(
        OwnerPasskey, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sign_count = models.BigIntegerField(null=True, blank=True)
    assertion_hash = models.CharField(max_length=64, blank=True)
    evidence = models.ForeignKey(
        "recovery.Evidence", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status=ConfirmationStatus.OPEN),
                name="confirmation_one_open_per_case",
            ),
        ]

    def __str__(self) -> str:
        return f"confirmation {self.pk} on case {self.case_id} ({self.status})"


class OwnerIdpConfig(models.Model):
    """A tenant's OpenID Connect provider for its account owners, under dual control (R-27).

    The client secret is never stored: `client_secret_env` names the environment variable.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    issuer = models.URLField(max_length=500)
    client_id = models.CharField(max_length=255)
    client_secret_env = models.CharField(max_length=100)
    allowed_amr = models.JSONField(
        default=list, help_text="amr values that show an authenticator already bound (S5)."
    )
    allowed_acr = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=8, choices=IdpConfigStatus.choices, default=IdpConfigStatus.DRAFT
    )
    drafted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status=IdpConfigStatus.ACTIVE),
                name="idp_config_one_active_per_tenant",
            ),
            models.CheckConstraint(
                condition=~Q(status=IdpConfigStatus.ACTIVE)
                | (Q(approved_by__isnull=False) & ~Q(approved_by=models.F("drafted_by"))),
                name="idp_config_dual_control",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} for tenant {self.tenant_id} ({self.status})"


class IdpSignIn(models.Model):
    """One OpenID Connect authorization-code flow (PKCE), bound to the browser that started it."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    config = models.ForeignKey(OwnerIdpConfig, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=16, choices=IdpSignInPurpose.choices)
    account = models.ForeignKey(
        "recovery.ProtectedAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The case's subject; for enrolment, the account `sub` matched.",
    )
    case = models.ForeignKey(
        "recovery.RecoveryCase", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    link_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    state_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    nonce = models.CharField(max_length=64, blank=True)
    code_verifier = models.CharField(
        max_length=128, blank=True, help_text="PKCE verifier, cleared when the flow ends."
    )
    browser_hash = models.CharField(
        max_length=64, blank=True, help_text="Digest of the cookie that binds the flow."
    )
    status = models.CharField(
        max_length=12, choices=IdpSignInStatus.choices, default=IdpSignInStatus.STARTED
    )
    refusal = models.CharField(max_length=64, blank=True)
    sub = models.CharField(max_length=255, blank=True)
    amr = models.JSONField(default=list, blank=True)
    acr = models.CharField(max_length=255, blank=True)
    id_token_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    evidence = models.ForeignKey(
        "recovery.Evidence", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"IdP sign-in {self.pk} ({self.purpose}, {self.status})"


auditlog.register(OwnerPasskey, exclude_fields=["public_key"])
auditlog.register(OwnerIdpConfig)

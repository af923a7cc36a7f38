from auditlog.registry import auditlog
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from tenants.choices import Tier
from tenants.querysets import TenantOwnedManager

from .choices import ContactKind, MailboxType, ProofingLevel


class ProtectedAccount(models.Model):
    """A directory account that can be recovered (the subject), synced from a system of record.

    `tier` is the last value computed from the authoritative attributes below by the tenant's
    policy; cases recompute it at open, approval and execution and never trust this copy alone.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    external_id = models.CharField(max_length=200)
    username = models.CharField(max_length=254, help_text="Username or UPN in the directory.")
    display_name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    manager_external_id = models.CharField(max_length=200, blank=True)
    groups = models.JSONField(default=list, blank=True, help_text="Directory groups.")
    admin_roles = models.JSONField(default=list, blank=True, help_text="IdP/tenant admin roles.")
    mailbox_type = models.CharField(
        max_length=16, choices=MailboxType.choices, default=MailboxType.USER
    )
    delegations = models.JSONField(
        default=list, blank=True, help_text="External ids of accounts that delegate to this one."
    )
    mailbox_owner_external_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="For a shared or functional mailbox: the external id of its registered owner "
        "in the system of record, who approves access to it in their own portal session.",
    )
    no_helpdesk_reset = models.BooleanField(
        default=False, help_text="Only the security queue may act on this account (R-18)."
    )
    proofing_level = models.CharField(
        max_length=8, choices=ProofingLevel.choices, default=ProofingLevel.NONE
    )
    person_id = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="Set when the subject is also staff."
    )
    idp_subject = models.CharField(
        max_length=255,
        blank=True,
        help_text="The account's subject (`sub`) at the tenant's identity provider, from the "
        "system of record; an owner's IdP sign-in must name the same one.",
    )
    enrolment_reference = models.CharField(
        max_length=128,
        blank=True,
        help_text="Reference of the identity-proofing record made at enrolment, from the "
        "system of record; a proofing verdict must name the same one (R-05).",
    )
    source = models.CharField(max_length=100, blank=True, help_text="System of record.")
    restricted_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Re-establishment window after a recovery (R-35): risky changes alert.",
    )
    frozen_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the owner repudiated a recovery (R-41)."
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    tier = models.CharField(max_length=2, choices=Tier.choices, default=Tier.T0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"], name="account_unique_external_id"
            ),
        ]
        permissions = [("work_account", "May work recovery cases on this account")]

    def __str__(self) -> str:
        return self.username


class ContactMethod(models.Model):
    """A way to reach the subject, as the system of record had it, with its history.

    A changed value never edits a row: the old row is closed (`replaced_at`) and a new one
    starts with a fresh `registered_at`, which starts the quarantine window (R-04).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        ProtectedAccount, on_delete=models.CASCADE, related_name="contact_methods"
    )
    kind = models.CharField(max_length=16, choices=ContactKind.choices)
    value = models.CharField(max_length=254)
    source = models.CharField(max_length=100)
    registered_at = models.DateTimeField()
    replaced_at = models.DateTimeField(null=True, blank=True)
    sim_changed_at = models.DateTimeField(null=True, blank=True)
    is_notification = models.BooleanField(default=True)

    objects = TenantOwnedManager()

    class Meta:
        indexes = [models.Index(fields=["account", "kind"], name="contact_account_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.masked}"

    @property
    def masked(self) -> str:
        """The hint an agent may see: never the whole value (R-14)."""
        return mask_contact(self.kind, self.value)


def mask_contact(kind: str, value: str) -> str:
    if kind == ContactKind.EMAIL and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "***"
    return f"***{value[-2:]}"


class ProtectedAccountUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(ProtectedAccount, on_delete=models.CASCADE)


class ProtectedAccountGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(ProtectedAccount, on_delete=models.CASCADE)


auditlog.register(ProtectedAccount)
auditlog.register(ContactMethod, mask_fields=["value"])


from .artifacts.models import RecoveryArtifact  # noqa: E402,F401
from .cases.models import (  # noqa: E402,F401
    Approval,
    CaseExecution,
    CaseNote,
    Evidence,
    EvidenceAttachment,
    RecoveryCase,
    ReestablishmentWindow,
    WindowChange,
)
from .challenges.models import VerificationChallenge  # noqa: E402,F401
from .connectors.models import ConnectorConfig  # noqa: E402,F401
from .delegation.models import MailboxDelegation  # noqa: E402,F401
from .detection.models import (  # noqa: E402,F401
    Alert,
    CallerIdentifier,
    ReviewOpened,
    WatchedCaller,
)
from .notifications.models import NoticeCursor, OwnerNotice, QueueDigest  # noqa: E402,F401
from .owner.models import (  # noqa: E402,F401
    IdpSignIn,
    OwnerConfirmation,
    OwnerIdpConfig,
    OwnerPasskey,
    OwnerPortalSession,
    RecoveryCode,
    RecoveryCodeCheck,
    RecoveryCodeSet,
)
from .policy.models import PolicyVersion  # noqa: E402,F401
from .proofing.models import AttendedSession, ProofingSession  # noqa: E402,F401

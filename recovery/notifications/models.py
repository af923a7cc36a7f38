"""Notices to the account owner (and designee) about a recovery, each with "this wasn't me"."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.models import ChainCursor
from tenants.querysets import TenantOwnedManager


class NoticeEvent(models.TextChoices):
    CASE_OPENED = "case_opened", _("A recovery case was opened for your account")
    CASE_APPROVED = "case_approved", _("A recovery of your account was approved")
    ARTIFACT_ISSUED = "artifact_issued", _("A recovery link or pass was sent")
    EXECUTED = "executed", _("Your account was recovered")
    # Owner portal (account-level unless a case is named): R-38 for portal credentials.
    PASSKEY_ADDED = "passkey_added", _("A passkey was added to your account")
    PASSKEY_REMOVED = "passkey_removed", _("A passkey was removed from your account")
    CODES_ISSUED = "codes_issued", _("New saved recovery codes were created for your account")
    CODE_USED = "code_used", _("One of your saved recovery codes was used")
    CONFIRMATION_REQUESTED = (
        "confirmation_requested",
        _("The service desk asks you to confirm a recovery"),
    )
    IDP_SIGN_IN_REQUESTED = (
        "idp_sign_in_requested",
        _("The service desk asks you to sign in to confirm a recovery"),
    )
    ENROLMENT_LINK = "enrolment_link", _("Your link to set up account recovery")
    AUTHENTICATOR_BOUND = "authenticator_bound", _("A new sign-in method was bound to your account")
    PASSWORD_SET = "password_set", _("Your password was changed")


class NoticeStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class OwnerNotice(models.Model):
    """One message to one address that existed before the case opened (R-38), or to the
    manager / tenant security contact for T1/T2 (R-39, R-40).

    Written in the transaction of the event it reports (an outbox: nothing is lost while the
    broker is down) and sent after commit by a task; a sweep sends what the broker never
    carried. Its "this wasn't me" link carries a signed reference to it, so no secret is kept.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "recovery.RecoveryCase",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notices",
        help_text="Empty for a notice about the account itself (an owner portal change).",
    )
    account = models.ForeignKey(
        "recovery.ProtectedAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The account the notice is about (set for every notice since migration 0017).",
    )
    event = models.CharField(max_length=32, choices=NoticeEvent.choices)
    contact = models.ForeignKey(
        "recovery.ContactMethod",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The owner's address; empty for the tenant security contact.",
    )
    recipient = models.CharField(
        max_length=16, help_text="owner, manager or security_contact (R-40 designee)."
    )
    address = models.CharField(max_length=254, help_text="Where it goes (not shown to agents).")
    status = models.CharField(
        max_length=16, choices=NoticeStatus.choices, default=NoticeStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedManager()

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"], name="notice_pending"),
            models.Index(fields=["case", "status"], name="notice_case_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event} notice to {self.recipient} ({self.status})"


class NoticeCursor(ChainCursor):
    """How far the tenant's committed audit chain has been turned into owner notices
    (`recovery.notifications.services.notices_derive`)."""

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"notice cursor of tenant {self.tenant_id} at seq {self.seq}"


class QueueDigest(models.Model):
    """How far a tenant's approvers have been told of the cases waiting for a decision
    (`recovery.notifications.approvers`): one row per tenant, locked by each run."""

    tenant = models.OneToOneField(
        "tenants.Tenant", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    announced_through = models.DateTimeField(
        help_text="Cases that entered the approval queue up to then have been announced."
    )
    ran_at = models.DateTimeField(null=True, blank=True, help_text="The last run that told anyone.")

    objects = TenantOwnedManager()

    def __str__(self) -> str:
        return f"queue digest of {self.tenant_id} through {self.announced_through:%Y-%m-%d %H:%M}"

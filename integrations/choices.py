from django.db import models
from django.utils.translation import gettext_lazy as _

from recovery.connectors.cloud import ChangeKind


class WebhookEventType(models.TextChoices):
    """What a webhook subscription can ask for; each is raised by one audit action."""

    CASE_OPENED = "case.opened", _("A case was opened")
    CASE_SUBMITTED = "case.submitted", _("A case went to approval")
    CASE_STATUS_CHANGED = "case.status_changed", _("A case moved (cooling-off, ready …)")
    CASE_CANCELLED = "case.cancelled", _("A case was cancelled")
    APPROVAL_APPROVED = "approval.approved", _("An approver approved a case")
    APPROVAL_DENIED = "approval.denied", _("An approver denied a case")
    ALERT_RAISED = "alert.raised", _("A detection for the security queue")
    CASES_WAITING = "cases.waiting", _("Cases entered the approval queue (at most once a minute)")
    POLICY_ACTIVATED = "policy.activated", _("A recovery policy version became active")
    AUDIT_CHECKPOINT_SIGNED = (
        "audit.checkpoint_signed",
        _("The tenant's audit chain head was signed (a copy of the signed checkpoint)"),
    )
    AUDIT_INTEGRITY_FAILING = (
        "audit.integrity_failing",
        _("The tenant's audit chain failed verification: privileged acts are refused"),
    )


# The audit action that raises each webhook event. Today every name is the same as its action;
# a future action (case.executed, artifact.revoked …) becomes a webhook event by adding a
# WebhookEventType above, a line here and its safe fields in integrations.outbox.SAFE_FIELDS.
EVENT_TYPE_OF_ACTION: dict[str, str] = {
    "case.opened": WebhookEventType.CASE_OPENED,
    "case.submitted": WebhookEventType.CASE_SUBMITTED,
    "case.status_changed": WebhookEventType.CASE_STATUS_CHANGED,
    "case.cancelled": WebhookEventType.CASE_CANCELLED,
    "approval.approved": WebhookEventType.APPROVAL_APPROVED,
    "approval.denied": WebhookEventType.APPROVAL_DENIED,
    "alert.raised": WebhookEventType.ALERT_RAISED,
    "cases.waiting": WebhookEventType.CASES_WAITING,
    "policy.activated": WebhookEventType.POLICY_ACTIVATED,
    "audit.checkpoint_signed": WebhookEventType.AUDIT_CHECKPOINT_SIGNED,
    "audit.integrity_failing": WebhookEventType.AUDIT_INTEGRITY_FAILING,
}


class DeliveryKind(models.TextChoices):
    """What an outbox row carries: an event for a subscription, a connector's request, or an
    alert for an alert route."""

    EVENT = "event", _("An event for a webhook subscription")
    CONNECTOR = "connector", _("A request to the tenant's automation (recovery webhook connector)")
    ROUTE = "route", _("An alert on one of the tenant's alert routes (email, webhook, chat)")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Given up")


class IngestEventType(models.TextChoices):
    """Identity and security events an integration may send about a protected account (R-55)."""

    MFA_DEVICE_ADDED = "mfa_device_added", _("A new MFA device was registered")
    MAILBOX_RULE_CREATED = "mailbox_rule_created", _("A mailbox rule (forwarding, hiding) appeared")
    PUSH_DENIED_BURST = "push_denied_burst", _("A burst of denied MFA pushes")
    SIM_CHANGE = "sim_change", _("The phone's SIM was changed at the carrier")
    PORT_OUT = "port_out", _("The phone number was ported to another carrier")
    ADMIN_ROLE_GRANTED = "admin_role_granted", _("An admin role was granted")
    SIGN_IN_NEW_ASN = "sign_in_new_asn", _("A sign-in from a network (ASN) not seen before")
    SIGN_IN_ANONYMIZED = (
        "sign_in_anonymized",
        _("A sign-in through an anonymizing proxy or a residential VPN range"),
    )
    ADMIN_CONSOLE_ACCESS = "admin_console_access", _("The account opened an admin console")
    FEDERATION_CHANGED = (
        "federation_changed",
        _("The account changed a federation or identity-provider trust"),
    )
    MFA_TROUBLE_REPORTED = (
        "mfa_trouble_reported",
        _("Someone reported the account's MFA as not working (self-service or a ticket)"),
    )
    RECOVERY_ADDRESS_CHANGED = (
        "recovery_address_changed",
        _("A recovery or notification address was changed"),
    )
    DELEGATE_GRANTED = "delegate_granted", _("A mailbox or account delegate was added")
    OAUTH_CONSENT_GRANTED = "oauth_consent_granted", _("Consent was granted to an OAuth app")


# The R-35 change each ingested type reports: inside an account's re-establishment window it is
# undone and the account frozen (recovery.cases.services.window). Other types are context.
WINDOW_CHANGE_KINDS: dict[str, ChangeKind] = {
    IngestEventType.MFA_DEVICE_ADDED: ChangeKind.MFA_ENROLLED,
    IngestEventType.RECOVERY_ADDRESS_CHANGED: ChangeKind.ADDRESS_CHANGED,
    IngestEventType.MAILBOX_RULE_CREATED: ChangeKind.MAILBOX_RULE,
    IngestEventType.DELEGATE_GRANTED: ChangeKind.DELEGATE_GRANTED,
    IngestEventType.OAUTH_CONSENT_GRANTED: ChangeKind.OAUTH_CONSENT,
    IngestEventType.ADMIN_ROLE_GRANTED: ChangeKind.PRIVILEGED_ROLE,
}

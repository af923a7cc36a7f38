from django.db import models


class CaseStatus(models.TextChoices):
    COLLECTING_EVIDENCE = "collecting_evidence", "Collecting evidence"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    COOLING_OFF = "cooling_off", "Cooling off"
    READY = "ready", "Ready"
    EXECUTED = "executed", "Executed (access active)"
    CLOSED = "closed", "Closed"
    DENIED = "denied", "Denied"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    FROZEN = "frozen", "Frozen"
    REVERTED = "reverted", "Reverted"


OPEN_STATUSES = frozenset(
    {
        CaseStatus.COLLECTING_EVIDENCE,
        CaseStatus.PENDING_APPROVAL,
        CaseStatus.COOLING_OFF,
        CaseStatus.READY,
    }
)
# A case that ended this way makes the next one on the account a repeat attempt.
ABANDONED_STATUSES = frozenset(
    {CaseStatus.DENIED, CaseStatus.CANCELLED, CaseStatus.EXPIRED, CaseStatus.FROZEN}
)


class Channel(models.TextChoices):
    PHONE = "phone", "Phone"
    CHAT = "chat", "Chat"
    EMAIL = "email", "Email"
    WALK_IN = "walk_in", "Walk-in"
    PORTAL = "portal", "Portal"
    API = "api", "API"


class Route(models.TextChoices):
    STANDARD = "standard", "Standard queue"
    SECURITY = "security", "Security queue"


class SignalClass(models.TextChoices):
    S1 = "S1", "Saved recovery code"
    S2 = "S2", "Issued recovery code to a pre-registered address"
    S3 = "S3", "Manager or recovery-contact attestation"
    S4 = "S4", "Repeated identity proofing"
    S5 = "S5", "Authentication with a still-bound authenticator"
    CONTEXT = "context", "Context only (never evidence)"


class EvidenceResult(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    CONTEXT = "context", "Stored as context, not evidence"


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"

from django.db import models
from django.utils.translation import gettext_lazy as _


class CaseStatus(models.TextChoices):
    COLLECTING_EVIDENCE = "collecting_evidence", _("Collecting evidence")
    PENDING_APPROVAL = "pending_approval", _("Pending approval")
    COOLING_OFF = "cooling_off", _("Cooling off")
    READY = "ready", _("Ready")
    EXECUTED = "executed", _("Executed (access active)")
    CLOSED = "closed", _("Closed")
    DENIED = "denied", _("Denied")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")
    FROZEN = "frozen", _("Frozen")
    REVERTED = "reverted", _("Reverted")
    REJECTED = "rejected", _("Rejected (identity proofing did not match the enrolment record)")


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
    {
        CaseStatus.DENIED,
        CaseStatus.CANCELLED,
        CaseStatus.EXPIRED,
        CaseStatus.FROZEN,
        CaseStatus.REJECTED,
    }
)


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    CHAT = "chat", _("Chat")
    EMAIL = "email", _("Email")
    WALK_IN = "walk_in", _("Walk-in")
    PORTAL = "portal", _("Portal")
    API = "api", _("API")


class Route(models.TextChoices):
    STANDARD = "standard", _("Standard queue")
    SECURITY = "security", _("Security queue")


class SignalClass(models.TextChoices):
    S1 = "S1", _("Saved recovery code")
    S2 = "S2", _("Issued recovery code to a pre-registered address")
    S3 = "S3", _("Manager or recovery-contact attestation")
    S4 = "S4", _("Repeated identity proofing")
    S5 = "S5", _("Authentication with a still-bound authenticator")
    CONTEXT = "context", _("Context only (never evidence)")


class EvidenceResult(models.TextChoices):
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")
    CONTEXT = "context", _("Stored as context, not evidence")


class Verifier(models.TextChoices):
    """The code that checked a claim; only a verifier creates an accepted signal."""

    CHALLENGE = "challenge", _("One-time code read back, or link confirmed, by the owner")
    ATTESTATION = "attestation", _("Attestation given in the attester's own session")
    PROOFING_PROVIDER = "proofing_provider", _("Signed verdict of an identity-proofing provider")
    ATTENDED_SESSION = "attended_session", _("Attended session run by a trusted referee")
    OWNER_PORTAL = "owner_portal", _("Owner portal (saved recovery code, bound authenticator)")
    # Rows accepted before verifiers existed: kept for the record, never counted.
    LEGACY_ASSERTION = "legacy_assertion", _("Asserted before verifiers existed (not counted)")


# Verifiers built so far: an accepted row must name one of these (and its record).
COUNTING_VERIFIERS = frozenset(
    {
        Verifier.CHALLENGE,
        Verifier.ATTESTATION,
        Verifier.PROOFING_PROVIDER,
        Verifier.ATTENDED_SESSION,
        Verifier.OWNER_PORTAL,
    }
)


class Decision(models.TextChoices):
    APPROVED = "approved", _("Approved")
    DENIED = "denied", _("Denied")


# Where a change inside the re-establishment window came from, and what became of it.
class ChangeSource(models.TextChoices):
    INGEST = "ingest", _("An event an integration sent")
    POLL = "poll", _("The connector's change log, read by the window poll")


class ChangeOutcome(models.TextChoices):
    PENDING = "pending", _("Reported; the undo has not been tried yet")
    UNDONE = "undone", _("Undone by the connector")
    MANUAL = "manual", _("A person must undo it in the directory's console")

from django.db import models


class ChallengeKind(models.TextChoices):
    CODE = "code", "One-time code to the owner (S2)"
    ATTESTATION = "attestation", "Manager attestation from their own session (S3)"


class ChallengeChannel(models.TextChoices):
    SMS = "sms", "SMS"
    VOICE = "voice", "Voice call"
    EMAIL = "email", "Email"


class ChallengeStatus(models.TextChoices):
    OPEN = "open", "Open"
    VERIFIED = "verified", "Verified (consumed)"
    SUPERSEDED = "superseded", "Superseded by a newer challenge"
    DISABLED = "disabled", "Disabled after too many wrong codes"
    EXPIRED = "expired", "Expired"
    UNDELIVERED = "undelivered", "Not delivered"


class ConfirmedVia(models.TextChoices):
    CODE = "code", "Code read back to the agent"
    LINK = "link", "Owner's confirmation link"
    ATTESTATION = "attestation", "Manager's signed-in confirmation"

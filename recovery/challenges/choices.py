from django.db import models
from django.utils.translation import gettext_lazy as _


class ChallengeKind(models.TextChoices):
    CODE = "code", _("One-time code to the owner (S2)")
    ATTESTATION = "attestation", _("Manager attestation from their own session (S3)")


class ChallengeChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice call")
    EMAIL = "email", _("Email")


class ChallengeStatus(models.TextChoices):
    OPEN = "open", _("Open")
    VERIFIED = "verified", _("Verified (consumed)")
    SUPERSEDED = "superseded", _("Superseded by a newer challenge")
    DISABLED = "disabled", _("Disabled after too many wrong codes")
    EXPIRED = "expired", _("Expired")
    UNDELIVERED = "undelivered", _("Not delivered")


class ConfirmedVia(models.TextChoices):
    CODE = "code", _("Code read back to the agent")
    LINK = "link", _("Owner's confirmation link")
    ATTESTATION = "attestation", _("Manager's signed-in confirmation")

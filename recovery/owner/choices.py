from django.db import models
from django.utils.translation import gettext_lazy as _


class PortalSessionKind(models.TextChoices):
    """What opened an owner portal session, and so what it may do."""

    ENROLMENT = "enrolment", _("Enrolment, from a link sent to an address on record")
    IDP_ENROLMENT = "idp_enrolment", _("Enrolment, after signing in with the identity provider")
    ARTIFACT = "artifact", _("Binding a new credential, from a recovery artifact (R-11)")


class PortalSessionStatus(models.TextChoices):
    PENDING = "pending", _("Link sent, not opened")
    ACTIVE = "active", _("Active")
    ENDED = "ended", _("Ended")


class PasskeyStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    REMOVED = "removed", _("Removed")
    CLONED = "cloned", _("Disabled: signature counter went back (possible clone)")


class ConfirmationStatus(models.TextChoices):
    OPEN = "open", _("Waiting for the owner")
    CONFIRMED = "confirmed", _("Confirmed with a passkey")
    REPUDIATED = "repudiated", _("The owner said it was not them")
    FAILED = "failed", _("Refused after too many failures")
    EXPIRED = "expired", _("Expired")
    SUPERSEDED = "superseded", _("Superseded by a newer request")


class IdpConfigStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING = "pending", _("Waiting for a second tenant admin")
    ACTIVE = "active", _("Active")
    RETIRED = "retired", _("Retired")


class IdpSignInPurpose(models.TextChoices):
    ENROLMENT = "enrolment", _("Sign in to enrol")
    CASE_SIGNAL = "case_signal", _("Sign in as evidence for a case (S5)")


class IdpSignInStatus(models.TextChoices):
    STARTED = "started", _("Sent to the identity provider")
    COMPLETED = "completed", _("Signed in")
    REFUSED = "refused", _("Refused")
    EXPIRED = "expired", _("Expired")

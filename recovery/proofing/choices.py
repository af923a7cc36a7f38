from django.db import models
from django.utils.translation import gettext_lazy as _


class ProofingStatus(models.TextChoices):
    STARTED = "started", _("Started: waiting for the provider's verdict")
    PASSED = "passed", _("Passed: matched the enrolment record")
    FAILED = "failed", _("Failed: the provider could not proof the person")
    MISMATCH = "mismatch", _("Mismatch with the enrolment record")
    EXPIRED = "expired", _("Expired without a verdict")


class AttendedMode(models.TextChoices):
    REMOTE_VIDEO = "remote_video", _("Remote, supervised video")
    ONSITE = "onsite", _("Onsite, in person")


class AttendedStatus(models.TextChoices):
    OPEN = "open", _("In progress")
    COMPLETED = "completed", _("Completed: identity confirmed")
    FAILED = "failed", _("Ended: identity not confirmed")
    FRAUD_FLAGGED = "fraud_flagged", _("Fraud flagged: case frozen")

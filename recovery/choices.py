from django.db import models
from django.utils.translation import gettext_lazy as _


class MailboxType(models.TextChoices):
    USER = "user", _("User mailbox")
    SHARED = "shared", _("Shared mailbox")
    FUNCTIONAL = "functional", _("Functional mailbox")


class ProofingLevel(models.TextChoices):
    NONE = "none", _("Not identity-proofed")
    IAL1 = "IAL1", _("IAL1")
    IAL2 = "IAL2", _("IAL2")
    IAL3 = "IAL3", _("IAL3")


class ContactKind(models.TextChoices):
    MOBILE = "mobile", _("Mobile phone")
    EMAIL = "email", _("Email address")
    DESK_PHONE = "desk_phone", _("Desk phone")
    MANAGER = "manager", _("Manager")
    AUTHENTICATOR = "authenticator", _("Enrolled authenticator")
    PASSKEY = "passkey", _("Passkey (owner portal)")
    RECOVERY_CODES = "recovery_codes", _("Saved recovery codes (owner portal)")


PHONE_KINDS = frozenset({ContactKind.MOBILE, ContactKind.DESK_PHONE})
# Enrolled in the owner portal: never a destination for a message, only something to prove.
PORTAL_KINDS = frozenset({ContactKind.PASSKEY, ContactKind.RECOVERY_CODES})

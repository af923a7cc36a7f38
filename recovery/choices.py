from django.db import models


class MailboxType(models.TextChoices):
    USER = "user", "User mailbox"
    SHARED = "shared", "Shared mailbox"
    FUNCTIONAL = "functional", "Functional mailbox"


class ProofingLevel(models.TextChoices):
    NONE = "none", "Not identity-proofed"
    IAL1 = "IAL1", "IAL1"
    IAL2 = "IAL2", "IAL2"
    IAL3 = "IAL3", "IAL3"


class ContactKind(models.TextChoices):
    MOBILE = "mobile", "Mobile phone"
    EMAIL = "email", "Email address"
    DESK_PHONE = "desk_phone", "Desk phone"
    MANAGER = "manager", "Manager"
    AUTHENTICATOR = "authenticator", "Enrolled authenticator"


PHONE_KINDS = frozenset({ContactKind.MOBILE, ContactKind.DESK_PHONE})

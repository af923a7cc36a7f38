from django.db import models
from django.utils.translation import gettext_lazy as _


class DelegationStatus(models.TextChoices):
    """Where a mailbox delegation stands; only the services move it."""

    REQUESTED = "requested", _("Requested: waiting for the mailbox owner and the approvals")
    OWNER_REFUSED = "owner_refused", _("Refused by the mailbox owner")
    GRANT_PENDING = "grant_pending", _("Approved: a person must grant it in the mail system")
    ACTIVE = "active", _("Active until its expiry")
    REMOVAL_PENDING = "removal_pending", _("Ended: the removal is still to be done")
    REMOVED = "removed", _("Removed")


class OwnerDecision(models.TextChoices):
    NONE = "", _("Not decided")
    APPROVED = "approved", _("Approved by the mailbox owner")
    REFUSED = "refused", _("Refused by the mailbox owner")


# A delegation that may give the delegate access now (granted, or being granted by a person).
LIVE_STATUSES = frozenset({DelegationStatus.GRANT_PENDING, DelegationStatus.ACTIVE})
# Statuses in which the owner's approval is a precondition (the database checks it).
GRANTED_STATUSES = frozenset(
    {
        DelegationStatus.GRANT_PENDING,
        DelegationStatus.ACTIVE,
        DelegationStatus.REMOVAL_PENDING,
        DelegationStatus.REMOVED,
    }
)

from auditlog.registry import auditlog
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from tenants.choices import Tier
from tenants.querysets import TenantOwnedManager


class ProtectedAccount(models.Model):
    """A directory account that can be recovered (the subject). Fleshed out by the workflow."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    external_id = models.CharField(max_length=200)
    username = models.CharField(max_length=254)
    display_name = models.CharField(max_length=200)
    tier = models.CharField(max_length=2, choices=Tier.choices, default=Tier.T0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"], name="account_unique_external_id"
            ),
        ]
        permissions = [("work_account", "May work recovery cases on this account")]

    def __str__(self) -> str:
        return self.username


class ProtectedAccountUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(ProtectedAccount, on_delete=models.CASCADE)


class ProtectedAccountGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(ProtectedAccount, on_delete=models.CASCADE)


auditlog.register(ProtectedAccount)

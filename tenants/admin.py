from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import DelegationGrant, Membership, ServiceProvider, Tenant, User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changes go through services (with audit events); the admin only shows."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class StaffUserAdmin(ReadOnlyAdmin, UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Vouchsafe", {"fields": ("person_id", "locked_until")}))
    readonly_fields = ("locked_until",)


admin.site.register(Tenant, ReadOnlyAdmin)
admin.site.register(ServiceProvider, ReadOnlyAdmin)
admin.site.register(Membership, ReadOnlyAdmin)
admin.site.register(DelegationGrant, ReadOnlyAdmin)

"""The Django admin shows and never changes: writes go through services, with audit events.

Every model registered here, ours and the third-party ones django-otp, auditlog and auth
register themselves, gets a read-only admin (no add, change or delete, no actions). Secret
fields (TOTP seeds, emailed codes, password hashes; backup codes live in StaticToken, which has
no page) are never rendered: each admin lists the fields it shows. tests/tenants/
test_admin_read_only.py walks every registered model.
"""

from __future__ import annotations

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import DelegationGrant, Membership, ServiceProvider, Tenant, User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changes go through services (with audit events); the admin only shows."""

    actions = None  # not even "delete selected"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class StaffUserAdmin(ReadOnlyAdmin, UserAdmin):
    # UserAdmin's fieldsets without the password hash.
    fieldsets = (
        (None, {"fields": ("username",)}),
        *UserAdmin.fieldsets[1:],
        ("Vouchsafe", {"fields": ("person_id", "locked_until")}),
    )
    readonly_fields = ("locked_until",)


admin.site.register(Tenant, ReadOnlyAdmin)
admin.site.register(ServiceProvider, ReadOnlyAdmin)
admin.site.register(Membership, ReadOnlyAdmin)
admin.site.register(DelegationGrant, ReadOnlyAdmin)

# --- third-party models, registered by their own apps with add/change/delete ----------------

_DEVICE_FIELDS = (
    "user",
    "name",
    "confirmed",
    "created_at",
    "last_used_at",
    "throttling_failure_timestamp",
    "throttling_failure_count",
)
_DEVICE_LIST = ("user", "name", "confirmed", "last_used_at")


class TOTPDeviceReadOnlyAdmin(ReadOnlyAdmin):
    """Never `key` (the seed), nor the otpauth:// QR code django-otp's admin offers."""

    fields = (*_DEVICE_FIELDS, "step", "digits", "tolerance", "drift", "last_t")
    list_display = _DEVICE_LIST
    raw_id_fields = ("user",)


class StaticDeviceReadOnlyAdmin(ReadOnlyAdmin):
    """Backup-code devices, without their codes (django-otp's admin lists them inline)."""

    fields = _DEVICE_FIELDS
    list_display = _DEVICE_LIST
    raw_id_fields = ("user",)


class EmailDeviceReadOnlyAdmin(ReadOnlyAdmin):
    """Never `token` (the code last emailed)."""

    fields = (*_DEVICE_FIELDS, "email", "valid_until")
    list_display = _DEVICE_LIST
    raw_id_fields = ("user",)


class GroupReadOnlyAdmin(ReadOnlyAdmin, GroupAdmin):
    pass


class LogEntryReadOnlyAdmin(ReadOnlyAdmin, LogEntryAdmin):
    pass


for _model, _admin in (
    (TOTPDevice, TOTPDeviceReadOnlyAdmin),
    (StaticDevice, StaticDeviceReadOnlyAdmin),
    (EmailDevice, EmailDeviceReadOnlyAdmin),
    (Group, GroupReadOnlyAdmin),
    (LogEntry, LogEntryReadOnlyAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)

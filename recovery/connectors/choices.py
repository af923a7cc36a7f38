from django.db import models
from django.utils.translation import gettext_lazy as _


class ConnectorKind(models.TextChoices):
    """How a tenant's recoveries reach its directory."""

    MANUAL = "manual", _("Manual: the agent follows the steps in the directory's own console")
    LDAP = "ldap", _("LDAP / Active Directory")
    WEBHOOK = "webhook", _("Webhook to the tenant's automation")
    ENTRA = "entra", _("Microsoft Entra ID (Microsoft Graph)")
    OKTA = "okta", _("Okta")
    GOOGLE = "google_workspace", _("Google Workspace (Admin SDK)")


class Directory(models.TextChoices):
    """Which defaults an LDAP connector starts from."""

    OPENLDAP = "openldap", _("OpenLDAP (no ppolicy overlay needed)")
    ACTIVE_DIRECTORY = "active_directory", _("Microsoft Active Directory")


class PasswordMode(models.TextChoices):
    """What a password reset writes into the password attribute (the owner never learns it)."""

    LOCK = "lock", _("A locked value no password matches (readable, so revert restores the hash)")
    RANDOM = "random", _("A long random password, discarded at once (Active Directory)")
    NONE = "none", _("Leave the password; only mark it as to be changed")


class ManualConsole(models.TextChoices):
    """The console whose menu paths the manual connector's default steps name."""

    ENTRA = "entra", _("Microsoft Entra admin center")
    ACTIVE_DIRECTORY = "active_directory", _("Active Directory Users and Computers")
    GOOGLE = "google_workspace", _("Google Workspace Admin console")
    GENERIC = "generic", _("The directory's own admin console")

from django.db import models


class ConnectorKind(models.TextChoices):
    """How a tenant's recoveries reach its directory."""

    MANUAL = "manual", "Manual: the agent follows the steps in the directory's own console"
    LDAP = "ldap", "LDAP / Active Directory"
    WEBHOOK = "webhook", "Webhook to the tenant's automation"


class Directory(models.TextChoices):
    """Which defaults an LDAP connector starts from."""

    OPENLDAP = "openldap", "OpenLDAP (no ppolicy overlay needed)"
    ACTIVE_DIRECTORY = "active_directory", "Microsoft Active Directory"


class PasswordMode(models.TextChoices):
    """What a password reset writes into the password attribute (the owner never learns it)."""

    LOCK = "lock", "A locked value no password matches (readable, so revert restores the hash)"
    RANDOM = "random", "A long random password, discarded at once (Active Directory)"
    NONE = "none", "Leave the password; only mark it as to be changed"


class ManualConsole(models.TextChoices):
    """The console whose menu paths the manual connector's default steps name."""

    ENTRA = "entra", "Microsoft Entra admin center"
    ACTIVE_DIRECTORY = "active_directory", "Active Directory Users and Computers"
    GOOGLE = "google_workspace", "Google Workspace Admin console"
    GENERIC = "generic", "The directory's own admin console"

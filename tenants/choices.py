from django.db import models


class Role(models.TextChoices):
    AGENT = "agent", "Agent"
    SUPERVISOR = "supervisor", "Supervisor"
    SECURITY_OFFICER = "security_officer", "Security officer"
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    AUDITOR = "auditor", "Auditor"


class Tier(models.TextChoices):
    T0 = "T0", "T0 standard"
    T1 = "T1", "T1 sensitive"
    T2 = "T2", "T2 privileged"


class CaseType(models.TextChoices):
    PASSWORD_RESET = "password_reset", "Password reset"
    MFA_RESET = "mfa_reset", "MFA reset"
    UNLOCK = "unlock", "Unlock"
    TEMPORARY_ACCESS = "temporary_access", "Temporary access pass"
    MAILBOX_ACCESS = "mailbox_access", "Mailbox access"
    PRIVILEGED_ROLE_RESTORE = "privileged_role_restore", "Privileged role restore"
    EXCEPTION = "exception", "Exception"


class GrantStatus(models.TextChoices):
    PENDING = "pending", "Pending tenant approval"
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"

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


class PrincipalKind(models.TextChoices):
    """Who a user row stands for: a person, or a non-human API principal (R-63, R-64)."""

    HUMAN = "human", "Human"
    INTEGRATION = "integration", "Integration"
    AI_ASSISTANT = "ai_assistant", "AI assistant"


class Scope(models.TextChoices):
    """What an API key may do; staff sessions are limited by their roles instead."""

    ACCOUNTS_READ = "accounts:read", "Read accounts"
    ACCOUNTS_SYNC = "accounts:sync", "Upsert accounts from a system of record"
    CASES_READ = "cases:read", "Read cases, timelines and attachments"
    CASES_WRITE = "cases:write", "Open and work cases (evidence, submit, cancel)"
    CASES_DRAFT = "cases:draft", "Draft a case and attach a summary (AI assistants)"
    POLICY_READ = "policy:read", "Read, validate and simulate policy"
    AUDIT_READ = "audit:read", "Read and export the audit trail"
    ALERTS_READ = "alerts:read", "Read alerts"
    EVENTS_INGEST = "events:ingest", "Send identity and security events"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage webhook subscriptions"
    GRANTS_READ = "grants:read", "Read delegation grants"


# An AI assistant reads, drafts and summarises; it never approves, executes, accepts evidence,
# changes tier or policy. Keys for one cannot carry any other scope.
AI_ASSISTANT_SCOPES = frozenset(
    {
        Scope.ACCOUNTS_READ,
        Scope.CASES_READ,
        Scope.CASES_DRAFT,
        Scope.POLICY_READ,
        Scope.ALERTS_READ,
    }
)

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    AGENT = "agent", _("Agent")
    SUPERVISOR = "supervisor", _("Supervisor")
    SECURITY_OFFICER = "security_officer", _("Security officer")
    TENANT_ADMIN = "tenant_admin", _("Tenant admin")
    AUDITOR = "auditor", _("Auditor")
    TRUSTED_REFEREE = "trusted_referee", _("Trusted referee")


class Tier(models.TextChoices):
    T0 = "T0", _("T0 standard")
    T1 = "T1", _("T1 sensitive")
    T2 = "T2", _("T2 privileged")


class CaseType(models.TextChoices):
    PASSWORD_RESET = "password_reset", _("Password reset")
    MFA_RESET = "mfa_reset", _("MFA reset")
    UNLOCK = "unlock", _("Unlock")
    TEMPORARY_ACCESS = "temporary_access", _("Temporary access pass")
    MAILBOX_ACCESS = "mailbox_access", _("Mailbox access")
    PRIVILEGED_ROLE_RESTORE = "privileged_role_restore", _("Privileged role restore")
    EXCEPTION = "exception", _("Exception")


class GrantStatus(models.TextChoices):
    PENDING = "pending", _("Pending tenant approval")
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")


class PrincipalKind(models.TextChoices):
    """Who a user row stands for: a person, or a non-human API principal (R-63, R-64)."""

    HUMAN = "human", _("Human")
    INTEGRATION = "integration", _("Integration")
    AI_ASSISTANT = "ai_assistant", _("AI assistant")


class Scope(models.TextChoices):
    """What an API key may do; staff sessions are limited by their roles instead."""

    ACCOUNTS_READ = "accounts:read", _("Read accounts")
    ACCOUNTS_SYNC = "accounts:sync", _("Upsert accounts from a system of record")
    CASES_READ = "cases:read", _("Read cases, timelines and attachments")
    CASES_WRITE = "cases:write", _("Open and work cases (evidence, submit, cancel)")
    CASES_DRAFT = "cases:draft", _("Draft a case and attach a summary (AI assistants)")
    CASES_EXECUTE_T0 = "cases:execute_t0", _("Execute ready T0 cases (never T1/T2)")
    POLICY_READ = "policy:read", _("Read, validate and simulate policy")
    AUDIT_READ = "audit:read", _("Read and export the audit trail")
    ALERTS_READ = "alerts:read", _("Read alerts")
    EVENTS_INGEST = "events:ingest", _("Send identity and security events")
    WEBHOOKS_MANAGE = "webhooks:manage", _("Manage webhook subscriptions")
    GRANTS_READ = "grants:read", _("Read delegation grants")


# Scopes a tenant admin grants by naming them: no "all scopes" set of ours includes them.
# A key executes only T0 cases, and only with cases:execute_t0 (T1/T2 need a person, R-23).
EXPLICIT_GRANT_SCOPES = frozenset({Scope.CASES_EXECUTE_T0})

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

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    AGENT = "agent", _("Agent")
    SUPERVISOR = "supervisor", _("Supervisor")
    SECURITY_OFFICER = "security_officer", _("Security officer")
    TENANT_ADMIN = "tenant_admin", _("Tenant admin")
    AUDITOR = "auditor", _("Auditor")
    TRUSTED_REFEREE = "trusted_referee", _("Trusted referee")
    AUDIT_ADMIN = "audit_admin", _("Audit admin")


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
    """What an API key may do. A staff session holds the scopes its roles imply (ROLE_SCOPES)."""

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


class StepUpKind(models.TextChoices):
    """What a step-up was made with. A passkey is phishing-resistant (bound to our origin)."""

    PASSKEY = "passkey", _("Passkey")
    TOTP = "totp", _("Authenticator app code")


class StaffPasskeyStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended (possible copy)")
    REMOVED = "removed", _("Removed")


class PasskeyReplacementStatus(models.TextChoices):
    REQUESTED = "requested", _("Waiting for a second staff member")
    APPROVED = "approved", _("Approved: a new passkey may be registered")
    USED = "used", _("Used")
    CANCELLED = "cancelled", _("Cancelled")


class StaffScope(models.TextChoices):
    """What only a person may do over the API: no key can hold one (R-23, R-63, R-64)."""

    CASES_TAKE = "cases:take", _("Take an AI-drafted case")
    CASES_DECIDE = "cases:decide", _("Approve or deny cases")
    CASES_EXECUTE = "cases:execute", _("Execute ready cases (T1/T2 with a fresh step-up)")
    ATTENDED_RUN = "attended:run", _("Start and run attended identity sessions")
    OWNER_ENROL = "owner:enrol", _("Invite an account's owner to enrol")
    SETTINGS_WRITE = "settings:write", _("Draft and activate policy and owner sign-in settings")
    KEYS_MANAGE = "keys:manage", _("Issue and revoke API keys")
    SECURITY_RESPOND = (
        "security:respond",
        _("Work alerts and use the incident switches (AI off, recovery freeze)"),
    )


# The scopes a staff session holds in a tenant: the union over its roles there (through a
# membership or a delegation grant). The API checks them on every route as it checks a key's;
# the services still decide each act (tier, grant, separation of duties). Each row agrees with
# the policy the console applies to the same pages (tests/api/test_permission_matrix_roles.py).
_CASE_WORK = frozenset(
    {
        Scope.ACCOUNTS_READ,
        Scope.CASES_READ,
        Scope.CASES_WRITE,
        Scope.CASES_DRAFT,
        StaffScope.CASES_TAKE,
        StaffScope.CASES_EXECUTE,
    }
)
_OVERSIGHT = frozenset({Scope.POLICY_READ, Scope.AUDIT_READ, Scope.ALERTS_READ, Scope.GRANTS_READ})
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.AGENT: _CASE_WORK | {StaffScope.OWNER_ENROL},
    Role.SUPERVISOR: _CASE_WORK | {StaffScope.CASES_DECIDE},
    Role.SECURITY_OFFICER: _CASE_WORK
    | _OVERSIGHT
    | {
        StaffScope.CASES_DECIDE,
        StaffScope.ATTENDED_RUN,
        StaffScope.SECURITY_RESPOND,
        Scope.EVENTS_INGEST,
    },
    Role.TENANT_ADMIN: _OVERSIGHT
    | {
        Scope.ACCOUNTS_READ,
        Scope.ACCOUNTS_SYNC,
        Scope.EVENTS_INGEST,
        Scope.WEBHOOKS_MANAGE,
        StaffScope.OWNER_ENROL,
        StaffScope.SETTINGS_WRITE,
        StaffScope.KEYS_MANAGE,
        StaffScope.SECURITY_RESPOND,  # the incident switches (alerts: security officers only)
    },
    Role.AUDITOR: _OVERSIGHT | {Scope.ACCOUNTS_READ, Scope.CASES_READ},
    Role.TRUSTED_REFEREE: frozenset({Scope.CASES_READ, StaffScope.ATTENDED_RUN}),
    # Audit administration: the trail, its exports and evidence bundles (all under
    # audit:read) and, in the console, integrity acknowledgements (audit.integrity) and the
    # trail's retention, legal holds and purges (audit.retention), each privileged act with a
    # passkey step-up. No casework, no settings.
    Role.AUDIT_ADMIN: frozenset({Scope.AUDIT_READ}),
}


def role_scopes(roles: frozenset[str]) -> frozenset[str]:
    """The scopes a staff session with `roles` holds: exactly what its roles imply."""
    return frozenset().union(*(ROLE_SCOPES[role] for role in roles if role in ROLE_SCOPES))


class RouteKind(models.TextChoices):
    """Where a tenant's alerts are sent (issue 16 part 4)."""

    EMAIL = "email", _("Email (a security contact)")
    WEBHOOK = "webhook", _("Signed webhook (JSON, HMAC-SHA256)")
    SLACK = "slack", _("Slack incoming webhook")
    TEAMS = "teams", _("Microsoft Teams incoming webhook")


class RouteStatus(models.TextChoices):
    """An alert route's life: every step past a proposal takes a second tenant admin."""

    PROPOSED = "proposed", _("Proposed (awaiting a second admin)")
    ACTIVE = "active", _("Active")
    REMOVAL_PROPOSED = "removal_proposed", _("Active; removal awaiting a second admin")
    REMOVED = "removed", _("Removed")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


# The routes that carry messages: one whose removal is still being decided keeps working.
DELIVERING_ROUTE_STATUSES = (RouteStatus.ACTIVE, RouteStatus.REMOVAL_PROPOSED)

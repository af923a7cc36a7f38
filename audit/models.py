import pgtrigger
from auditlog.models import LogEntry
from django.db import models

from .context import ActorType


def _no_truncate() -> pgtrigger.Trigger:
    return pgtrigger.Trigger(
        name="no_truncate",
        operation=pgtrigger.Truncate,
        level=pgtrigger.Statement,
        when=pgtrigger.Before,
        func="RAISE EXCEPTION 'audit table % is append-only: TRUNCATE refused', TG_TABLE_NAME;",
    )


def _append_only() -> list[pgtrigger.Trigger]:
    return [
        pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        _no_truncate(),
    ]


# A row is deleted only by `audit_purge_through` (migration 0006, SECURITY DEFINER, the app
# role's only way): it names the tenant and the last seq it removes in `vouchsafe.audit_purge`
# for its own statement. Any other DELETE, by any role, is refused.
_PURGE_ONLY = """
IF OLD.tenant_id IS NOT NULL
   AND current_setting('vouchsafe.audit_purge', true) ~ '^[0-9]+:[0-9]+$'
   AND OLD.tenant_id = split_part(current_setting('vouchsafe.audit_purge', true), ':', 1)::bigint
   AND OLD.seq <= split_part(current_setting('vouchsafe.audit_purge', true), ':', 2)::bigint
THEN
  RETURN OLD;
END IF;
RAISE EXCEPTION 'audit table % is append-only: DELETE refused outside an approved purge',
  TG_TABLE_NAME;
"""


class AuditEvent(models.Model):
    """One append-only, hash-chained record of something that happened."""

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    seq = models.BigIntegerField()
    action = models.CharField(max_length=100)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor_org = models.CharField(max_length=200, blank=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "seq"],
                condition=models.Q(tenant__isnull=False),
                name="audit_event_tenant_seq_unique",
            ),
            models.UniqueConstraint(
                fields=["seq"],
                condition=models.Q(tenant__isnull=True),
                name="audit_event_platform_seq_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "action"], name="audit_event_tenant_action"),
            models.Index(fields=["tenant", "created_at"], name="audit_event_tenant_time"),
            models.Index(
                fields=["tenant", "target_type", "target_id", "seq"], name="audit_event_target"
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="append_only", operation=pgtrigger.Update),
            pgtrigger.Trigger(
                name="purge_only",
                operation=pgtrigger.Delete,
                when=pgtrigger.Before,
                func=_PURGE_ONLY,
            ),
            _no_truncate(),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.seq}"


class AuditChainHead(models.Model):
    """The last seq and hash of one chain; its row lock serialises writers of that chain."""

    key = models.CharField(max_length=40, primary_key=True)
    tenant = models.OneToOneField(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        triggers = [
            pgtrigger.Protect(name="no_delete", operation=pgtrigger.Delete),
            _no_truncate(),
        ]

    def __str__(self) -> str:
        return f"{self.key} @ {self.seq}"


class ProtectedLogEntry(LogEntry):
    """Carries the append-only triggers for django-auditlog's table (it has no Meta of ours)."""

    class Meta:
        proxy = True
        triggers = _append_only()


class ChainCursor(models.Model):
    """How far one consumer has read a tenant's committed chain (`audit.consumers`).

    The chain is an outbox: a consumer (webhook deliveries, owner notices) reads the tenant's
    committed events after `seq`, writes what they call for and moves `seq` on, in one
    transaction under this row's lock, so each event is read once and none is skipped.
    """

    tenant = models.OneToOneField(
        "tenants.Tenant", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    seq = models.PositiveBigIntegerField(
        default=0, help_text="The last seq of the tenant's chain this consumer has read."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


# The acknowledgement an ack row names must be a platform-chain `audit.integrity_acknowledged`
# event for this chain's current finding: the app role (which may update the row) cannot mark
# a finding acknowledged without leaving that event in the append-only trail, and no one can
# take a finding back off the row.
_INTEGRITY_GUARD = """
IF TG_OP = 'UPDATE' AND OLD.first_bad_seq IS NOT NULL AND NEW.first_bad_seq IS NULL THEN
  RAISE EXCEPTION 'chain integrity of % : a finding cannot be cleared', OLD.key;
END IF;
IF NEW.first_bad_seq IS NOT NULL
   AND NEW.acknowledged_seq IS NOT DISTINCT FROM NEW.first_bad_seq
   AND NEW.acknowledged_reason IS NOT DISTINCT FROM NEW.reason
   AND NOT EXISTS (
     SELECT 1 FROM audit_auditevent e
     WHERE e.tenant_id IS NULL AND e.seq = NEW.acknowledged_event_seq
       AND e.action = 'audit.integrity_acknowledged'
       AND e.data ->> 'key' = NEW.key
       AND e.data ->> 'first_bad_seq' = NEW.first_bad_seq::text
       AND e.data ->> 'reason' = NEW.reason
   ) THEN
  RAISE EXCEPTION 'chain integrity of % : an acknowledgement needs its audit event', NEW.key;
END IF;
RETURN NEW;
"""


class ChainIntegrity(models.Model):
    """What the verifier last found wrong with one chain, and who acknowledged it (audit.integrity).

    One row per chain key (`platform`, `tenant:<id>`), made at its first finding. The finding
    (first_bad_seq, reason, window) is replaced by a different one, never removed. While it is
    not acknowledged (acknowledged_seq/reason differ from it), the chain is *failing*: its tenant
    (every tenant, for the platform chain) refuses T1/T2 executions and policy activations.
    No row level security on purpose: a missing scope must never hide a failing chain.
    """

    key = models.CharField(max_length=40, primary_key=True)
    tenant = models.OneToOneField(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    broken = models.BooleanField(default=False, help_text="What the last verification said.")
    checked_at = models.DateTimeField(help_text="When the last verification reported.")
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    window_start = models.BigIntegerField(null=True, blank=True)
    window_end = models.BigIntegerField(null=True, blank=True)
    detected_at = models.DateTimeField(null=True, blank=True)
    finding_event_seq = models.BigIntegerField(
        null=True, blank=True, help_text="Platform seq of the finding's audit.integrity_violation."
    )
    paged_at = models.DateTimeField(
        null=True, blank=True, help_text="When the finding was paged; empty until it has been."
    )
    acknowledged_by = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_seq = models.BigIntegerField(null=True, blank=True)
    acknowledged_reason = models.TextField(blank=True)
    acknowledged_event_seq = models.BigIntegerField(
        null=True, blank=True, help_text="Platform seq of the audit.integrity_acknowledged."
    )

    class Meta:
        permissions = [
            (
                "acknowledge_platform_integrity",
                "Acknowledge a finding of the platform audit chain (platform audit_admin)",
            )
        ]
        triggers = [
            pgtrigger.Protect(name="no_delete", operation=pgtrigger.Delete),
            _no_truncate(),
            pgtrigger.Trigger(
                name="finding_guard",
                operation=pgtrigger.Insert | pgtrigger.Update,
                when=pgtrigger.Before,
                func=_INTEGRITY_GUARD,
            ),
        ]

    def __str__(self) -> str:
        state = "failing" if self.failing else "trusted"
        return f"{self.key}: {state}"

    @property
    def window(self) -> tuple[int, int] | None:
        if self.window_start is None or self.window_end is None:
            return None
        return (self.window_start, self.window_end)

    @property
    def failing(self) -> bool:
        """A finding nobody has acknowledged (a different finding needs its own)."""
        return self.first_bad_seq is not None and (
            self.acknowledged_seq != self.first_bad_seq or self.acknowledged_reason != self.reason
        )


class AuditRetention(models.Model):
    """How long a tenant keeps its trail online before an audit_admin may purge it (R-48, R-51).

    No row: the deployment's default (`AUDIT_RETENTION_DAYS`). Never below the floor
    (`AUDIT_RETENTION_FLOOR_DAYS`, six months): set by `audit.retention.retention_set`.
    """

    tenant = models.OneToOneField(
        "tenants.Tenant", primary_key=True, on_delete=models.PROTECT, related_name="+"
    )
    days = models.PositiveIntegerField(help_text="Events younger than this are never purged.")
    set_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    set_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.days} days"


class LegalHold(models.Model):
    """While active, a hold keeps the trail from being purged: the whole tenant's (no case) or
    every event of one case (`case_id`). Placed and released by the tenant's audit_admins."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    case_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The held case; empty holds the whole trail."
    )
    reason = models.CharField(max_length=300)
    placed_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField()
    released_by = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "released_at"], name="audit_hold_active")]
        triggers = [
            pgtrigger.Protect(name="no_delete", operation=pgtrigger.Delete),
            _no_truncate(),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} on {self.case_id or 'the trail'}"

    @property
    def active(self) -> bool:
        return self.released_at is None


class PurgeStatus(models.TextChoices):
    REQUESTED = "requested", "Waiting for a second audit admin"
    APPROVED = "approved", "Approved; its checkpoint not yet signed"
    SIGNED = "signed", "Approved and signed; events not yet removed"
    EXECUTED = "executed", "Events removed"
    CANCELLED = "cancelled", "Cancelled"


class AuditPurge(models.Model):
    """A request to remove a tenant chain's oldest events, up to and including `through_seq`,
    and what became of it (`audit.retention`). One audit_admin requests, another approves with
    a passkey step-up; the approval is signed into a checkpoint (`purge` in its statement) that
    verification needs before it accepts a chain starting after seq 1."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=PurgeStatus.choices)
    through_seq = models.PositiveBigIntegerField()
    through_hash = models.CharField(max_length=64, blank=True)
    cutoff = models.DateTimeField(help_text="Only events before this may be removed.")
    reason = models.CharField(max_length=300)
    requested_by = models.ForeignKey("tenants.User", on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    checkpoint_digest = models.CharField(max_length=64, blank=True)
    removed = models.PositiveBigIntegerField(default=0)
    executed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=["requested", "approved", "signed"]),
                name="audit_purge_one_open",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["approved", "signed", "executed"])
                | (
                    models.Q(decided_by__isnull=False)
                    & ~models.Q(decided_by=models.F("requested_by"))
                ),
                name="audit_purge_dual_control",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="no_delete", operation=pgtrigger.Delete),
            _no_truncate(),
        ]

    def __str__(self) -> str:
        return f"purge {self.pk} of {self.tenant_id} through {self.through_seq}: {self.status}"

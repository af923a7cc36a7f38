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
        triggers = _append_only()

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

"""Connector changes under dual control (R-27): one tenant_admin proposes, a second approves.

One pending change per tenant; the proposal never changes once stored (a trigger refuses it);
an applied change was decided by someone other than its requester; row-level security like
every tenant table.
"""

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0022_notice_cursor"),
        ("tenants", "0008_staff_passkeys"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ConnectorChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            (
                                "manual",
                                "Manual: the agent follows the steps in the directory's own "
                                "console",
                            ),
                            ("ldap", "LDAP / Active Directory"),
                            ("webhook", "Webhook to the tenant's automation"),
                        ],
                        max_length=16,
                    ),
                ),
                ("settings", models.JSONField(blank=True, default=dict)),
                ("is_active", models.BooleanField(default=True)),
                ("base_sha256", models.CharField(blank=True, max_length=64)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Waiting for a second tenant admin"),
                            ("applied", "Approved and applied"),
                            ("rejected", "Rejected"),
                            ("withdrawn", "Withdrawn by its requester"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("requested_at", models.DateTimeField(auto_now_add=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("reason", models.CharField(blank=True, max_length=500)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["manual", "ldap", "webhook"])),
                        name="connector_change_kind_known",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("status", "pending")),
                        fields=("tenant",),
                        name="connector_change_one_pending",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("decided_at__isnull", True),
                                ("decided_by__isnull", True),
                                ("status", "pending"),
                            ),
                            models.Q(
                                models.Q(("status", "pending"), _negated=True),
                                ("decided_at__isnull", False),
                                ("decided_by__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="connector_change_decided_has_decider",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("status", "applied"), _negated=True),
                            models.Q(("decided_by", models.F("requested_by")), _negated=True),
                            _connector="OR",
                        ),
                        name="connector_change_applier_is_second_person",
                    ),
                ],
            },
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="connectorchange",
            trigger=pgtrigger.compiler.Trigger(
                name="connector_change_proposal_immutable",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition='WHEN (OLD."base_sha256" IS DISTINCT FROM (NEW."base_sha256") OR OLD."is_active" IS DISTINCT FROM (NEW."is_active") OR OLD."kind" IS DISTINCT FROM (NEW."kind") OR OLD."requested_at" IS DISTINCT FROM (NEW."requested_at") OR OLD."requested_by_id" IS DISTINCT FROM (NEW."requested_by_id") OR OLD."settings" IS DISTINCT FROM (NEW."settings") OR OLD."tenant_id" IS DISTINCT FROM (NEW."tenant_id"))',
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update rows from % table', TG_TABLE_NAME;",
                    hash="d4fcf1a359992b5a9d5c23798b6f1501b0cbf2ff",
                    operation="UPDATE",
                    pgid="pgtrigger_connector_change_proposal_immutable_53856",
                    table="recovery_connectorchange",
                    when="BEFORE",
                ),
            ),
        ),
        enable_rls("recovery_connectorchange"),
    ]

# Issue 13: approvals expire; a passkey step-up is bound to the case snapshot by a
# server-issued, single-use challenge.

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import F

from tenants.rls import enable_rls


def backfill_expires_at(apps, schema_editor):
    """Approvals given before expiry existed live the platform default (24 h) from their making."""
    Approval = apps.get_model("recovery", "Approval")
    Approval.objects.filter(expires_at__isnull=True).update(
        expires_at=F("created_at") + timedelta(hours=24)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0018_execution_privileged"),
        ("tenants", "0007_verifiers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="approval",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(backfill_expires_at, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="approval",
            name="expires_at",
            field=models.DateTimeField(
                help_text=(
                    "After this the approval counts for nothing (policy approval_lifetime_seconds)."
                )
            ),
        ),
        migrations.AlterField(
            model_name="approval",
            name="step_up",
            field=models.JSONField(
                help_text=(
                    "The approver's fresh step-up; a passkey's assertion is kept whole (R-47)."
                )
            ),
        ),
        migrations.AlterField(
            model_name="caseexecution",
            name="step_up",
            field=models.JSONField(
                blank=True,
                help_text=(
                    "The executor's fresh passkey step-up for this execution, its assertion whole."
                ),
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="StepUpChallenge",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("action", models.CharField(max_length=16)),
                ("snapshot_hash", models.CharField(max_length=64)),
                ("nonce", models.CharField(max_length=64, unique=True)),
                (
                    "challenge",
                    models.CharField(help_text="Hex SHA-256.", max_length=64, unique=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField()),
                ("spent_at", models.DateTimeField(blank=True, null=True)),
                ("cancelled_at", models.DateTimeField(blank=True, null=True)),
                (
                    "case",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.recoverycase",
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
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["user", "spent_at"], name="stepup_challenge_user")
                ],
            },
        ),
        enable_rls("recovery_stepupchallenge"),
    ]

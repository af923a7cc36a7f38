# ruff: noqa: E501
"""R-19: a privileged_role_restore case grants the suspended roles back for a time box only
(`regrant_seconds` on the case, `regrant_until` on the suspension); the expiry sweep removes
them again and the account is suspended again."""

from datetime import timedelta

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F


def box_earlier_restores(apps, schema_editor):
    """A restore recorded before the time box existed gets the platform default's 7 days from
    its restore (none exists outside development databases: 0027 and this one ship together).
    Python arithmetic, so the embedded SQLite database migrates as PostgreSQL does."""
    suspensions = apps.get_model("recovery", "RoleSuspension")
    suspensions.objects.filter(restored_at__isnull=False, regrant_until__isnull=True).update(
        regrant_until=F("restored_at") + timedelta(days=7)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0029_mailbox_delegation"),
    ]

    operations = [
        migrations.AddField(
            model_name="recoverycase",
            name="regrant_seconds",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="privileged_role_restore only: how long the suspended roles are granted back (R-19, within the policy's role_regrant_max_seconds); then removed again.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="rolesuspension",
            name="follows",
            field=models.ForeignKey(
                blank=True,
                help_text="The suspension whose time-boxed re-grant ended when this one began.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="recovery.rolesuspension",
            ),
        ),
        migrations.AddField(
            model_name="rolesuspension",
            name="regrant_ended_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="rolesuspension",
            name="regrant_lease_until",
            field=models.DateTimeField(
                blank=True,
                help_text="An expiry sweep is removing the roles until then.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="rolesuspension",
            name="regrant_until",
            field=models.DateTimeField(
                blank=True, help_text="When the roles granted back are removed again.", null=True
            ),
        ),
        migrations.RunPython(box_earlier_restores, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="rolesuspension",
            index=models.Index(
                condition=models.Q(
                    ("regrant_ended_at__isnull", True), ("restored_at__isnull", False)
                ),
                fields=["regrant_until"],
                name="role_regrant_due",
            ),
        ),
        migrations.AddConstraint(
            model_name="recoverycase",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("regrant_seconds__isnull", True),
                    models.Q(
                        ("case_type", "privileged_role_restore"), ("regrant_seconds__gte", 3600)
                    ),
                    _connector="OR",
                ),
                name="case_regrant_only_for_restore",
            ),
        ),
        migrations.AddConstraint(
            model_name="rolesuspension",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("restored_at__isnull", True), ("regrant_until__isnull", False), _connector="OR"
                ),
                name="role_suspension_regrant_time_boxed",
            ),
        ),
    ]

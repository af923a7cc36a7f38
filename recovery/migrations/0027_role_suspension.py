"""T2 standing privileged roles suspended at execution and restored by a
privileged_role_restore case (R-19)."""

import django.db.models.deletion
from django.db import migrations, models

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("recovery", "0026_window"), ("tenants", "0008_staff_passkeys")]

    operations = [
        migrations.CreateModel(
            name="RoleSuspension",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("connector", models.CharField(max_length=16)),
                (
                    "snapshot",
                    models.JSONField(
                        blank=True,
                        help_text="The connector's snapshot of the roles (what a restore grants "
                        "back); empty when the connector could not read them (a person removed "
                        "them).",
                        null=True,
                    ),
                ),
                ("suspended_at", models.DateTimeField(auto_now_add=True)),
                ("restored_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.protectedaccount",
                    ),
                ),
                (
                    "case",
                    models.ForeignKey(
                        help_text="The T2 recovery that suspended the roles.",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="recovery.recoverycase",
                    ),
                ),
                (
                    "restore_case",
                    models.ForeignKey(
                        blank=True,
                        null=True,
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
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("restored_at__isnull", True)),
                        fields=("account",),
                        name="role_suspension_one_active_per_account",
                    )
                ],
            },
        ),
        enable_rls("recovery_rolesuspension"),
    ]

"""Owner notices are planned from the committed audit chain: one cursor per tenant.

Existing tenants start at their chain head: their events so far already planned their notices
in the event's transaction, the way notices worked before.
"""

import django.db.models.deletion
from django.db import migrations, models

from tenants.rls import enable_rls


def cursors_at_heads(apps, schema_editor):
    heads = apps.get_model("audit", "AuditChainHead")
    cursors = apps.get_model("recovery", "NoticeCursor")
    cursors.objects.bulk_create(
        cursors(tenant_id=tenant_id, seq=seq)
        for tenant_id, seq in heads.objects.filter(tenant_id__isnull=False).values_list(
            "tenant_id", "seq"
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_event_target_index"),
        ("recovery", "0021_case_pending_queue"),
        ("tenants", "0008_staff_passkeys"),
    ]

    operations = [
        migrations.CreateModel(
            name="NoticeCursor",
            fields=[
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="tenants.tenant",
                    ),
                ),
                (
                    "seq",
                    models.PositiveBigIntegerField(
                        default=0,
                        help_text="The last seq of the tenant's chain this consumer has read.",
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        enable_rls("recovery_noticecursor"),
        migrations.RunPython(cursors_at_heads, migrations.RunPython.noop),
    ]

"""Containment after a cloud recovery (R-34): the owner's one-time pass (its id and times,
never the pass), when containment ran, and the steps left for a person."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0024_cloud_connector_kinds"),
    ]

    operations = [
        migrations.AddField(
            model_name="caseexecution",
            name="temporary_pass",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="caseexecution",
            name="containment_done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="caseexecution",
            name="containment_steps",
            field=models.JSONField(blank=True, default=list),
        ),
    ]

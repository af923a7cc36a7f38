"""A repudiation reverts the whole account through the connector, step by step (R-37, R-41)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recovery", "0027_role_suspension")]

    operations: list = [
        migrations.AddField(
            model_name="caseexecution",
            name="revert_ran_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="caseexecution",
            name="revert_steps",
            field=models.JSONField(blank=True, default=list),
        ),
    ]

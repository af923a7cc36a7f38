from django.db import migrations, models


class Migration(migrations.Migration):
    """The approval queue's index: a tenant's pending cases in queue order (issue 13 item 5)."""

    dependencies = [
        ("recovery", "0020_policy_text_immutable"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="recoverycase",
            index=models.Index(
                condition=models.Q(("status", "pending_approval")),
                fields=["tenant", "submitted_at", "id"],
                name="case_pending_queue",
            ),
        ),
    ]

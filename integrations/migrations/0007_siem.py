"""A SIEM destination per tenant and its cursor in the tenant's audit chain (R-51).

A new cursor starts at seq 0: a destination receives the tenant's whole chain, oldest first.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("integrations", "0006_ingest_window_kinds")]

    operations = [
        migrations.CreateModel(
            name="SiemCursor",
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
            options={"abstract": False},
        ),
        migrations.CreateModel(
            name="SiemDestination",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "host",
                    models.CharField(
                        help_text="DNS name or IP address of the collector.", max_length=253
                    ),
                ),
                (
                    "port",
                    models.PositiveIntegerField(
                        help_text="TCP port of its syslog-over-TLS listener."
                    ),
                ),
                (
                    "format",
                    models.CharField(
                        choices=[("cef", "CEF"), ("ocsf", "OCSF JSON")],
                        max_length=8,
                    ),
                ),
                (
                    "ca_pem",
                    models.TextField(
                        help_text="PEM CA certificate(s) the collector's certificate must chain to."
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "failures",
                    models.PositiveIntegerField(
                        default=0, help_text="Failed attempts since the last one that got through."
                    ),
                ),
                ("failing_since", models.DateTimeField(blank=True, null=True)),
                ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_success_at", models.DateTimeField(blank=True, null=True)),
                (
                    "next_attempt_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="While failing: no attempt before this time.",
                        null=True,
                    ),
                ),
                ("last_error", models.CharField(blank=True, max_length=500)),
                (
                    "created_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
        ),
        enable_rls("integrations_siemcursor"),
        enable_rls("integrations_siemdestination"),
    ]

"""The cloud connectors: Microsoft Entra ID, Okta and Google Workspace become known kinds."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0023_connector_change"),
        ("tenants", "0008_staff_passkeys"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="connectorchange",
            name="connector_change_kind_known",
        ),
        migrations.RemoveConstraint(
            model_name="connectorconfig",
            name="connector_kind_known",
        ),
        migrations.AlterField(
            model_name="connectorchange",
            name="kind",
            field=models.CharField(
                choices=[
                    (
                        "manual",
                        "Manual: the agent follows the steps in the directory's own console",
                    ),
                    ("ldap", "LDAP / Active Directory"),
                    ("webhook", "Webhook to the tenant's automation"),
                    ("entra", "Microsoft Entra ID (Microsoft Graph)"),
                    ("okta", "Okta"),
                    ("google_workspace", "Google Workspace (Admin SDK)"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="connectorconfig",
            name="kind",
            field=models.CharField(
                choices=[
                    (
                        "manual",
                        "Manual: the agent follows the steps in the directory's own console",
                    ),
                    ("ldap", "LDAP / Active Directory"),
                    ("webhook", "Webhook to the tenant's automation"),
                    ("entra", "Microsoft Entra ID (Microsoft Graph)"),
                    ("okta", "Okta"),
                    ("google_workspace", "Google Workspace (Admin SDK)"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="connectorchange",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind__in", ["manual", "ldap", "webhook", "entra", "okta", "google_workspace"])
                ),
                name="connector_change_kind_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="connectorconfig",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind__in", ["manual", "ldap", "webhook", "entra", "okta", "google_workspace"])
                ),
                name="connector_kind_known",
            ),
        ),
    ]

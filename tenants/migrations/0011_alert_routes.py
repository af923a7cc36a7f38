"""Alert routes (issue 16 part 4): the tenant's security contact becomes an email route.

A tenant's `security_contact_email` is carried over as an active email route with no proposer
or approver (it was set before routes took two admins); reversing puts the oldest active
email route back in the field.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from tenants.rls import enable_rls


def contacts_carried_over(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    AlertRoute = apps.get_model("tenants", "AlertRoute")
    AlertRoute.objects.bulk_create(
        AlertRoute(
            tenant_id=tenant_id,
            kind="email",
            target=address,
            label="Security contact",
            status="active",
        )
        for tenant_id, address in Tenant.objects.exclude(security_contact_email="").values_list(
            "id", "security_contact_email"
        )
    )


def contacts_put_back(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    AlertRoute = apps.get_model("tenants", "AlertRoute")
    routes = AlertRoute.objects.filter(kind="email", status="active").order_by("-pk")
    for tenant_id, address in routes.values_list("tenant_id", "target"):
        Tenant.objects.filter(pk=tenant_id).update(security_contact_email=address)


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0010_incident_control'),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertRoute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('email', 'Email (a security contact)'), ('webhook', 'Signed webhook (JSON, HMAC-SHA256)'), ('slack', 'Slack incoming webhook'), ('teams', 'Microsoft Teams incoming webhook')], max_length=16)),
                ('target', models.CharField(help_text='An email address, or the https URL of the webhook.', max_length=2000)),
                ('label', models.CharField(blank=True, help_text='Who or what it reaches.', max_length=100)),
                ('secret', models.CharField(blank=True, help_text='HMAC-SHA256 key of a signed webhook route.', max_length=128)),
                ('status', models.CharField(choices=[('proposed', 'Proposed (awaiting a second admin)'), ('active', 'Active'), ('removal_proposed', 'Active; removal awaiting a second admin'), ('removed', 'Removed'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn')], default='proposed', max_length=16)),
                ('requested_at', models.DateTimeField(auto_now_add=True)),
                ('approved_at', models.DateTimeField(blank=True, null=True)),
                ('removal_requested_at', models.DateTimeField(blank=True, null=True)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('reason', models.CharField(blank=True, max_length=300)),
                ('approved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('decided_by', models.ForeignKey(blank=True, help_text='Who removed, rejected or withdrew it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('removal_requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('requested_by', models.ForeignKey(blank=True, help_text='Empty only for a security contact carried over from the earlier setting.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('status__in', ['proposed', 'active', 'removal_proposed'])), fields=('tenant', 'kind', 'target'), name='alert_route_once'), models.CheckConstraint(condition=models.Q(('approved_by__isnull', True), ('requested_by__isnull', True), models.Q(('approved_by', models.F('requested_by')), _negated=True), _connector='OR'), name='alert_route_second_approver'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'removed'), _negated=True), ('removal_requested_by__isnull', True), models.Q(('decided_by', models.F('removal_requested_by')), _negated=True), _connector='OR'), name='alert_route_second_remover')],
            },
        ),
        migrations.RunPython(contacts_carried_over, contacts_put_back),
        enable_rls("tenants_alertroute"),
        migrations.RemoveField(
            model_name='tenant',
            name='security_contact_email',
        ),
    ]

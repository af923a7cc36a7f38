"""The re-establishment window after a recovery (R-35): one row per account holding the recovery
that opened it and the poll's cursor, and one row per change reported inside it.

Accounts already inside a window (`restricted_until` ahead) get their row from their latest
execution, so their changes are acted on from the first round.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from tenants.rls import enable_rls


def windows_open_now(apps, schema_editor):
    accounts = apps.get_model("recovery", "ProtectedAccount")
    executions = apps.get_model("recovery", "CaseExecution")
    windows = apps.get_model("recovery", "ReestablishmentWindow")
    for account in accounts.objects.filter(restricted_until__gt=timezone.now()):
        latest = (
            executions.objects.filter(case__account=account).order_by("-executed_at").first()
        )
        if latest is not None:
            windows.objects.create(
                tenant_id=account.tenant_id,
                account=account,
                case_id=latest.case_id,
                opened_at=latest.executed_at,
                polled_until=latest.executed_at,
            )


class Migration(migrations.Migration):

    dependencies = [
        ('recovery', '0025_containment'),
        ('tenants', '0008_staff_passkeys'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReestablishmentWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('opened_at', models.DateTimeField(help_text="The execution that opened it; earlier changes are not the window's.")),
                ('polled_until', models.DateTimeField(help_text="The connector's changes up to here have been read.")),
                ('lease_until', models.DateTimeField(blank=True, help_text='A poll of this window is running until then.', null=True)),
                ('account', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='recovery.protectedaccount')),
                ('case', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='recovery.recoverycase')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
            ],
        ),
        migrations.CreateModel(
            name='WindowChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('vendor_id', models.CharField(help_text="The provider's event id (an ingested event's external id).", max_length=255)),
                ('kind', models.CharField(choices=[('mfa_enrolled', 'mfa_enrolled'), ('address_changed', 'address_changed'), ('mailbox_rule', 'mailbox_rule'), ('delegate_granted', 'delegate_granted'), ('oauth_consent', 'oauth_consent'), ('privileged_role', 'privileged_role')], max_length=32)),
                ('occurred_at', models.DateTimeField()),
                ('source', models.CharField(choices=[('ingest', 'An event an integration sent'), ('poll', "The connector's change log, read by the window poll")], max_length=16)),
                ('summary', models.CharField(blank=True, max_length=300)),
                ('target', models.JSONField(blank=True, default=dict, help_text='What undoing it needs.')),
                ('ingested_event', models.BigIntegerField(blank=True, null=True)),
                ('reported_at', models.DateTimeField(auto_now_add=True)),
                ('outcome', models.CharField(choices=[('pending', 'Reported; the undo has not been tried yet'), ('undone', 'Undone by the connector'), ('manual', "A person must undo it in the directory's console")], default='pending', max_length=16)),
                ('acted_at', models.DateTimeField(blank=True, null=True)),
                ('answer', models.JSONField(blank=True, default=dict, help_text="The connector's answer.")),
                ('manual_step', models.TextField(blank=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='recovery.protectedaccount')),
                ('case', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='recovery.recoverycase')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('outcome', 'pending')), fields=['reported_at'], name='window_change_pending')],
                'constraints': [models.UniqueConstraint(fields=('account', 'vendor_id'), name='window_change_once_per_vendor_event')],
            },
        ),
        enable_rls("recovery_reestablishmentwindow"),
        enable_rls("recovery_windowchange"),
        migrations.RunPython(windows_open_now, migrations.RunPython.noop),
    ]

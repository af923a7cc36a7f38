import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_event_target_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ChainIntegrity',
            fields=[
                ('key', models.CharField(max_length=40, primary_key=True, serialize=False)),
                ('broken', models.BooleanField(default=False, help_text='What the last verification said.')),
                ('checked_at', models.DateTimeField(help_text='When the last verification reported.')),
                ('first_bad_seq', models.BigIntegerField(blank=True, null=True)),
                ('reason', models.TextField(blank=True)),
                ('window_start', models.BigIntegerField(blank=True, null=True)),
                ('window_end', models.BigIntegerField(blank=True, null=True)),
                ('detected_at', models.DateTimeField(blank=True, null=True)),
                ('finding_event_seq', models.BigIntegerField(blank=True, help_text="Platform seq of the finding's audit.integrity_violation.", null=True)),
                ('paged_at', models.DateTimeField(blank=True, help_text='When the finding was paged; empty until it has been.', null=True)),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('acknowledged_seq', models.BigIntegerField(blank=True, null=True)),
                ('acknowledged_reason', models.TextField(blank=True)),
                ('acknowledged_event_seq', models.BigIntegerField(blank=True, help_text='Platform seq of the audit.integrity_acknowledged.', null=True)),
                ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tenant', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
            ],
            options={
                'permissions': [('acknowledge_platform_integrity', 'Acknowledge a finding of the platform audit chain (platform audit_admin)')],
            },
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='chainintegrity',
            trigger=pgtrigger.compiler.Trigger(name='no_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot delete rows from % table', TG_TABLE_NAME;", hash='d6111ec7fd7073268385f5ffbc18200b31831cd4', operation='DELETE', pgid='pgtrigger_no_delete_2d9e5', table='audit_chainintegrity', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='chainintegrity',
            trigger=pgtrigger.compiler.Trigger(name='no_truncate', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'audit table % is append-only: TRUNCATE refused', TG_TABLE_NAME;", hash='ede5ec95277a4a860dad339562f754e252f573b6', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_no_truncate_b8198', table='audit_chainintegrity', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='chainintegrity',
            trigger=pgtrigger.compiler.Trigger(name='finding_guard', sql=pgtrigger.compiler.UpsertTriggerSql(func="\nIF TG_OP = 'UPDATE' AND OLD.first_bad_seq IS NOT NULL AND NEW.first_bad_seq IS NULL THEN\n  RAISE EXCEPTION 'chain integrity of % : a finding cannot be cleared', OLD.key;\nEND IF;\nIF NEW.first_bad_seq IS NOT NULL\n   AND NEW.acknowledged_seq IS NOT DISTINCT FROM NEW.first_bad_seq\n   AND NEW.acknowledged_reason IS NOT DISTINCT FROM NEW.reason\n   AND NOT EXISTS (\n     SELECT 1 FROM audit_auditevent e\n     WHERE e.tenant_id IS NULL AND e.seq = NEW.acknowledged_event_seq\n       AND e.action = 'audit.integrity_acknowledged'\n       AND e.data ->> 'key' = NEW.key\n       AND e.data ->> 'first_bad_seq' = NEW.first_bad_seq::text\n       AND e.data ->> 'reason' = NEW.reason\n   ) THEN\n  RAISE EXCEPTION 'chain integrity of % : an acknowledgement needs its audit event', NEW.key;\nEND IF;\nRETURN NEW;\n", hash='1c4057c70d4ef3c8a5733e167861da9e1e56bd6b', operation='INSERT OR UPDATE', pgid='pgtrigger_finding_guard_bb52c', table='audit_chainintegrity', when='BEFORE')),
        ),
    ]

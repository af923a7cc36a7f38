from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_staff_passkeys")]

    operations = [
        migrations.AlterField(
            model_name='membership',
            name='role',
            field=models.CharField(choices=[('agent', 'Agent'), ('supervisor', 'Supervisor'), ('security_officer', 'Security officer'), ('tenant_admin', 'Tenant admin'), ('auditor', 'Auditor'), ('trusted_referee', 'Trusted referee'), ('audit_admin', 'Audit admin')], max_length=32),
        ),
    ]

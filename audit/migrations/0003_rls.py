from django.db import migrations

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_initial"), ("tenants", "0002_rls_function")]
    operations = [
        enable_rls("audit_auditevent", allow_platform_rows=True),
        enable_rls("audit_auditchainhead", allow_platform_rows=True),
    ]

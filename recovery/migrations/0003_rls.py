from django.db import migrations

from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("recovery", "0002_initial"), ("tenants", "0002_rls_function")]
    operations = [enable_rls("recovery_protectedaccount")]

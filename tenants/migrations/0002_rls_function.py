from django.db import migrations

from tenants.rls import install_visible_function


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [install_visible_function()]

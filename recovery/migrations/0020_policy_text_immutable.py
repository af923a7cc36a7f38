"""A policy version's text never changes once stored (tenant, number, format, source, document,
sha256): what was reviewed is what decides, and validated versions can be cached per process."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0019_bound_step_up"),
    ]

    operations = [
        pgtrigger.migrations.AddTrigger(
            model_name="policyversion",
            trigger=pgtrigger.compiler.Trigger(
                name="policy_text_immutable",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition='WHEN (OLD."document" IS DISTINCT FROM (NEW."document") OR OLD."format" IS DISTINCT FROM (NEW."format") OR OLD."number" IS DISTINCT FROM (NEW."number") OR OLD."sha256" IS DISTINCT FROM (NEW."sha256") OR OLD."source" IS DISTINCT FROM (NEW."source") OR OLD."tenant_id" IS DISTINCT FROM (NEW."tenant_id"))',
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update rows from % table', TG_TABLE_NAME;",
                    hash="b3bb73a29ae492940082c05271b4efd3dbae2ab3",
                    operation="UPDATE",
                    pgid="pgtrigger_policy_text_immutable_16f5b",
                    table="recovery_policyversion",
                    when="BEFORE",
                ),
            ),
        ),
    ]

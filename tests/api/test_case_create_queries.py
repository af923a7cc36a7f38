"""Opening a case over the API reads each fact once and writes only what the case needs."""

import pytest

from .. import factories
from .conftest import api

pytestmark = pytest.mark.django_db

# Membership, tenant scope, the account (locked, once), the active policy (once), the
# detection rules (one statement: the account's earlier cases and a push-denial burst, with
# caller identifiers their watch-list entries and reuse too), the incident freeze, the case,
# its chain head and event, and savepoints. Owner notices and webhooks are derived from the
# committed chain by workers.
CREATE_STATEMENTS = 13


def _create(client, tenant, account):
    return client.post(
        api(tenant, "cases/"), {"account_id": account.pk, "case_type": "unlock"}, format="json"
    )


def test_opening_a_case_reads_each_fact_once(acme, acme_api, django_assert_num_queries):
    assert _create(acme_api, acme, factories.make_account(acme)).status_code == 201  # warm
    account = factories.make_account(acme)
    with django_assert_num_queries(CREATE_STATEMENTS) as statements:
        response = _create(acme_api, acme, account)
    assert response.status_code == 201, response.content
    sql = [q["sql"] for q in statements.captured_queries]
    reads_of = {
        table: sum(s.startswith("SELECT") and f'FROM "{table}"' in s for s in sql)
        for table in ("recovery_protectedaccount", "recovery_recoverycase", "audit_auditchainhead")
    }
    assert reads_of == {
        "recovery_protectedaccount": 1,  # locked by case_open; the view does not pre-read it
        "recovery_recoverycase": 1,  # the repeat check; the notice receiver uses the case given
        "audit_auditchainhead": 1,
    }
    assert not [s for s in sql if "auditlog_logentry" in s]  # case.opened is the record
    assert not [s for s in sql if "integrations_webhook" in s]  # derived after commit
    assert not [s for s in sql if "recovery_contactmethod" in s or "ownernotice" in s]  # too
    assert sum('FROM "recovery_policyversion"' in s for s in sql) == 1


def test_opening_a_case_on_another_tenants_account_is_a_404(acme, globex, acme_api):
    response = _create(acme_api, acme, factories.make_account(globex))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"

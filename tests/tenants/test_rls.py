"""Row-level security as the restricted app role: the database filters what the ORM forgot."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from recovery.models import ProtectedAccount

from ..approle import as_app_role
from ..factories import make_account

pytestmark = pytest.mark.django_db


def test_unfiltered_query_as_app_role_returns_no_foreign_rows(app_role, acme, globex):
    mine = {make_account(acme).pk, make_account(acme).pk}
    make_account(globex)
    assert ProtectedAccount.objects.count() == 3  # the owner role sees everything
    with as_app_role([acme.pk]):
        # Deliberately no for_tenant(): the bug RLS exists to contain.
        assert set(ProtectedAccount.objects.values_list("pk", flat=True)) == mine
        assert not ProtectedAccount.objects.filter(tenant=globex).exists()


def test_app_role_without_tenant_scope_sees_nothing(app_role, acme):
    make_account(acme)
    with as_app_role(None):
        assert ProtectedAccount.objects.count() == 0


def test_app_role_cannot_write_rows_into_another_tenant(app_role, acme, globex):
    refused = pytest.raises(DatabaseError, match="row-level security")
    with as_app_role([acme.pk]), refused, transaction.atomic():
        ProtectedAccount.objects.create(
            tenant=globex, external_id="x", username="x", display_name="x"
        )
    assert not ProtectedAccount.objects.filter(tenant=globex).exists()


def test_audit_rows_of_other_tenants_are_invisible_to_app_role(app_role, acme, globex):
    with as_app_role([acme.pk]):
        tenants = set(AuditEvent.objects.exclude(tenant=None).values_list("tenant", flat=True))
    assert tenants == {acme.pk}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'x'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "UPDATE auditlog_logentry SET changes_text = 'x'",
        "DELETE FROM auditlog_logentry",
    ],
)
def test_app_role_has_no_update_delete_or_truncate_on_audit_tables(app_role, acme, statement):
    refused = pytest.raises(DatabaseError, match="permission denied")
    with as_app_role([acme.pk]), refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)

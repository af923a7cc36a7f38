"""django-guardian per-object grants never cross tenants and ignore global model permissions."""

import pytest
from django.contrib.auth.models import Permission

from recovery.selectors import account_get_visible, accounts_with_object_permission
from recovery.services import account_permission_grant
from tenants.choices import Role
from tenants.exceptions import CrossTenantNotFound, PolicyDenied

from ..factories import make_account, staff

pytestmark = pytest.mark.django_db
PERM = "recovery.work_account"


def test_object_grant_is_scoped_to_the_tenant_queried(acme, globex):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    agent = staff(Role.AGENT, tenant=acme)
    mine, _other = make_account(acme), make_account(acme)
    account_permission_grant(actor=admin, account=mine, user=agent, perm=PERM)
    assert list(accounts_with_object_permission(tenant=acme, user=agent, perm=PERM)) == [mine]
    assert not accounts_with_object_permission(tenant=globex, user=agent, perm=PERM).exists()


def test_global_model_permission_does_not_leak_rows(acme, globex):
    agent = staff(Role.AGENT, tenant=acme)
    make_account(globex)
    agent.user_permissions.add(Permission.objects.get(codename="work_account"))
    assert agent.has_perm(PERM)
    assert not accounts_with_object_permission(tenant=globex, user=agent, perm=PERM).exists()
    assert not accounts_with_object_permission(tenant=acme, user=agent, perm=PERM).exists()


def test_cannot_grant_on_another_tenants_account(acme, globex):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied):
        account_permission_grant(actor=admin, account=make_account(globex), user=agent, perm=PERM)


def test_for_tenant_helper_treats_foreign_id_as_missing(acme, globex):
    theirs = make_account(globex)
    with pytest.raises(CrossTenantNotFound):
        account_get_visible(tenant=acme, pk=theirs.pk)
    assert account_get_visible(tenant=globex, pk=theirs.pk) == theirs


def test_unscoped_for_tenant_is_refused():
    from recovery.models import ProtectedAccount

    with pytest.raises(ValueError, match="unscoped"):
        ProtectedAccount.objects.for_tenant(None)

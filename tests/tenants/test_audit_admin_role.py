"""The `audit_admin` role (R-48, issue 15 part 6): it reads and exports the trail and acknowledges
integrity findings, and does no casework. Reads of the trail stay inside the tenant: a tenant
admin sees only their tenant's, MSP staff only the tenants that contracted them (R-50)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tenants.access import TenantAccess, access_in
from tenants.choices import ROLE_SCOPES, Role, Scope, StaffScope
from tenants.models import DelegationGrant, Membership
from tenants.policies import can_acknowledge_integrity, can_read_audit
from tenants.services import membership_create

from ..conftest import signed_in_client
from ..factories import active_grant, make_user, staff
from ..recovery.execution.helpers import ready_case

pytestmark = pytest.mark.django_db

CASEWORK = {
    Scope.CASES_READ,
    Scope.CASES_WRITE,
    Scope.CASES_DRAFT,
    Scope.CASES_EXECUTE_T0,
    StaffScope.CASES_TAKE,
    StaffScope.CASES_DECIDE,
    StaffScope.CASES_EXECUTE,
    StaffScope.ATTENDED_RUN,
    StaffScope.SETTINGS_WRITE,
}


def trail(tenant) -> str:
    return f"/t/{tenant.slug}/audit/"


def test_the_role_holds_the_trail_and_no_casework():
    assert ROLE_SCOPES[Role.AUDIT_ADMIN] == frozenset({Scope.AUDIT_READ})
    assert not ROLE_SCOPES[Role.AUDIT_ADMIN] & CASEWORK


def test_a_tenant_admin_gives_the_role_and_it_reads_the_trail(acme):
    admin, user = staff(Role.TENANT_ADMIN, tenant=acme), make_user()
    membership = membership_create(actor=admin, user=user, role=Role.AUDIT_ADMIN, tenant=acme)
    assert Membership.objects.get(pk=membership.pk).role == "audit_admin"
    access = access_in(user, acme)
    assert access.roles == {"audit_admin"}
    assert can_read_audit(access) and can_acknowledge_integrity(access)
    created = AuditEvent.objects.filter(tenant=acme, action="membership.created").last()
    assert created.data["role"] == "audit_admin"


def test_only_the_tenants_own_audit_admin_acknowledges(acme):
    for role in (Role.AGENT, Role.TENANT_ADMIN, Role.AUDITOR, Role.SECURITY_OFFICER):
        decision = can_acknowledge_integrity(
            TenantAccess(tenant_id=acme.pk, roles=frozenset({role}))
        )
        assert decision.code == "audit.admin_required"
    assert can_acknowledge_integrity(None).code == "tenant.no_access"


def test_provider_staff_with_the_role_through_a_grant_cannot_acknowledge(acme, deskco):
    user = staff(Role.AUDIT_ADMIN, provider=deskco)
    grant = active_grant(deskco, acme, roles=(Role.AGENT,))
    # a grant made before grants refused the role (grant.role_not_delegable)
    DelegationGrant.objects.filter(pk=grant.pk).update(allowed_roles=[Role.AUDIT_ADMIN])
    access = access_in(user, acme)
    assert access.via_grant and access.roles == {"audit_admin"}
    assert can_acknowledge_integrity(access).code == "audit.admin_not_delegable"


def test_the_audit_admin_reads_the_trail_in_the_console_but_opens_no_case(acme):
    case = ready_case(acme, case_type="password_reset")
    client = signed_in_client(staff(Role.AUDIT_ADMIN, tenant=acme))
    assert client.get(trail(acme)).status_code == 200
    assert client.get(f"/t/{acme.slug}/cases/{case.pk}/").status_code in (403, 404)
    assert client.get(f"/t/{acme.slug}/workspace/").status_code in (403, 404)


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.AUDIT_ADMIN, Role.AUDITOR])
def test_a_tenants_own_reader_sees_only_its_tenants_trail(acme, globex, role):
    client = signed_in_client(staff(role, tenant=acme))
    assert client.get(trail(acme)).status_code == 200
    assert client.get(trail(globex)).status_code == 404  # as if it did not exist


def test_an_msp_auditor_sees_only_the_contracted_tenants_trail(acme, globex, deskco):
    auditor = staff(Role.AUDITOR, provider=deskco)
    client = signed_in_client(auditor)
    assert client.get(trail(acme)).status_code == 404  # no contract yet
    active_grant(deskco, acme, roles=(Role.AUDITOR,))
    assert client.get(trail(acme)).status_code == 200
    assert client.get(trail(globex)).status_code == 404
    assert can_read_audit(access_in(auditor, globex)).code == "tenant.no_access"

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tenants.access import actor_tenant_access, tenant_for_actor
from tenants.choices import GrantStatus, Role
from tenants.exceptions import PolicyDenied, StepUpFailed
from tenants.models import DelegationGrant
from tenants.services import grant_approve, grant_revoke, membership_change_role, membership_revoke

from ..factories import active_grant, member, requested_grant, staff, step_up

pytestmark = pytest.mark.django_db


def test_tenant_member_acts_only_in_own_tenant(acme, globex):
    agent = staff(Role.AGENT, tenant=acme)
    access = actor_tenant_access(agent)
    assert set(access) == {acme.pk}
    assert access[acme.pk].roles == {Role.AGENT}
    assert not access[acme.pk].via_grant


def test_msp_agent_reaches_only_granted_tenant_with_granted_roles(acme, globex, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    member(agent, Role.SUPERVISOR, provider=deskco)
    grant = active_grant(deskco, acme, roles=(Role.AGENT,), tiers=("T0", "T1"))
    access = actor_tenant_access(agent)
    assert set(access) == {acme.pk}
    assert access[acme.pk].roles == {Role.AGENT}  # supervisor is not in the grant
    assert access[acme.pk].grant_id == grant.pk
    assert access[acme.pk].tiers == {"T0", "T1"}
    assert access[acme.pk].organisation == deskco.name


def test_pending_grant_gives_no_access(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    requested_grant(deskco, acme)
    assert actor_tenant_access(agent) == {}


def test_expired_grant_loses_access_at_once(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    grant = active_grant(deskco, acme)
    assert acme.pk in actor_tenant_access(agent)
    DelegationGrant.objects.filter(pk=grant.pk).update(
        valid_until=timezone.now() - timedelta(microseconds=1)
    )
    assert actor_tenant_access(agent) == {}


def test_grant_not_yet_valid_gives_no_access(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    grant = active_grant(deskco, acme)
    DelegationGrant.objects.filter(pk=grant.pk).update(
        valid_from=timezone.now() + timedelta(hours=1)
    )
    assert actor_tenant_access(agent) == {}


def test_revoked_grant_loses_access_at_once_and_is_audited(acme, deskco):
    agent = staff(Role.AGENT, provider=deskco)
    grant = active_grant(deskco, acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    grant_revoke(actor=admin, grant=grant, reason="contract ended")
    assert actor_tenant_access(agent) == {}
    event = AuditEvent.objects.get(tenant=acme, action="grant.revoked")
    assert event.data["reason"] == "contract ended"
    assert event.actor_id == str(admin.pk)


def test_revoked_membership_and_role_change_apply_immediately(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    user = staff(Role.SUPERVISOR, tenant=acme)
    membership = user.memberships.get()
    membership_change_role(actor=admin, membership=membership, role=Role.AGENT)
    assert actor_tenant_access(user)[acme.pk].roles == {Role.AGENT}
    membership_revoke(actor=admin, membership=membership)
    assert actor_tenant_access(user) == {}
    actions = list(AuditEvent.objects.filter(tenant=acme).values_list("action", flat=True))
    assert "membership.role_changed" in actions and "membership.revoked" in actions


def test_inactive_tenant_is_not_reachable(acme):
    agent = staff(Role.AGENT, tenant=acme)
    type(acme).objects.filter(pk=acme.pk).update(is_active=False)
    assert actor_tenant_access(agent) == {}


def test_tenant_for_actor_answers_404_for_foreign_and_missing_tenants(acme, globex):
    from django.http import Http404

    agent = staff(Role.AGENT, tenant=acme)
    assert tenant_for_actor(agent, acme.slug)[0] == acme
    for slug in (globex.slug, "no-such-tenant"):
        with pytest.raises(Http404):
            tenant_for_actor(agent, slug)


def test_grant_approval_needs_tenant_admin_and_fresh_step_up(acme, deskco):
    grant = requested_grant(deskco, acme)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    with pytest.raises(PolicyDenied) as denied:
        grant_approve(actor=supervisor, grant=grant, step_up=step_up(supervisor))
    assert denied.value.code == "tenant.admin_required"
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(StepUpFailed) as missing:
        grant_approve(actor=admin, grant=grant, step_up=None)
    assert missing.value.code == "stepup.required"
    other_admin = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(StepUpFailed) as foreign:
        grant_approve(actor=admin, grant=grant, step_up=step_up(other_admin))
    assert foreign.value.code == "stepup.invalid_proof"
    grant.refresh_from_db()
    assert grant.status == GrantStatus.PENDING
    approved = grant_approve(actor=admin, grant=grant, step_up=step_up(admin))
    assert approved.status == GrantStatus.ACTIVE and approved.approved_by == admin
    event = AuditEvent.objects.get(tenant=acme, action="grant.approved")
    assert event.data["step_up"]["device_type"] == "totp"


def test_msp_staff_cannot_approve_their_own_grant(acme, deskco):
    grant = requested_grant(deskco, acme)
    msp_admin = staff(Role.TENANT_ADMIN, provider=deskco)
    with pytest.raises(PolicyDenied) as denied:
        grant_approve(actor=msp_admin, grant=grant, step_up=step_up(msp_admin))
    assert denied.value.code == "tenant.no_access"


def test_requester_cannot_approve_under_another_account(acme, deskco):
    grant = requested_grant(deskco, acme)
    twin = staff(Role.TENANT_ADMIN, tenant=acme)
    type(twin).objects.filter(pk=twin.pk).update(person_id=grant.requested_by.person_id)
    twin.refresh_from_db()
    with pytest.raises(PolicyDenied) as denied:
        grant_approve(actor=twin, grant=grant, step_up=step_up(twin))
    assert denied.value.code == "sod.approver_is_requester"


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR])
def test_only_tenant_admins_can_revoke_a_grant(acme, deskco, role):
    grant = active_grant(deskco, acme)
    with pytest.raises(PolicyDenied) as denied:
        grant_revoke(actor=staff(role, tenant=acme), grant=grant, reason="because")
    assert denied.value.code == "tenant.admin_required"
    grant.refresh_from_db()
    assert grant.status == GrantStatus.ACTIVE


def test_msp_staff_cannot_revoke_grants_of_the_tenant(acme, deskco):
    grant = active_grant(deskco, acme)
    msp_supervisor = staff(Role.SUPERVISOR, provider=deskco)
    with pytest.raises(PolicyDenied) as denied:
        grant_revoke(actor=msp_supervisor, grant=grant, reason="because")
    assert denied.value.code == "tenant.no_access"

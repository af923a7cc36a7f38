from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tenants.access import actor_tenant_access, tenant_for_actor
from tenants.choices import GrantStatus, Role
from tenants.exceptions import InvalidInput, PolicyDenied, StepUpFailed
from tenants.models import DelegationGrant
from tenants.services import grant_approve, grant_revoke, membership_change_role, membership_revoke

from ..factories import active_grant, make_user, member, requested_grant, staff, step_up

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


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.AUDIT_ADMIN])
def test_a_grant_cannot_delegate_the_tenants_own_administration(acme, deskco, role):
    with pytest.raises(InvalidInput) as refused:
        requested_grant(deskco, acme, roles=(Role.AGENT, role))
    assert refused.value.code == "grant.role_not_delegable"
    assert refused.value.field_errors == {"allowed_roles": [f"Not delegable: {role}."]}
    assert not DelegationGrant.objects.filter(provider=deskco, tenant=acme).exists()


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


def test_spent_step_up_proofs_are_pruned_after_they_expire(acme):
    from datetime import timedelta

    from tenants.models import StepUpUse
    from tenants.stepup import require_fresh_step_up
    from tenants.tasks import step_up_prune_task

    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    require_fresh_step_up(step_up(admin), admin)
    old, recent = make_user(), make_user()
    StepUpUse.objects.create(nonce="old", user=old)
    StepUpUse.objects.create(nonce="recent", user=recent)
    StepUpUse.objects.filter(nonce="old").update(used_at=timezone.now() - timedelta(days=2))
    assert step_up_prune_task() == 1
    assert set(StepUpUse.objects.values_list("nonce", flat=True)) >= {"recent"}
    assert not StepUpUse.objects.filter(nonce="old").exists()


def test_spent_staff_passkey_answers_are_pruned_once_their_challenge_is_gone(acme):
    from datetime import timedelta

    from tenants.models import StaffPasskey, StaffPasskeyUse
    from tenants.tasks import step_up_prune_task

    from ..factories import passkey_of

    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    passkey_of(admin)
    passkey = StaffPasskey.objects.get(user=admin, status="active")
    for digest in ("old".ljust(64, "0"), "recent".ljust(64, "0")):
        StaffPasskeyUse.objects.create(digest=digest, passkey=passkey)
    StaffPasskeyUse.objects.filter(digest="old".ljust(64, "0")).update(
        used_at=timezone.now() - timedelta(hours=2)
    )
    assert step_up_prune_task() == 1
    assert list(StaffPasskeyUse.objects.values_list("digest", flat=True)) == [
        "recent".ljust(64, "0")
    ]


def test_grant_list_is_for_the_tenants_own_admins_security_and_auditors(acme, deskco):
    from ..conftest import signed_in_client

    active_grant(deskco, acme)
    for role, status in [(Role.AUDITOR, 200), (Role.SECURITY_OFFICER, 200), (Role.AGENT, 403)]:
        client = signed_in_client(staff(role, tenant=acme))
        assert client.get(f"/t/{acme.slug}/grants/").status_code == status, role
    msp_agent = staff(Role.AGENT, provider=deskco)
    assert signed_in_client(msp_agent).get(f"/t/{acme.slug}/grants/").status_code == 403


def test_bootstrap_operator_creates_one_audited_operator_only(db, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tenants.models import User

    monkeypatch.setenv("VOUCHSAFE_OPERATOR_PASSWORD", "a long operator passphrase")
    User.objects.filter(is_superuser=True).delete()
    call_command("bootstrap_operator", "--username", "root-op")
    operator = User.objects.get(username="root-op")
    assert operator.is_superuser
    assert AuditEvent.objects.filter(action="user.created", target_id=str(operator.pk)).exists()
    with pytest.raises(CommandError, match="already exists"):
        call_command("bootstrap_operator", "--username", "second-op")

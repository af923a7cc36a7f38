"""Policy versions: drafted by a tenant_admin, activated only by a second one with step-up."""

from __future__ import annotations

from datetime import timedelta

import pgtrigger
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from recovery.models import PolicyVersion
from recovery.policy.choices import PolicyStatus
from recovery.policy.errors import PolicyInvalid
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.selectors import policy_active
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from tenants.choices import Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied, StepUpFailed

from ..approle import as_app_role
from ..factories import active_grant, make_user, member, staff, step_up

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
STRICTER = DEFAULT.replace("  max_failed_attempts: 5 ", "  max_failed_attempts: 3 ")


def events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def pending(tenant, author=None, requester=None, text: str = STRICTER) -> PolicyVersion:
    author = author or staff(Role.TENANT_ADMIN, tenant=tenant)
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    return policy_activation_request(actor=requester or author, version=version)


def assert_refused_and_inactive(tenant, version, code: str) -> None:
    version.refresh_from_db()
    assert version.status == PolicyStatus.PENDING_ACTIVATION
    assert version.approved_by is None
    assert policy_active(tenant).number == 0
    rejected = events(tenant, "policy.rejected")[-1]
    assert rejected.data["code"] == code and rejected.data["step"] == "approve"
    assert rejected.target_id == str(version.pk)


def test_second_admin_with_fresh_step_up_activates(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    version = policy_draft_create(actor=author, tenant=acme, text=STRICTER)
    assert (version.number, version.status, version.format) == (1, PolicyStatus.DRAFT, "yaml")
    assert version.document["defaults"]["max_failed_attempts"] == 3
    assert policy_active(acme).number == 0  # a draft changes nothing
    version = policy_activation_request(actor=author, version=version)
    assert version.status == PolicyStatus.PENDING_ACTIVATION
    assert policy_active(acme).number == 0

    version = policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))

    assert version.status == PolicyStatus.ACTIVE and version.approved_by == approver
    active = policy_active(acme)
    assert (active.number, active.version_id, active.source) == (1, version.pk, "tenant")
    assert active.sha256 == version.sha256
    assert active.requirements("T0", "unlock").max_failed_attempts == 3
    assert [e.data["number"] for e in events(acme, "policy.drafted")] == [1]
    assert [e.data["number"] for e in events(acme, "policy.activation_requested")] == [1]
    activated = events(acme, "policy.activated")[-1]
    assert activated.actor_id == str(approver.pk)
    assert activated.data["step_up"]["device_type"] == "totp"
    assert activated.data["superseded"] is None


def test_activation_supersedes_the_previous_version(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    first = policy_activation_approve(
        actor=approver, version=pending(acme, author), step_up=step_up(approver)
    )
    second = policy_activation_approve(
        actor=approver, version=pending(acme, author, text=DEFAULT), step_up=step_up(approver)
    )
    first.refresh_from_db()
    assert first.status == PolicyStatus.SUPERSEDED and first.superseded_at is not None
    assert second.status == PolicyStatus.ACTIVE and second.number == 2
    assert policy_active(acme).number == 2
    assert events(acme, "policy.activated")[-1].data["superseded"] == 1


def test_versions_are_numbered_per_tenant(acme, globex):
    policy_draft_create(actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=DEFAULT)
    policy_draft_create(actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=DEFAULT)
    other = policy_draft_create(
        actor=staff(Role.TENANT_ADMIN, tenant=globex), tenant=globex, text=DEFAULT
    )
    assert other.number == 1
    assert sorted(PolicyVersion.objects.for_tenant(acme).values_list("number", flat=True)) == [1, 2]


def test_requester_cannot_approve_own_request(acme):
    author, requester = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    version = pending(acme, author, requester)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=requester, version=version, step_up=step_up(requester))
    assert refused.value.code == "sod.approver_is_requester"
    assert_refused_and_inactive(acme, version, "sod.approver_is_requester")


def test_author_cannot_approve_even_when_someone_else_requested(acme):
    author, requester = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    version = pending(acme, author, requester)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=author, version=version, step_up=step_up(author))
    assert refused.value.code == "sod.approver_is_author"
    assert_refused_and_inactive(acme, version, "sod.approver_is_author")


def test_same_person_under_another_account_cannot_approve(acme):
    author = staff(Role.TENANT_ADMIN, tenant=acme)
    alias = make_user(person_id=str(author.person_id))
    member(alias, Role.TENANT_ADMIN, tenant=acme)
    version = pending(acme, author)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=alias, version=version, step_up=step_up(alias))
    assert refused.value.code == "sod.same_person"
    assert_refused_and_inactive(acme, version, "sod.same_person")


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR])
def test_non_admin_cannot_approve(acme, role):
    version = pending(acme)
    other = staff(role, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=other, version=version, step_up=step_up(other))
    assert refused.value.code == "tenant.admin_required"
    assert_refused_and_inactive(acme, version, "tenant.admin_required")


def test_msp_user_cannot_approve(acme, deskco):
    version = pending(acme)
    active_grant(deskco, acme, roles=(Role.SUPERVISOR, Role.SECURITY_OFFICER))
    msp_user = staff(Role.SECURITY_OFFICER, provider=deskco)
    member(msp_user, Role.TENANT_ADMIN, provider=deskco)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=msp_user, version=version, step_up=step_up(msp_user))
    assert refused.value.code == "tenant.admin_not_delegable"
    assert_refused_and_inactive(acme, version, "tenant.admin_not_delegable")
    assert events(acme, "policy.rejected")[-1].actor_org == deskco.name


def test_admin_of_another_tenant_cannot_approve(acme, globex):
    version = pending(acme)
    outsider = staff(Role.TENANT_ADMIN, tenant=globex)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=outsider, version=version, step_up=step_up(outsider))
    assert refused.value.code == "tenant.no_access"
    assert_refused_and_inactive(acme, version, "tenant.no_access")


def test_approval_without_step_up_is_refused(acme):
    version = pending(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    with pytest.raises(StepUpFailed) as refused:
        policy_activation_approve(actor=approver, version=version, step_up=None)
    assert refused.value.code == "stepup.required"
    assert_refused_and_inactive(acme, version, "stepup.required")


def test_stale_step_up_is_refused(acme, monkeypatch):
    version = pending(acme)
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    proof = step_up(approver)
    later = timezone.now() + timedelta(minutes=3)
    monkeypatch.setattr("tenants.stepup.timezone.now", lambda: later)
    with pytest.raises(StepUpFailed) as refused:
        policy_activation_approve(actor=approver, version=version, step_up=proof)
    assert refused.value.code == "stepup.stale"
    monkeypatch.undo()
    assert_refused_and_inactive(acme, version, "stepup.stale")


def test_reused_step_up_is_refused(acme, globex):
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    proof = step_up(approver)
    policy_activation_approve(actor=approver, version=pending(acme), step_up=proof)
    member(approver, Role.TENANT_ADMIN, tenant=globex)
    version = pending(globex)
    with pytest.raises(StepUpFailed) as refused:
        policy_activation_approve(actor=approver, version=version, step_up=proof)
    assert refused.value.code == "stepup.proof_reused"
    version.refresh_from_db()
    assert version.status == PolicyStatus.PENDING_ACTIVATION
    assert events(globex, "policy.rejected")[-1].data["code"] == "stepup.proof_reused"


def test_someone_elses_step_up_is_refused(acme):
    version = pending(acme)
    approver, bystander = (staff(Role.TENANT_ADMIN, tenant=acme) for _ in range(2))
    with pytest.raises(StepUpFailed) as refused:
        policy_activation_approve(actor=approver, version=version, step_up=step_up(bystander))
    assert refused.value.code == "stepup.invalid_proof"
    assert_refused_and_inactive(acme, version, "stepup.invalid_proof")


def test_only_a_pending_version_can_be_approved(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    draft = policy_draft_create(actor=author, tenant=acme, text=DEFAULT)
    with pytest.raises(PolicyDenied) as refused:
        policy_activation_approve(actor=approver, version=draft, step_up=step_up(approver))
    assert refused.value.code == "policy.not_pending"
    draft.refresh_from_db()
    assert draft.status == PolicyStatus.DRAFT


def test_only_a_draft_can_be_requested(acme):
    version = pending(acme)
    with pytest.raises(InvalidInput) as refused:
        policy_activation_request(actor=version.created_by, version=version)
    assert refused.value.code == "policy.not_draft"


def test_non_admin_cannot_draft_or_request(acme):
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    with pytest.raises(PolicyDenied):
        policy_draft_create(actor=supervisor, tenant=acme, text=DEFAULT)
    assert not PolicyVersion.objects.for_tenant(acme).exists()
    draft = policy_draft_create(
        actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=DEFAULT
    )
    with pytest.raises(PolicyDenied):
        policy_activation_request(actor=supervisor, version=draft)
    steps = [e.data["step"] for e in events(acme, "policy.rejected")]
    assert steps == ["draft", "request"]


def test_invalid_draft_is_refused_stored_nowhere_and_audited(acme):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    weak = DEFAULT.replace("  max_failed_attempts: 5 ", "  max_failed_attempts: 50 ")
    with pytest.raises(PolicyInvalid) as refused:
        policy_draft_create(actor=admin, tenant=acme, text=weak)
    assert refused.value.rules == ["R-53.max_failed_attempts"]
    assert not PolicyVersion.objects.for_tenant(acme).exists()
    rejected = events(acme, "policy.rejected")[-1]
    assert rejected.data["code"] == "policy.invalid"
    assert rejected.data["errors"][0]["rule"] == "R-53.max_failed_attempts"
    assert rejected.data["errors"][0]["path"] == "$.defaults.max_failed_attempts"


def test_an_older_pending_version_cannot_replace_a_newer_active_one(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    older = pending(acme, author)
    newer = pending(acme, author, text=DEFAULT)
    policy_activation_approve(actor=approver, version=newer, step_up=step_up(approver))
    with pytest.raises(InvalidInput) as refused:
        policy_activation_approve(actor=approver, version=older, step_up=step_up(approver))
    assert refused.value.code == "policy.outdated"
    assert policy_active(acme).number == newer.number


def test_database_refuses_an_approver_who_wrote_the_draft(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    version = policy_activation_approve(
        actor=approver, version=pending(acme, author), step_up=step_up(approver)
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=version.pk).update(approved_by=author)
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(pk=pending(acme, author).pk).update(status=PolicyStatus.ACTIVE)


def test_tampered_active_source_fails_closed(acme):
    approver = staff(Role.TENANT_ADMIN, tenant=acme)
    version = policy_activation_approve(
        actor=approver, version=pending(acme), step_up=step_up(approver)
    )
    # The text is immutable (a trigger): tampering means bypassing it, as a table owner could.
    with pgtrigger.ignore("recovery.PolicyVersion:policy_text_immutable"):
        PolicyVersion.objects.filter(pk=version.pk).update(
            source=STRICTER.replace("max_failed_attempts: 3", "max_failed_attempts: 4")
        )
    with pytest.raises(DomainError) as refused:
        policy_active(acme)
    assert refused.value.code == "policy.tampered"


@pytest.mark.usefixtures("app_role")
def test_policy_versions_of_other_tenants_are_invisible_to_app_role(acme, globex):
    mine = policy_draft_create(
        actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=DEFAULT
    )
    policy_draft_create(actor=staff(Role.TENANT_ADMIN, tenant=globex), tenant=globex, text=DEFAULT)
    with as_app_role([acme.pk]):
        # Deliberately no for_tenant(): row-level security filters underneath.
        assert list(PolicyVersion.objects.values_list("pk", flat=True)) == [mine.pk]

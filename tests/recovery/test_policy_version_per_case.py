"""Issue 13, item 4: a case is decided under the stricter of the policy version it was opened
under and the active one, rule by rule; compiled versions are cached per (tenant, version)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open, case_release_cooled, case_submit
from recovery.cases.services.base import requirements_for
from recovery.cases.services.execution import case_execute
from recovery.models import PolicyVersion
from recovery.policy.rules import (
    DEFAULT_POLICY_FILE,
    STRICTER,
    ArtifactLifetimes,
    CasePolicy,
    Requirements,
    platform_default,
    policy_from_source,
)
from recovery.policy.selectors import compiled_policies, policy_active, policy_for_case
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from tenants.choices import Role
from tenants.exceptions import DomainError, PolicyDenied

from ..factories import make_account_with, make_tenant, staff, step_up
from .casework import approved, signal
from .execution.helpers import ready_case

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
TWO_T1_APPROVALS = DEFAULT.replace("    approvals_required: 1\n", "    approvals_required: 2\n")
# T0 (the `defaults` block) needs no approval and has no cooling-off by default.
T0_APPROVAL = DEFAULT.replace("  approvals_required: 0\n", "  approvals_required: 1\n")
T0_MINUTE = DEFAULT.replace("  cooling_off_seconds: 0\n", "  cooling_off_seconds: 60\n")
T0_TWO_HOURS = DEFAULT.replace("  cooling_off_seconds: 0\n", "  cooling_off_seconds: 7200\n")
SHARED_MAILBOX_T2 = DEFAULT.replace("    shared: T1\n", "    shared: T2\n")


def activate(tenant, text: str) -> PolicyVersion:
    """`text` drafted, requested and approved by two tenant admins: the active version now."""
    author, approver = (
        staff(Role.TENANT_ADMIN, tenant=tenant),
        staff(Role.TENANT_ADMIN, tenant=tenant),
    )
    version = policy_draft_create(actor=author, tenant=tenant, text=text)
    version = policy_activation_request(actor=author, version=version)
    return policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


def t1_case(tenant, agent, *classes: str) -> RecoveryCase:
    account = make_account_with(tenant, groups=["Finance"])  # T1 by the default tier rules
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    for signal_class in classes:
        signal(case, agent, signal_class)
    return case


def last(case: RecoveryCase, action: str) -> AuditEvent:
    return (
        AuditEvent.objects.filter(tenant=case.tenant, action=action, target_id=str(case.pk))
        .order_by("seq")
        .last()
    )


# --- the rule, field by field ---------------------------------------------------------------

BASE = platform_default().requirements("T1", "unlock")
# For every field of Requirements: a looser value and a stricter one; the combination, either
# way round, is the stricter one.
LOOSER_STRICTER = {
    "tier": ("T1", "T2"),
    "case_type": ("unlock", "unlock"),  # the same case: different types do not combine
    "min_signal_classes": (1, 2),
    "accepted_classes": (("S1", "S2", "S3"), ("S2", "S3")),
    "accepted_methods": (("email_code", "sms_code"), ("email_code",)),
    "s4_alone_suffices": (True, False),
    "approvals_required": (1, 2),
    "approver_roles": (("supervisor", "security_officer"), ("security_officer",)),
    "min_security_officer_approvals": (0, 1),
    "security_officer_required": (False, True),
    "tenant_approver_required_when_msp": (False, True),
    "cooling_off_seconds": (3600, 7200),
    "s5_waives_cooling_off": (True, False),
    "quarantine_seconds": (604800, 1209600),
    "lifetimes": (ArtifactLifetimes(600, 600, 86400, 3600), ArtifactLifetimes(300, 300, 3600, 900)),
    "max_failed_attempts": (5, 3),
    "repeat_case_window_seconds": (86400, 172800),
    "repeat_after_denial_window_seconds": (259200, 604800),
    "push_denial_lookback_seconds": (86400, 172800),
    "caller_reuse_window_seconds": (86400, 172800),
    "caller_reuse_subjects": (3, 2),
    "min_review_seconds": (30, 60),
    "case_idle_limit_seconds": (2592000, 604800),
    "approval_lifetime_seconds": (86400, 3600),
    "reestablishment_window_seconds": (259200, 604800),
    "role_regrant_max_seconds": (604800, 86400),
    "step_up_kinds": (("passkey", "totp"), ("passkey",)),
}


def test_every_field_of_requirements_has_a_stricter_rule_and_a_case_here():
    names = {f.name for f in fields(Requirements)}
    assert set(STRICTER) == names
    assert set(LOOSER_STRICTER) | {"policy_versions"} == names


@pytest.mark.parametrize("name", sorted(LOOSER_STRICTER))
def test_the_stricter_value_wins_either_way_round(name):
    looser, stricter = LOOSER_STRICTER[name]
    one, other = replace(BASE, **{name: looser}), replace(BASE, **{name: stricter})
    assert getattr(one.stricter(other), name) == stricter
    assert getattr(other.stricter(one), name) == stricter


@pytest.mark.parametrize("name", [f.name for f in fields(ArtifactLifetimes)])
def test_each_artifact_lifetime_is_the_shorter(name):
    lifetimes = BASE.lifetimes
    shorter = replace(lifetimes, **{name: getattr(lifetimes, name) // 2})
    for one, other in ((lifetimes, shorter), (shorter, lifetimes)):
        combined = replace(BASE, lifetimes=one).stricter(replace(BASE, lifetimes=other)).lifetimes
        assert combined == shorter


def test_both_versions_are_named_and_case_types_never_mix():
    one = replace(BASE, policy_versions=(1,))
    assert one.stricter(replace(BASE, policy_versions=(3,))).policy_versions == (1, 3)
    with pytest.raises(ValueError):
        BASE.stricter(replace(BASE, case_type="mfa_reset"))


def test_the_tier_is_the_higher_of_the_two_versions():
    default, raising = (
        platform_default(),
        policy_from_source(SHARED_MAILBOX_T2, number=7, version_id=1),
    )
    mailbox = SimpleNamespace(
        admin_roles=[], groups=[], mailbox_type="shared", delegations=[], person_id=None
    )
    assert CasePolicy(opened=default, active=raising).compute_tier(mailbox)[0] == "T2"
    assert CasePolicy(opened=raising, active=default).compute_tier(mailbox)[0] == "T2"
    assert CasePolicy(opened=default, active=default).compute_tier(mailbox)[0] == "T1"


# --- through the services -------------------------------------------------------------------


def test_a_tightening_after_opening_applies_and_the_trail_names_both_versions(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = t1_case(acme, agent, "S2")
    assert case.policy_version == 0
    activate(acme, TWO_T1_APPROVALS)  # version 1: T1 needs two approvals
    signal(case, agent, "S3")
    case = case_submit(actor=agent, case=case)
    assert requirements_for(case).approvals_required == 2

    case = approved(case)
    assert case.status == "pending_approval"  # one approval was enough under version 0
    case = approved(case)
    assert case.status == "cooling_off"

    versions = [0, 1]
    assert last(case, "verification.signal_accepted").data["policy_versions"] == versions
    assert last(case, "case.submitted").data["policy_versions"] == versions
    assert last(case, "approval.approved").data["policy_versions"] == versions
    assert last(case, "case.status_changed").data["policy_versions"] == versions


def test_a_loosening_after_opening_does_not_apply(acme):
    agent = staff(Role.AGENT, tenant=acme)
    activate(acme, TWO_T1_APPROVALS)  # version 1
    case = case_submit(actor=agent, case=t1_case(acme, agent, "S2", "S3"))
    assert case.policy_version == 1
    activate(acme, DEFAULT)  # version 2: back to one approval
    assert policy_active(acme).requirements("T1", "unlock").approvals_required == 1

    case = approved(case)
    assert case.status == "pending_approval"  # still the two of version 1
    assert last(case, "approval.approved").data["policy_versions"] == [1, 2]


def test_a_longer_cooling_off_activated_mid_case_holds_the_release(acme):
    # Approvals are bound to the versions deciding the case: a case with approvals goes
    # back for approval on any activation. A T0 case has none, so its wait is what changes.
    agent = staff(Role.AGENT, tenant=acme)
    activate(acme, T0_MINUTE)  # version 1: T0 waits a minute
    account = make_account_with(acme)
    case = case_open(actor=agent, account=account, case_type="unlock", channel="phone")
    signal(case, agent, "S2")
    case = case_submit(actor=agent, case=case)
    assert case.status == "cooling_off"
    activate(acme, T0_TWO_HOURS)  # version 2: two hours
    RecoveryCase.objects.filter(pk=case.pk).update(
        cooling_off_until=timezone.now() - timedelta(seconds=1)  # version 1's minute is over
    )

    case = case_release_cooled(case=case)

    assert case.status == "cooling_off"
    assert case.cooling_off_until > timezone.now() + timedelta(seconds=7000)
    held = last(case, "case.status_changed").data
    assert (held["reason"], held["policy_versions"]) == ("policy_tightened", [1, 2])


def test_execution_refuses_a_ready_case_a_tightening_left_short_of_approvals(acme):
    case = ready_case(acme)  # T0: ready at once, no approval needed under version 0
    activate(acme, T0_APPROVAL)  # version 1: T0 needs an approval

    with pytest.raises(PolicyDenied) as refused:
        case_execute(actor=staff(Role.AGENT, tenant=acme), case=case)

    assert refused.value.code == "case.policy_tightened"
    case.refresh_from_db()
    assert case.status == "pending_approval"
    sent_back = last(case, "case.status_changed").data
    assert (sent_back["reason"], sent_back["policy_versions"]) == ("policy_tightened", [0, 1])


# --- the cache of compiled versions ---------------------------------------------------------


def test_the_opened_version_is_read_once_then_served_from_the_cache(
    acme, django_assert_num_queries
):
    agent = staff(Role.AGENT, tenant=acme)
    activate(acme, TWO_T1_APPROVALS)
    case = t1_case(acme, agent)
    activate(acme, DEFAULT)
    compiled_policies.clear()

    with django_assert_num_queries(2):  # the active version, then the opened one
        first = policy_for_case(case)
    with django_assert_num_queries(1):  # the active version only: the opened one is cached
        second = policy_for_case(case)

    assert first.versions == second.versions == [1, 2]
    assert second.opened is first.opened and second.active is first.active  # not re-validated


def test_the_cache_is_bounded_least_recently_used_first(settings):
    settings.POLICY_CACHE_SIZE = 2
    compiled_policies.clear()
    tenants = [make_tenant() for _ in range(3)]
    for tenant in tenants:
        activate(tenant, TWO_T1_APPROVALS)
    first = policy_active(tenants[0])
    policy_active(tenants[1])
    policy_active(tenants[0])  # used again: tenants[1] is now the least recently used
    policy_active(tenants[2])

    assert len(compiled_policies) == 2
    assert compiled_policies.get((tenants[0].pk, 1)) is first
    assert compiled_policies.get((tenants[1].pk, 1)) is None


def test_drafts_are_never_cached_nor_decide_a_case(acme):
    agent = staff(Role.AGENT, tenant=acme)
    case = t1_case(acme, agent)
    draft = policy_draft_create(
        actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=TWO_T1_APPROVALS
    )
    case.policy_version = draft.number  # as if the case named a version never activated

    with pytest.raises(DomainError) as refused:
        policy_for_case(case)

    assert refused.value.code == "policy.version_missing"
    assert compiled_policies.get((acme.pk, draft.number)) is None


def test_an_activated_version_text_cannot_change(acme):
    version = activate(acme, TWO_T1_APPROVALS)
    with pytest.raises(DatabaseError), transaction.atomic():
        PolicyVersion.objects.filter(pk=version.pk).update(source=DEFAULT)
    with pytest.raises(DatabaseError), transaction.atomic():
        PolicyVersion.objects.filter(pk=version.pk).update(number=9)
    PolicyVersion.objects.filter(pk=version.pk).update(superseded_at=timezone.now())  # not text

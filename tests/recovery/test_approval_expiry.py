"""Approvals expire (R-22): a policy lifetime bounded by the platform and the cooling-off; an
expired approval counts for nothing and is voided, with its reason, when the case is next
acted on. And an approval made on the case as it was voids when the case changes (R-22, R-47).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus
from recovery.cases.models import Approval, RecoveryCase
from recovery.cases.services import case_needs
from recovery.cases.services.execution import case_execute
from recovery.notifications.models import OwnerNotice
from recovery.policy.errors import PolicyInvalid
from recovery.policy.rules import DEFAULT_POLICY_FILE, platform_default
from recovery.policy.validation import validate
from tenants.choices import Role
from tenants.exceptions import PolicyDenied

from ..connector_helpers import connector_set
from ..factories import staff, step_up
from .execution.helpers import owner_email, ready_case

HOUR = 3_600
T1 = {"groups": ["Finance"]}  # one approval, 1 h cooling-off in the platform default


def _policy(layer: tuple[str, ...], **values: object) -> str:
    """The platform default with `values` set in the requirement block at `layer`, as JSON."""
    document = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    block = document
    for key in layer:
        block = block.setdefault(key, {})
    block.update(values)
    return json.dumps(document, indent=1)


def test_the_platform_default_lifetimes_outlive_every_cooling_off():
    policy = platform_default()
    t1 = policy.requirements("T1", "password_reset")
    exception = policy.requirements("T0", "exception")
    t2 = policy.requirements("T2", "mfa_reset")
    assert t1.approval_lifetime_seconds == 24 * HOUR
    # 24 h cooling-off: the default is the cooling-off plus 24 h, so it can be executed.
    assert (exception.cooling_off_seconds, exception.approval_lifetime_seconds) == (
        24 * HOUR,
        48 * HOUR,
    )
    assert t2.approval_lifetime_seconds == 48 * HOUR


def test_a_lifetime_past_the_platform_maximum_is_refused():
    with pytest.raises(PolicyInvalid) as refused:
        validate(_policy(("tiers", "T1"), approval_lifetime_seconds=72 * HOUR + 1))
    assert set(refused.value.rules) == {"R-22.approval_lifetime_max"}
    assert refused.value.errors[0].path == "$.tiers.T1.approval_lifetime_seconds"


def test_an_exception_lifetime_within_its_cooling_off_is_refused_with_its_rule():
    """The known conflict: 24 h from the approval would expire every exception (24 h wait)."""
    with pytest.raises(PolicyInvalid) as refused:
        validate(_policy(("case_types", "exception"), approval_lifetime_seconds=24 * HOUR))
    assert refused.value.rules == ["R-22.approval_lifetime_after_cooling_off"]
    error = refused.value.errors[0]
    assert error.path == "$.case_types.exception.approval_lifetime_seconds"
    assert "must be at least cooling_off_seconds + 3600 = 90000" in error.message


def _executable(case: RecoveryCase) -> RecoveryCase:
    """The ready case with everything else execution needs: its notices out, an email held."""
    owner_email(case)
    OwnerNotice.objects.filter(case=case).update(status="sent")
    return case


def _expire(case: RecoveryCase) -> Approval:
    approval = Approval.objects.get(case=case, invalidated_at__isnull=True)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return approval


def test_an_expired_approval_counts_for_nothing(acme):
    case = ready_case(acme, **T1)
    approval = Approval.objects.get(case=case)
    lifetime = approval.expires_at - approval.created_at
    assert abs(lifetime - timedelta(hours=24)) < timedelta(seconds=5)
    assert case_needs(case).approvals == 1
    _expire(case)
    assert case_needs(case).approvals == 0


def test_an_expired_approval_is_voided_at_execution_and_the_case_returns_to_approval(acme):
    case = _executable(ready_case(acme, **T1))
    approval = _expire(case)
    executor = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(
            actor=executor, case=case, step_up=step_up(executor, case=case, action="execute")
        )
    assert refused.value.code == "approval.expired"
    approval.refresh_from_db()
    assert approval.invalidated_reason == "expired"
    event = AuditEvent.objects.get(tenant=acme, action="approval.invalidated")
    assert (event.data["approval"], event.data["reason"]) == (approval.pk, "expired")
    case.refresh_from_db()
    assert case.status == CaseStatus.PENDING_APPROVAL


def test_a_change_of_the_case_voids_its_approval_with_the_reason(acme):
    """The connector execution would run is part of what was approved (R-22)."""
    case = _executable(ready_case(acme, **T1))
    approval = Approval.objects.get(case=case)
    connector_set(
        acme,
        kind="webhook",
        settings={"url": "https://automation.example.test/hook", "secret_env": "HOOK_SECRET"},
    )
    assert case_needs(case).approvals == 0
    executor = staff(Role.AGENT, tenant=acme)
    with pytest.raises(PolicyDenied) as refused:
        case_execute(
            actor=executor, case=case, step_up=step_up(executor, case=case, action="execute")
        )
    assert refused.value.code == "approval.snapshot_changed"
    approval.refresh_from_db()
    assert approval.invalidated_reason == "snapshot_changed"
    event = AuditEvent.objects.get(tenant=acme, action="approval.invalidated")
    assert event.data["reason"] == "snapshot_changed"
    case.refresh_from_db()
    assert case.status == CaseStatus.PENDING_APPROVAL

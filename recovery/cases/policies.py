"""Decisions about who may work, review and approve a recovery case, one case at a time.

Who may see, work, review and decide a case is one list of rules each (`access_rules`); the
functions here are their Python form for one case, with the first failing rule's code.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from tenants.access import TenantAccess
from tenants.policies import ALLOW, Decision

from ..policy.floors import APPROVER_ROLES
from .access_rules import (
    EVIDENCE_READERS,
    REFEREES,
    REVIEW,
    SECURITY_QUEUE_ROLES,
    SEE,
    WORK,
    Shape,
    Who,
    first_refusal,
    within_grant,
)
from .models import RecoveryCase

if TYPE_CHECKING:
    from tenants.models import User


def _deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


def can_work_case(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may open or collect evidence on a case of this route, tier and type
    (`access_rules.WORK`, the rules of `RecoveryCase.objects.workable_by`)."""
    return first_refusal(WORK, Who(access), Shape(tier=tier, case_type=case_type, route=route))


def can_read_case_evidence(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may read a case's attachments, in any status of the case.

    Whoever may work the case, plus the tenant's auditors and security officers (within the
    tiers and case types of a delegation grant, when they act through one).
    """
    shape = Shape(tier=tier, case_type=case_type, route=route)
    if access is not None and access.roles & EVIDENCE_READERS:
        return within_grant(access, shape)
    return first_refusal(WORK, Who(access), shape)


def can_referee_case(access: TenantAccess | None, case: RecoveryCase) -> Decision:
    """Whether the actor may read `case` and run attended sessions on it (R-06, R-07, R-09).

    A trusted referee of the tenant's own staff reads any case of the tenant, so that it can
    run the attended session the case needs; the role grants nothing else (it never opens,
    submits, approves or executes: `can_work_case` and the approver roles leave it out). Its
    certification and its independence from the case are `can_run_attended_session`.
    """
    if access is None:
        return _deny("tenant.no_access", _("You have no access to this tenant."))
    if not access.roles & REFEREES:
        return _deny(
            "attended.referee_required",
            _("Attended sessions are run by the tenant's trusted referees (R-09)."),
        )
    if access.via_grant:
        # A certification is the tenant's word about its own staff (`referee_certify`).
        return _deny(
            "attended.referee_not_delegable",
            _("Trusted referees are the tenant's own staff; a delegation grant cannot carry it."),
        )
    return ALLOW


def case_taker(case: RecoveryCase) -> User | None:
    """Who works the case: set when it is opened, except for an AI-drafted case, which has
    no taker until a person takes it (R-66)."""
    return case.taken_by


def can_run_attended_session(
    access: TenantAccess | None,
    case: RecoveryCase,
    *,
    referee_person: Any,
    certified_until: datetime | None,
    now: datetime,
    subject_people: Collection[Any] = (),
) -> Decision:
    """Whether this referee may run (or complete) an attended session on `case` now (R-09).

    A referee of the tenant (`can_referee_case`) with a certification current at `now`, who is
    none of the case's parties by person: not the opener, not the agent working it, not the
    subject or a delegate of the subject (`subject_people`; the subject's own person id is
    added here). The referee's check is the independent one (R-21 by analogy).
    """
    decision = can_referee_case(access, case)
    if not decision:
        return decision
    if certified_until is None or certified_until <= now:
        return _deny(
            "attended.certification_lapsed",
            _("Your trusted-referee certification is missing or has lapsed (R-09)."),
        )
    taker = case_taker(case)
    taker_person = taker.person_id if taker is not None else None
    parties = {case.opened_by_person, case.account.person_id, taker_person, *subject_people}
    parties.discard(None)
    if referee_person in parties:
        return _deny(
            "sod.referee_is_party",
            _("You opened, work or are the subject of this case: another referee must run it."),
        )
    return ALLOW


def can_open_case_page(access: TenantAccess | None, case: RecoveryCase) -> Decision:
    """Who may open a case page: case workers and evidence readers, within a grant's tiers and
    case types, and the tenant's own trusted referees (`access_rules.SEE`, the rules of
    `RecoveryCase.objects.visible_to`). Whether they may also act on it is `can_work_case`."""
    return first_refusal(SEE, Who(access), case)


def can_use_approval_queue(access: TenantAccess) -> Decision:
    """The approval queue is for the roles a policy may name as approvers (R-20 floor)."""
    if not access.roles & APPROVER_ROLES:
        return _deny(
            "review.approver_role_required",
            _("The approval queue is for supervisors and security officers."),
        )
    return ALLOW


def can_use_security_queue(access: TenantAccess) -> Decision:
    """The security queue is for security officers and the tenant's admins."""
    if not access.roles & SECURITY_QUEUE_ROLES:
        return _deny(
            "review.security_role_required",
            _("The security queue is for security officers and tenant admins."),
        )
    return ALLOW


def can_review_case(access: TenantAccess | None, case: RecoveryCase) -> Decision:
    """Whether the actor may open a case's review page (deciding is the service's call):
    reviewers within their delegation grant's tiers and case types; a security-queue case only
    for the security queue's roles (`access_rules.REVIEW`)."""
    return first_refusal(REVIEW, Who(access), case)

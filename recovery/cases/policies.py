"""Pure decisions about who may work, and approve, a recovery case."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from tenants.access import TenantAccess
from tenants.choices import Role
from tenants.policies import ALLOW, Decision, can_work_case_type, can_work_tier

from ..policy.floors import APPROVER_ROLES
from .choices import Route
from .models import RecoveryCase

if TYPE_CHECKING:
    from tenants.models import User

CASE_WORKERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER})


def _deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


def can_work_case(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may open or collect evidence on a case of this route, tier and type."""
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if not access.roles & CASE_WORKERS:
        return _deny(
            "case.role_required",
            "Working recovery cases needs the agent, supervisor or security_officer role.",
        )
    for decision in (can_work_tier(access, tier), can_work_case_type(access, case_type)):
        if not decision:
            return decision
    if route == Route.SECURITY and Role.SECURITY_OFFICER not in access.roles:
        return _deny(
            "case.security_queue_only",
            "This case is in the security queue: only security officers work it.",
        )
    return ALLOW


EVIDENCE_READERS = frozenset({Role.AUDITOR, Role.SECURITY_OFFICER})


def can_read_case_evidence(
    access: TenantAccess | None, *, route: str, tier: str, case_type: str
) -> Decision:
    """Whether the actor may read a case's attachments, in any status of the case.

    Whoever may work the case, plus the tenant's auditors and security officers (within the
    tiers and case types of a delegation grant, when they act through one).
    """
    if access is None:
        return _deny("tenant.no_access", "You have no access to this tenant.")
    if access.roles & EVIDENCE_READERS:
        for decision in (can_work_tier(access, tier), can_work_case_type(access, case_type)):
            if not decision:
                return decision
        return ALLOW
    return can_work_case(access, route=route, tier=tier, case_type=case_type)


REFEREES = frozenset({Role.TRUSTED_REFEREE})


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


def can_open_case_page(access: TenantAccess, case: RecoveryCase) -> Decision:
    """Who may open a case page: case workers and evidence readers, within a grant's tiers and
    case types, and the tenant's trusted referees (`can_referee_case`). Whether they may also
    act on the case is `can_work_case`."""
    if not access.roles & (CASE_WORKERS | EVIDENCE_READERS):
        if access.roles & REFEREES:
            return can_referee_case(access, case)
        return _deny(
            "case.role_required",
            _("Case pages are for agents, supervisors, security officers and auditors."),
        )
    for decision in (can_work_tier(access, case.tier), can_work_case_type(access, case.case_type)):
        if not decision:
            return decision
    return ALLOW


# Who may open the security queue: its officers, and the tenant's admins to oversee.
SECURITY_QUEUE_ROLES = frozenset({Role.SECURITY_OFFICER, Role.TENANT_ADMIN})
REVIEWER_ROLES = APPROVER_ROLES | SECURITY_QUEUE_ROLES


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


def can_review_case(access: TenantAccess, case: RecoveryCase) -> Decision:
    """Whether the actor may open a case's review page (deciding is the service's call).

    Reviewers within their delegation grant's tiers and case types; a security-queue case only
    for the security queue's roles.
    """
    if not access.roles & REVIEWER_ROLES:
        return _deny(
            "review.role_required",
            _("Reviewing cases is for supervisors, security officers and tenant admins."),
        )
    for scope in (can_work_tier(access, case.tier), can_work_case_type(access, case.case_type)):
        if not scope:
            return scope
    if case.route == Route.SECURITY and not access.roles & SECURITY_QUEUE_ROLES:
        return _deny(
            "case.security_queue_only",
            _("This case is in the security queue: security officers review it."),
        )
    return ALLOW

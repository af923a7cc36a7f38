"""Reads of recovery cases, each starting from the tenant; each costs a fixed number of queries."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEvent
from tenants.access import TenantAccess
from tenants.choices import CaseType, Role
from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant, User

from ..models import ProtectedAccount
from .choices import OPEN_STATUSES, Route
from .models import Approval, RecoveryCase
from .timeline import TimelineEntry, timeline_entry

CASE_LABEL = RecoveryCase._meta.label  # the target_type of a case's audit events


def case_list(*, tenant: Tenant) -> QuerySet[RecoveryCase]:
    """The tenant's cases with their accounts, newest first."""
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .select_related("account")
        .order_by("-created_at", "-pk")
    )


def cases_within_grant(*, tenant: Tenant, access: TenantAccess | None) -> QuerySet[RecoveryCase]:
    """`case_list` narrowed to the tiers and case types a delegation grant covers (all of them
    for the tenant's own staff and its keys): the reads of `can_work_tier` and
    `can_work_case_type`, so an API list shows what the console's pages would."""
    cases = case_list(tenant=tenant)
    if access is not None and access.tiers is not None:
        cases = cases.filter(tier__in=access.tiers)
    if access is not None and access.case_types is not None:
        cases = cases.filter(case_type__in=access.case_types)
    return cases


def case_get_visible(
    *, tenant: Tenant, pk: int, access: TenantAccess | None = None
) -> RecoveryCase:
    """One case of `tenant` (within `access`'s grant when given); another tenant's id, and a
    case outside the grant, are the same 404 as a missing one."""
    case = cases_within_grant(tenant=tenant, access=access).filter(pk=pk).first()
    if case is None:
        raise CrossTenantNotFound(CASE_LABEL, pk)
    return case


def case_get_for_change(*, tenant: Tenant, pk: int) -> RecoveryCase:
    """One case of `tenant`, locked for the rest of the transaction (for a transition)."""
    case = (
        RecoveryCase.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("account")
        .filter(pk=pk)
        .first()
    )
    if case is None:
        raise CrossTenantNotFound(CASE_LABEL, pk)
    return case


def case_timeline(*, tenant: Tenant, case: RecoveryCase) -> list[TimelineEntry]:
    """The case's history from its audit events in the tenant's chain, oldest first (one query).

    A case of another tenant is refused as not found, like `case_get_visible`.
    """
    if case.tenant_id != tenant.pk:
        raise CrossTenantNotFound(CASE_LABEL, case.pk)
    events = AuditEvent.objects.filter(
        tenant=tenant, target_type=CASE_LABEL, target_id=str(case.pk)
    ).order_by("seq")
    return [timeline_entry(event) for event in events]


def exception_review_list(*, tenant: Tenant) -> QuerySet[RecoveryCase]:
    """Every exception case of the tenant (R-24), any status, newest first (one query)."""
    return (
        case_list(tenant=tenant)
        .filter(case_type=CaseType.EXCEPTION)
        .select_related("opened_by", "opened_via_provider")
    )


def approval_list(*, tenant: Tenant) -> QuerySet[Approval]:
    """The tenant's approval decisions (live and voided), newest first."""
    return (
        Approval.objects.for_tenant(tenant)
        .select_related("approver")
        .order_by("-created_at", "-pk")
    )


def cases_open_for(*, tenant: Tenant, actor: User, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Open cases `actor` opened and may still work: the route, and a grant's tiers and types,
    as `can_work_case` decides them."""
    cases = cases_within_grant(tenant=tenant, access=access).filter(
        opened_by=actor, status__in=OPEN_STATUSES
    )
    if Role.SECURITY_OFFICER not in access.roles:
        cases = cases.exclude(route=Route.SECURITY)
    return cases


def account_cases(
    *, tenant: Tenant, account: ProtectedAccount, exclude: int | None = None
) -> QuerySet[RecoveryCase]:
    """The cases on one account, newest first: the prior attempts an agent keeps in view."""
    cases = case_list(tenant=tenant).filter(account=account)
    return cases.exclude(pk=exclude) if exclude else cases

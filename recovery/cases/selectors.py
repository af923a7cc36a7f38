"""Reads of recovery cases, each starting from the tenant; each costs a fixed number of queries."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEvent
from tenants.access import TenantAccess
from tenants.choices import CaseType
from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant, User

from ..models import ProtectedAccount
from .choices import OPEN_STATUSES
from .models import Approval, RecoveryCase
from .timeline import TimelineEntry, timeline_entry

CASE_LABEL = RecoveryCase._meta.label  # the target_type of a case's audit events


def case_list(*, tenant: Tenant, access: TenantAccess | None) -> QuerySet[RecoveryCase]:
    """The cases of `tenant` the actor may see (`visible_to`), with their accounts, newest
    first: what an API list shows and a console page may link to."""
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .visible_to(access)
        .select_related("account")
        .order_by("-created_at", "-pk")
    )


def case_get_visible(*, tenant: Tenant, access: TenantAccess | None, pk: int) -> RecoveryCase:
    """One case of `tenant` the actor may see (`visible_to`); another tenant's id, and a case
    the rules keep from the actor, are the same 404 as a missing one."""
    case = case_list(tenant=tenant, access=access).filter(pk=pk).first()
    if case is None:
        raise CrossTenantNotFound(CASE_LABEL, pk)
    return case


def case_get(*, tenant: Tenant, pk: int) -> RecoveryCase:
    """One case of `tenant`, for a console page that then checks the Python form of its rule
    list (`can_open_case_page`, `can_review_case`, …) and explains a refusal with a 403;
    another tenant's id is the same 404 as a missing one."""
    case = RecoveryCase.objects.for_tenant(tenant).select_related("account").filter(pk=pk).first()
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

    A case of another tenant is refused as not found, like `case_get`.
    """
    if case.tenant_id != tenant.pk:
        raise CrossTenantNotFound(CASE_LABEL, case.pk)
    events = AuditEvent.objects.filter(
        tenant=tenant, target_type=CASE_LABEL, target_id=str(case.pk)
    ).order_by("seq")
    return [timeline_entry(event) for event in events]


def exception_review_list(*, tenant: Tenant, access: TenantAccess | None) -> QuerySet[RecoveryCase]:
    """Every exception case of the tenant the actor may see (R-24), any status, newest first
    (one query)."""
    return (
        case_list(tenant=tenant, access=access)
        .filter(case_type=CaseType.EXCEPTION)
        .select_related("opened_by", "opened_via_provider")
    )


def approval_list(*, tenant: Tenant, access: TenantAccess | None) -> QuerySet[Approval]:
    """The approval decisions (live and voided) on the cases the actor may see, newest first."""
    return (
        Approval.objects.for_tenant(tenant)
        .filter(case__in=RecoveryCase.objects.for_tenant(tenant).visible_to(access).values("pk"))
        .select_related("approver")
        .order_by("-created_at", "-pk")
    )


def cases_open_for(*, tenant: Tenant, actor: User, access: TenantAccess) -> QuerySet[RecoveryCase]:
    """Open cases `actor` opened and may still work (`workable_by`)."""
    return (
        RecoveryCase.objects.for_tenant(tenant)
        .workable_by(access)
        .filter(opened_by=actor, status__in=OPEN_STATUSES)
        .select_related("account")
        .order_by("-created_at", "-pk")
    )


def account_cases(
    *,
    tenant: Tenant,
    access: TenantAccess | None,
    account: ProtectedAccount,
    exclude: int | None = None,
) -> QuerySet[RecoveryCase]:
    """The cases on one account the actor may see, newest first: the prior attempts an agent
    keeps in view."""
    cases = case_list(tenant=tenant, access=access).filter(account=account)
    return cases.exclude(pk=exclude) if exclude else cases

"""Where a tenant's alerts go (issue 16 part 4): its security contacts and alert routes, under
dual control (R-27).

A route is an email address (a security contact), a signed webhook, or a Slack or Microsoft
Teams incoming webhook. Alerts reach people only through routes, so adding or removing one
takes two of the tenant's own tenant admins: one proposes (`route_propose`,
`route_removal_propose`), a second one, another account and another person, approves with a
fresh step-up (`route_approve`). Another admin may reject a proposal, its proposer may withdraw
it. Never through an MSP grant, an API key or an AI assistant. A route proposed for removal
keeps sending until the removal is approved: silencing alerts takes two people as well.

The URL of a chat or webhook route is itself a credential (whoever holds it may post to the
channel), so events and pages show only its origin (`route_shown_target`). A signed webhook's
HMAC key is made when the route is approved and shown once, to the approver.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db.models import QuerySet
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from recovery.addresses import destination_problem, url_origin, url_syntax_problem

from .access import TenantAccess, access_in
from .choices import DELIVERING_ROUTE_STATUSES, PrincipalKind, Role, RouteKind, RouteStatus
from .exceptions import CrossTenantNotFound, InvalidInput
from .models import AlertRoute, Tenant, User
from .policies import ALLOW, Decision, can_administer_tenant, enforce
from .principals import ai_blocked
from .reasons import reason_given
from .rls import tenant_scope
from .stepup import StepUpProof, require_fresh_step_up

MAX_ROUTES = 10  # proposed and delivering routes per tenant: our choice
MAX_LABEL = 100
REASON_MIN = 10
ROUTE_READERS = frozenset({Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR})
OPEN_STATUSES = (RouteStatus.PROPOSED, *DELIVERING_ROUTE_STATUSES)


# --- reads ------------------------------------------------------------------------------------


def security_contacts(tenant_id: int) -> list[str]:
    """The addresses of the tenant's delivering email routes, oldest first (R-40, R-41); call
    it inside a scope that sees the tenant."""
    return list(
        routes_delivering(tenant_id)
        .filter(kind=RouteKind.EMAIL)
        .order_by("pk")
        .values_list("target", flat=True)
    )


def routes_delivering(tenant_id: int) -> QuerySet[AlertRoute]:
    """The tenant's routes that carry alerts now (call inside the tenant's scope)."""
    return AlertRoute.objects.filter(tenant_id=tenant_id, status__in=DELIVERING_ROUTE_STATUSES)


def route_list(tenant: Tenant) -> QuerySet[AlertRoute]:
    """Every route of the tenant: open ones first, then the history, newest first."""
    return (
        AlertRoute.objects.for_tenant(tenant)
        .select_related("requested_by", "approved_by", "removal_requested_by", "decided_by")
        .order_by("-pk")
    )


def route_get_visible(*, tenant: Tenant, pk: int) -> AlertRoute:
    route = AlertRoute.objects.for_tenant(tenant).filter(pk=pk).first()
    if route is None:
        raise CrossTenantNotFound(AlertRoute._meta.label, pk)
    return route


def route_shown_target(route: AlertRoute) -> str:
    """What may be shown or recorded of the target: an address, or a URL's origin only."""
    return route.target if route.kind == RouteKind.EMAIL else url_origin(route.target)


# --- decisions (pure) -------------------------------------------------------------------------


def can_read_routes(access: TenantAccess | None) -> Decision:
    """The tenant's own admins, security officers and auditors; not through a grant."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if access.via_grant or not access.roles & ROUTE_READERS:
        return Decision(
            False,
            "alert_route.read_forbidden",
            "Alert routes are for the tenant's own admins, security officers and auditors.",
        )
    return ALLOW


def can_decide(*, actor: User, route: AlertRoute, approving: bool) -> Decision:
    """Dual control: whoever proposed the step (adding or removing) neither approves nor
    rejects it, under this account or another of the same person; they withdraw it."""
    if route.status == RouteStatus.PROPOSED:
        proposer = route.requested_by
    elif route.status == RouteStatus.REMOVAL_PROPOSED:
        proposer = route.removal_requested_by
    else:
        return Decision(
            False,
            "alert_route.not_pending",
            f"Nothing about this route is waiting for a decision; it is {route.status}.",
        )
    if proposer is not None and (
        proposer.pk == actor.pk or str(proposer.person_id) == str(actor.person_id)
    ):
        verb = "approve" if approving else "reject"
        return Decision(
            False,
            "sod.approver_is_requester",
            f"You proposed this; a second tenant admin must {verb} it (withdraw it instead).",
        )
    return ALLOW


def _require_admin(actor: User, tenant: Tenant) -> None:
    enforce(ai_blocked(actor, "change where alerts are sent"))
    if actor.kind != PrincipalKind.HUMAN:
        enforce(
            Decision(
                False,
                "alert_route.person_required",
                "Only a person may change where alerts are sent.",
            )
        )
    enforce(can_administer_tenant(access_in(actor, tenant)))


# --- validation -------------------------------------------------------------------------------


def route_target_problem(kind: str, target: str) -> str | None:
    """Why `target` cannot be a route of `kind`, or None."""
    if kind == RouteKind.EMAIL:
        try:
            EmailValidator()(target)
        except ValidationError:
            return "Give one email address."
        return None
    return url_syntax_problem(target) or destination_problem(target)


def _validated(kind: Any, target: Any, label: Any) -> tuple[str, str, str]:
    problems: dict[str, list[str]] = {}
    if kind not in RouteKind.values:
        problems["kind"] = [f"Choose one of {', '.join(RouteKind.values)}."]
    target = target.strip() if isinstance(target, str) else ""
    if "kind" not in problems and (problem := route_target_problem(kind, target)):
        problems["target"] = [problem]
    label = label.strip() if isinstance(label, str) else ""
    if len(label) > MAX_LABEL or not label.isprintable():
        problems["label"] = [f"At most {MAX_LABEL} characters on one line."]
    if problems:
        raise InvalidInput(
            "The route is not valid: "
            + " ".join(f"{name}: {' '.join(text)}" for name, text in problems.items()),
            code="alert_route.invalid",
            field_errors=problems,
        )
    return kind, target, label


def _described(route: AlertRoute) -> dict[str, Any]:
    """What every event about a route says of it: never the secret or a URL's path."""
    return {
        "route": route.pk,
        "kind": route.kind,
        "target": route_shown_target(route),
        "label": route.label,
    }


# --- writes -----------------------------------------------------------------------------------


def route_propose(
    *, actor: User, tenant: Tenant, kind: str, target: str, label: str = ""
) -> AlertRoute:
    """Propose a new route (a tenant admin); it sends nothing until a second admin approves.

    Refused for a target that is not an address or a reachable https URL
    (`alert_route.invalid`, with a field error each), a route the tenant has or is deciding
    already (`alert_route.duplicate`), or past `MAX_ROUTES` (`alert_route.too_many`).
    """
    _require_admin(actor, tenant)
    kind, target, label = _validated(kind, target, label)
    with tenant_scope([tenant.pk]):
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one proposal at a time
        open_routes = AlertRoute.objects.for_tenant(tenant).filter(status__in=OPEN_STATUSES)
        if open_routes.filter(kind=kind, target=target).exists():
            raise InvalidInput(
                "This route exists or is waiting for a decision already.",
                code="alert_route.duplicate",
            )
        if open_routes.count() >= MAX_ROUTES:
            raise InvalidInput(
                f"A tenant has at most {MAX_ROUTES} alert routes; remove one first.",
                code="alert_route.too_many",
            )
        route = AlertRoute.objects.create(
            tenant=tenant, kind=kind, target=target, label=label, requested_by=actor
        )
        record(
            action="alert_route.proposed",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=route,
            data=_described(route),
        )
    return route


def route_removal_propose(*, actor: User, route: AlertRoute, reason: str) -> AlertRoute:
    """Propose removing an active route, saying why; it keeps sending until a second admin
    approves the removal."""
    tenant = route.tenant
    _require_admin(actor, tenant)
    reason = _reason(reason)
    with tenant_scope([tenant.pk]):
        locked = _locked(route)
        if locked.status != RouteStatus.ACTIVE:
            raise InvalidInput(
                f"Only an active route can be proposed for removal; this one is {locked.status}.",
                code="alert_route.not_active",
            )
        locked.status = RouteStatus.REMOVAL_PROPOSED
        locked.removal_requested_by, locked.removal_requested_at = actor, timezone.now()
        locked.reason = reason
        locked.save(
            update_fields=["status", "removal_requested_by", "removal_requested_at", "reason"]
        )
        record(
            action="alert_route.removal_proposed",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={**_described(locked), "reason": reason},
        )
    return locked


def route_approve(
    *, actor: User, route: AlertRoute, step_up: StepUpProof | None
) -> tuple[AlertRoute, str]:
    """A second tenant admin approves what is waiting (adding or removing), with a fresh
    step-up. Returns the route and, for a newly active signed webhook, its HMAC key (shown
    once; empty otherwise)."""
    tenant = route.tenant
    _require_admin(actor, tenant)
    with tenant_scope([tenant.pk]):
        locked = _locked(route)
        enforce(can_decide(actor=actor, route=locked, approving=True))
        proof = require_fresh_step_up(step_up, actor)
        now, secret = timezone.now(), ""
        if locked.status == RouteStatus.PROPOSED:
            action, proposer = "alert_route.approved", locked.requested_by
            if locked.kind != RouteKind.EMAIL:
                secret = locked.secret = secrets.token_urlsafe(32)
            locked.status, locked.approved_by, locked.approved_at = RouteStatus.ACTIVE, actor, now
        else:
            action, proposer = "alert_route.removed", locked.removal_requested_by
            locked.status, locked.decided_by, locked.decided_at = RouteStatus.REMOVED, actor, now
        locked.save()
        record(
            action=action,
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={
                **_described(locked),
                "proposed_by": proposer.get_username() if proposer else None,
                "step_up": proof.audit_data(),
            },
        )
    return locked, secret


def route_reject(*, actor: User, route: AlertRoute, reason: str) -> AlertRoute:
    """Another tenant admin turns down what is waiting, saying why: a proposed route is never
    used, a route proposed for removal stays active."""
    return _ended(actor, route, reason, rejecting=True)


def route_withdraw(*, actor: User, route: AlertRoute, reason: str = "") -> AlertRoute:
    """Its proposer takes back what is waiting (as `route_reject`, without a second person)."""
    return _ended(actor, route, reason, rejecting=False)


def _ended(actor: User, route: AlertRoute, reason: str, *, rejecting: bool) -> AlertRoute:
    tenant = route.tenant
    _require_admin(actor, tenant)
    text = _reason(reason) if rejecting else (reason or "").strip()[:300]
    with tenant_scope([tenant.pk]):
        locked = _locked(route)
        check: Callable[..., Decision] = can_decide if rejecting else _own_proposal
        enforce(check(actor=actor, route=locked, approving=False))
        removal = locked.status == RouteStatus.REMOVAL_PROPOSED
        if removal:
            locked.status = RouteStatus.ACTIVE
            locked.removal_requested_by = locked.removal_requested_at = None
        else:
            locked.status = RouteStatus.REJECTED if rejecting else RouteStatus.WITHDRAWN
            locked.decided_by, locked.decided_at = actor, timezone.now()
        locked.reason = text
        locked.save()
        record(
            action="alert_route.rejected" if rejecting else "alert_route.withdrawn",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={**_described(locked), "step": "removal" if removal else "add", "reason": text},
        )
    return locked


def _own_proposal(*, actor: User, route: AlertRoute, approving: bool) -> Decision:
    """Only the account that proposed what is waiting withdraws it."""
    proposer_id = (
        route.requested_by_id
        if route.status == RouteStatus.PROPOSED
        else route.removal_requested_by_id
        if route.status == RouteStatus.REMOVAL_PROPOSED
        else None
    )
    if proposer_id is None or proposer_id != actor.pk:
        return Decision(
            False,
            "alert_route.not_requester",
            "Only whoever proposed this can withdraw it; another admin rejects it.",
        )
    return ALLOW


def _locked(route: AlertRoute) -> AlertRoute:
    locked = (
        AlertRoute.objects.for_tenant(route.tenant)
        .select_for_update(of=("self",))
        .select_related("tenant", "requested_by", "removal_requested_by")
        .filter(pk=route.pk)
        .first()
    )
    if locked is None:
        raise CrossTenantNotFound(AlertRoute._meta.label, route.pk)
    return locked


def _reason(reason: str) -> str:
    return reason_given(
        reason,
        minimum=REASON_MIN,
        code="alert_route.reason_required",
        ask=f"Say why, in at least {REASON_MIN} characters.",
    )[:300]

"""Writes of a tenant's connector: changes under dual control (R-27), and the audited test.

The connector decides where and how every recovery of the tenant happens, so no single person
changes it. A tenant_admin proposes a configuration (`connector_change_request`); a second
tenant_admin, another account and another person, approves it with a fresh step-up
(`connector_change_approve`), which applies it in the same transaction. Another admin may
reject it, its requester may withdraw it. Never through an MSP grant, never an AI assistant.

Each service owns its transaction and writes its audit event in it; a refusal rolls the action
back and is then recorded on its own as `connector.change_refused`, so refused attempts stay
visible. Event data shows settings only through `settings_summary`: no secret (settings only
*name* the variables or files holding them) and no URL path (it may be the receiver's own
credential).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.access import access_in
from tenants.exceptions import CrossTenantNotFound, DomainError, InvalidInput
from tenants.models import Tenant, User
from tenants.policies import Decision, can_administer_tenant, enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof, require_fresh_step_up

from .base import Health
from .choices import ConnectorKind
from .models import ConnectorChange, ConnectorChangeStatus, ConnectorConfig
from .policies import (
    can_approve_change,
    can_reject_change,
    can_test_change,
    can_withdraw_change,
)
from .selectors import connector_build, connector_config_get
from .summary import configuration_sha256, settings_sha256, settings_summary, summary_diff
from .validation import validate_settings

MAX_REASON = 500
MAX_DETAIL = 500


def _require_tenant_admin(actor: User, tenant: Tenant) -> None:
    enforce(ai_blocked(actor, "configure the tenant's connector"))
    enforce(can_administer_tenant(access_in(actor, tenant)))


@contextmanager
def _refusals_recorded(
    actor: User, tenant: Tenant, step: str, change: ConnectorChange | None = None
) -> Iterator[None]:
    """Record any refusal raised inside as `connector.change_refused` (after its rollback),
    re-raise. Field names are recorded, never the values refused."""
    try:
        yield
    except DomainError as refusal:
        with transaction.atomic():
            record(
                action="connector.change_refused",
                actor=Actor.in_tenant(actor, tenant),
                tenant=tenant,
                target=change,
                data={
                    "step": step,
                    "code": refusal.code,
                    "reason": refusal.message[:MAX_REASON],
                    "change": change.pk if change else None,
                    "fields": sorted(refusal.field_errors),
                },
            )
        raise


def _validated(kind: str, settings: Any, is_active: Any) -> dict[str, Any]:
    """`settings` checked for `kind`, defaults filled in; InvalidInput names every problem."""
    if not isinstance(is_active, bool):
        raise InvalidInput(
            "is_active must be true or false.",
            code="connector.settings_invalid",
            field_errors={"is_active": ["Give true or false."]},
        )
    return validate_settings(kind, settings)


def _in_force(config: ConnectorConfig | None) -> tuple[str, dict[str, Any], bool] | None:
    return (config.kind, config.settings, config.is_active) if config else None


def _fingerprint(config: ConnectorConfig | None) -> str:
    return configuration_sha256(*_in_force(config)) if config else ""


def _previous(config: ConnectorConfig | None) -> dict[str, Any] | None:
    """What an event says of the configuration a change replaces (None: there was none)."""
    if config is None:
        return None
    return {
        "kind": config.kind,
        "is_active": config.is_active,
        "settings_sha256": settings_sha256(config.settings),
    }


def _described(change: ConnectorChange) -> dict[str, Any]:
    """What every event about a change says of it: never a secret, never a URL path."""
    return {
        "change": change.pk,
        "kind": change.kind,
        "is_active": change.is_active,
        "settings_summary": settings_summary(change.kind, change.settings),
        "settings_sha256": settings_sha256(change.settings),
    }


def _locked(change: ConnectorChange) -> ConnectorChange:
    return (
        ConnectorChange.objects.for_tenant(change.tenant)
        .select_for_update(of=("self",))
        .select_related("requested_by")
        .get(pk=change.pk)
    )


def _reason(reason: Any, *, required: bool) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if (required and not text) or len(text) > MAX_REASON or not text.isprintable():
        problem = (
            f"Say why, in 1 to {MAX_REASON} characters on one line."
            if required
            else f"At most {MAX_REASON} characters, on one line."
        )
        raise InvalidInput(
            f"The reason is not valid: {problem}",
            code="connector.reason_invalid",
            field_errors={"reason": [problem]},
        )
    return text


# --- propose, approve, reject, withdraw ---------------------------------------------------


def connector_change_request(
    *,
    actor: User,
    tenant: Tenant,
    kind: str,
    settings: dict[str, Any],
    is_active: bool = True,
) -> ConnectorChange:
    """Propose a configuration for the tenant's connector (tenant_admins only); a second
    tenant_admin must approve it before it applies.

    Every setting is checked first (`connector.kind_invalid`, `connector.settings_invalid`
    with `field_errors` per setting) and nothing is stored on a refusal. Refused as well while
    another change is pending (`connector.change_pending`) or when the proposal is the
    configuration in force (`connector.change_empty`).
    """
    with _refusals_recorded(actor, tenant, "request"), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        data = _validated(kind, settings, is_active)
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one pending change at a time
        pending = (
            ConnectorChange.objects.for_tenant(tenant)
            .filter(status=ConnectorChangeStatus.PENDING)
            .first()
        )
        if pending is not None:
            raise InvalidInput(
                f"Change {pending.pk} is waiting for a second tenant admin: it must be "
                "approved, rejected or withdrawn before another is proposed.",
                code="connector.change_pending",
            )
        config = connector_config_get(tenant=tenant)
        current = _in_force(config)
        if current == (kind, data, is_active):
            raise InvalidInput(
                "This is the configuration in force already: nothing would change.",
                code="connector.change_empty",
            )
        change = ConnectorChange.objects.create(
            tenant=tenant,
            kind=kind,
            settings=data,
            is_active=is_active,
            base_sha256=_fingerprint(config),
            requested_by=actor,
        )
        rows = summary_diff(current, (kind, data, is_active))
        record(
            action="connector.change_requested",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=change,
            data={
                **_described(change),
                "changed": [row.name for row in rows if row.changed],
                "previous": _previous(config),
            },
        )
    return change


def connector_change_approve(
    *, actor: User, change: ConnectorChange, step_up: StepUpProof | None
) -> ConnectorChange:
    """A second tenant_admin applies a pending change, proving a fresh step-up (R-27).

    The approver differs from the requester by account and by person_id
    (`sod.approver_is_requester`, `sod.same_person`). The settings are validated again, and
    the configuration in force must be the one the change was proposed against
    (`connector.change_outdated`); the change is applied in the same transaction.
    """
    tenant = change.tenant
    with _refusals_recorded(actor, tenant, "approve", change), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one configuration at a time
        locked = _locked(change)
        enforce(can_approve_change(approver=actor, change=locked))
        proof = require_fresh_step_up(step_up, actor)
        config = ConnectorConfig.objects.for_tenant(tenant).select_for_update(of=("self",)).first()
        validated = _validated(locked.kind, locked.settings, locked.is_active)
        if validated != locked.settings or _fingerprint(config) != locked.base_sha256:
            raise InvalidInput(
                "The connector's configuration or its rules changed since this change was "
                "proposed; reject it and propose it again.",
                code="connector.change_outdated",
            )
        _connector_apply(actor=actor, tenant=tenant, change=locked, config=config)
        locked.status = ConnectorChangeStatus.APPLIED
        locked.decided_by, locked.decided_at = actor, timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at"])
        record(
            action="connector.change_approved",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={
                **_described(locked),
                "requested_by": locked.requested_by.get_username(),
                "step_up": proof.audit_data(),
            },
        )
    return locked


def _connector_apply(
    *, actor: User, tenant: Tenant, change: ConnectorChange, config: ConnectorConfig | None
) -> ConnectorConfig:
    """Write an approved change into the tenant's configuration (`config`, locked by the
    caller, or a new row). Only `connector_change_approve` calls it: nothing else changes the
    connector, so nothing changes it without a second person."""
    previous = _previous(config)
    rows = summary_diff(_in_force(config), (change.kind, change.settings, change.is_active))
    config = config or ConnectorConfig(tenant=tenant)
    config.kind, config.settings, config.is_active = change.kind, change.settings, change.is_active
    config.updated_by = actor
    config.save()
    record(
        action="connector.configured",
        actor=Actor.in_tenant(actor, tenant),
        tenant=tenant,
        target=config,
        data={
            "change": change.pk,
            "kind": config.kind,
            "is_active": config.is_active,
            "previous": previous,
            "changed": [row.name for row in rows if row.changed],
            "settings_sha256": settings_sha256(config.settings),
            "settings_summary": settings_summary(config.kind, config.settings),
        },
    )
    return config


def _decide(
    *,
    actor: User,
    change: ConnectorChange,
    step: str,
    decision: Callable[..., Decision],
    status: str,
    action: str,
    reason: str,
    reason_required: bool,
) -> ConnectorChange:
    """End a pending change without applying it (rejected or withdrawn), audited."""
    tenant = change.tenant
    with _refusals_recorded(actor, tenant, step, change), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        text = _reason(reason, required=reason_required)
        locked = _locked(change)
        enforce(decision(actor=actor, change=locked))
        locked.status, locked.reason = status, text
        locked.decided_by, locked.decided_at = actor, timezone.now()
        locked.save(update_fields=["status", "reason", "decided_by", "decided_at"])
        record(
            action=action,
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={
                **_described(locked),
                "requested_by": locked.requested_by.get_username(),
                "reason": text,
            },
        )
    return locked


def connector_change_reject(
    *, actor: User, change: ConnectorChange, reason: str
) -> ConnectorChange:
    """Another tenant_admin turns a pending change down, saying why; nothing is applied."""
    return _decide(
        actor=actor,
        change=change,
        step="reject",
        decision=can_reject_change,
        status=ConnectorChangeStatus.REJECTED,
        action="connector.change_rejected",
        reason=reason,
        reason_required=True,
    )


def connector_change_withdraw(
    *, actor: User, change: ConnectorChange, reason: str = ""
) -> ConnectorChange:
    """The requester takes back their pending change; nothing is applied."""
    return _decide(
        actor=actor,
        change=change,
        step="withdraw",
        decision=can_withdraw_change,
        status=ConnectorChangeStatus.WITHDRAWN,
        action="connector.change_withdrawn",
        reason=reason,
        reason_required=False,
    )


# --- test connection ----------------------------------------------------------------------


def _health(kind: str, tenant: Tenant, settings: dict[str, Any]) -> Health:
    """The connector's own check, reported as a failure when it raises: an admin testing a
    configuration gets an answer, not a server error. Only the exception's type is kept (its
    message may quote a URL)."""
    try:
        return connector_build(tenant=tenant, kind=kind, settings=settings).health()
    except Exception as error:
        return Health(ok=False, detail=f"The check failed with {type(error).__name__}.")


def connector_test(*, actor: User, tenant: Tenant, change: ConnectorChange | None = None) -> Health:
    """Run the connector's health check (LDAP: bind and search; webhook: key in place; a cloud
    connector: a token and a read) on the configuration in force, or on a pending `change`
    before anyone approves it (tenant_admins only); audited as `connector.tested`.

    The check waits on the network, so no row is locked while it runs.
    """
    with _refusals_recorded(actor, tenant, "test", change):
        _require_tenant_admin(actor, tenant)
        target: ConnectorChange | ConnectorConfig | None
        if change is not None:
            target = ConnectorChange.objects.for_tenant(tenant).filter(pk=change.pk).first()
            if target is None:
                raise CrossTenantNotFound(ConnectorChange._meta.label, change.pk)
            enforce(can_test_change(change=target))
            kind, settings, which = target.kind, target.settings, "pending"
        else:
            target = connector_config_get(tenant=tenant)
            active = target is not None and target.is_active
            kind = target.kind if active else ConnectorKind.MANUAL.value
            settings, which = (target.settings if active else {}), "active"
        health = _health(kind, tenant, settings)
        with transaction.atomic():
            record(
                action="connector.tested",
                actor=Actor.in_tenant(actor, tenant),
                tenant=tenant,
                target=target,
                data={
                    "configuration": which,
                    "change": change.pk if change else None,
                    "kind": kind,
                    "ok": health.ok,
                    "detail": health.detail[:MAX_DETAIL],
                    "settings_summary": settings_summary(kind, settings),
                },
            )
    return health

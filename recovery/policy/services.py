"""Writes of policy versions: draft, request activation, approve (dual control with step-up).

Each service owns its transaction and writes its audit event in it. A refusal rolls the action
back and is then recorded on its own as `policy.rejected`, so refused attempts stay visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext

from audit.context import Actor
from audit.integrity import integrity_refusal
from audit.services import record
from tenants.access import access_in
from tenants.exceptions import DomainError, InvalidInput
from tenants.memo import forget
from tenants.models import Tenant, User
from tenants.policies import can_administer_tenant, enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof, require_fresh_step_up

from .choices import PolicyStatus
from .errors import PolicyInvalid
from .models import PolicyVersion
from .policies import can_approve_activation
from .selectors import ACTIVE_POLICY
from .validation import source_sha256, validate

MAX_ERRORS_AUDITED = 20


def _require_tenant_admin(actor: User, tenant: Tenant) -> None:
    enforce(ai_blocked(actor, "change the recovery policy"))
    enforce(can_administer_tenant(access_in(actor, tenant)))


@contextmanager
def _refusals_recorded(
    actor: User, tenant: Tenant, step: str, version: PolicyVersion | None = None
) -> Iterator[None]:
    """Record any refusal raised inside as `policy.rejected` (after its rollback), re-raise."""
    try:
        yield
    except DomainError as refusal:
        data: dict[str, Any] = {
            "step": step,
            "code": refusal.code,
            "reason": refusal.message,
            "version": version.number if version else None,
        }
        if isinstance(refusal, PolicyInvalid):
            data["errors"] = [e.as_dict() for e in refusal.errors[:MAX_ERRORS_AUDITED]]
        with transaction.atomic():
            record(
                action="policy.rejected",
                actor=Actor.in_tenant(actor, tenant),
                tenant=tenant,
                target=version,
                data=data,
            )
        raise


def _locked(version: PolicyVersion) -> PolicyVersion:
    return (
        PolicyVersion.objects.for_tenant(version.tenant)
        .select_for_update(of=("self",))
        .select_related("created_by", "requested_by")
        .get(pk=version.pk)
    )


def policy_draft_create(*, actor: User, tenant: Tenant, text: str) -> PolicyVersion:
    """Store `text` as the tenant's next policy version, in draft (tenant_admins only).

    The document must pass syntax, schema and every platform floor; otherwise PolicyInvalid
    lists each problem with its path and line, and nothing is stored.
    """
    with _refusals_recorded(actor, tenant, "draft"), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        doc = validate(text)
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one numbering at a time
        latest = PolicyVersion.objects.for_tenant(tenant).aggregate(Max("number"))
        version = PolicyVersion.objects.create(
            tenant=tenant,
            number=(latest["number__max"] or 0) + 1,
            format=doc.format,
            source=text,
            document=doc.data,
            sha256=source_sha256(text),
            created_by=actor,
        )
        record(
            action="policy.drafted",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=version,
            data={"number": version.number, "sha256": version.sha256, "format": doc.format},
        )
    return version


def policy_activation_request(*, actor: User, version: PolicyVersion) -> PolicyVersion:
    """Ask for a draft to be activated; a second tenant_admin must approve it."""
    tenant = version.tenant
    with _refusals_recorded(actor, tenant, "request", version), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        locked = _locked(version)
        if locked.status != PolicyStatus.DRAFT:
            raise InvalidInput(
                f"Only a draft can be put up for activation; this one is {locked.status}.",
                code="policy.not_draft",
            )
        locked.status = PolicyStatus.PENDING_ACTIVATION
        locked.requested_by = actor
        locked.requested_at = timezone.now()
        locked.save(update_fields=["status", "requested_by", "requested_at"])
        record(
            action="policy.activation_requested",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={"number": locked.number, "sha256": locked.sha256},
        )
    return locked


def policy_activation_approve(
    *, actor: User, version: PolicyVersion, step_up: StepUpProof | None
) -> PolicyVersion:
    """A second tenant_admin activates a pending version, proving a fresh step-up (R-27).

    The approver must differ from the author and the requester by account and by person_id.
    The document is validated again against today's floors; the tenant's previous active
    version is superseded in the same transaction.
    """
    tenant = version.tenant
    with _refusals_recorded(actor, tenant, "approve", version), transaction.atomic():
        _require_tenant_admin(actor, tenant)
        if failing := integrity_refusal(tenant, what=gettext("a policy activation")):
            raise failing  # the trail is not trusted (audit.integrity)
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # one activation at a time
        locked = _locked(version)
        enforce(can_approve_activation(approver=actor, version=locked))
        proof = require_fresh_step_up(step_up, actor)
        if source_sha256(locked.source) != locked.sha256:
            raise DomainError(
                "The stored policy source does not match its hash.", code="policy.tampered"
            )
        validate(locked.source)
        current = (
            PolicyVersion.objects.for_tenant(tenant).filter(status=PolicyStatus.ACTIVE).first()
        )
        if current is not None and current.number > locked.number:
            raise InvalidInput(
                f"Version {current.number} is newer and active; draft this text again instead.",
                code="policy.outdated",
            )
        now = timezone.now()
        if current is not None:
            current.status = PolicyStatus.SUPERSEDED
            current.superseded_at = now
            current.save(update_fields=["status", "superseded_at"])
        locked.status = PolicyStatus.ACTIVE
        locked.approved_by = actor
        locked.activated_at = now
        locked.save(update_fields=["status", "approved_by", "activated_at"])
        forget(ACTIVE_POLICY)
        record(
            action="policy.activated",
            actor=Actor.in_tenant(actor, tenant),
            tenant=tenant,
            target=locked,
            data={
                "number": locked.number,
                "sha256": locked.sha256,
                "author": locked.created_by.get_username(),
                "requested_by": locked.requested_by.get_username(),
                "superseded": current.number if current else None,
                "step_up": proof.audit_data(),
            },
        )
    return locked

"""Every write of a mailbox delegation: requested with its case, decided by the mailbox's
owner in their own portal session, granted at the case's execution, recorded by a person where
the connector cannot act, and removed when it expires.

Each function checks its rules, writes its audit event in the same transaction and fails
closed. A call to the vendor is never made while this code holds the audit chain's lock: at
execution the connector is called before anything is recorded (`case_execute`'s pattern), and
the sweep marks a delegation expired in one transaction, calls the connector outside any, then
records the answer in another.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from itertools import islice
from typing import Any, cast

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.context import Actor
from audit.services import record
from tenants.choices import CaseType, Role
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope, tenant_scope
from tenants.stepup import StepUpProof

from ..cases.choices import OPEN_STATUSES, CaseStatus
from ..cases.choices import Decision as ApprovalDecision
from ..cases.models import Approval, CaseExecution, RecoveryCase
from ..cases.steps import PENDING, step_pending, step_record_proof, steps_pending, steps_recorded
from ..cases.transitions import Move, case_move, transition_require
from ..connectors.base import CAPABILITY_MISSING, Capability, ExecutionResult, MailboxDelegating
from ..models import ProtectedAccount
from ..owner.choices import PortalSessionKind
from ..owner.models import OwnerPortalSession
from ..policy.rules import TenantPolicy
from .choices import LIVE_STATUSES, DelegationStatus, OwnerDecision
from .models import MailboxDelegation
from .policies import is_shared_mailbox, mailbox_allowed

logger = logging.getLogger(__name__)

SWEEP_ACTOR = Actor.system("delegation-sweep")
OWNER = Actor.system("mailbox-owner")
SWEEP_BATCH = 100
GRANT, REMOVE = "grant", "remove"
VOID = "void"  # a step that can no longer be done (besides the shared pending and recorded)
# Staff roles whose approval is the "supervisor" half of a delegation's approval.
SUPERVISOR_ROLES = frozenset({Role.SUPERVISOR, Role.SECURITY_OFFICER})


# --- requested, with its case ----------------------------------------------------------------


def delegation_request_open(
    *,
    case: RecoveryCase,
    mailbox: ProtectedAccount | None,
    requested_seconds: int | None,
    policy: TenantPolicy,
    actor: Actor,
) -> MailboxDelegation | None:
    """Inside `case_open`'s transaction, for the case just created: a `mailbox_access` case
    names the shared mailbox it asks access to (for how long, within the policy's maximum);
    any other case type names none. Records `access.delegation_requested`."""
    enforce(mailbox_allowed(case.account, case.case_type, mailbox))
    if case.case_type != CaseType.MAILBOX_ACCESS:
        return None
    assert mailbox is not None  # guaranteed by the policy above
    rules = policy.mailbox_delegation
    if requested_seconds is not None and requested_seconds < 3600:
        raise InvalidInput(
            _("A delegation lasts at least one hour."),
            code="delegation.lifetime_invalid",
            field_errors={"delegation_hours": [_("At least 1 hour.")]},
        )
    lifetime = rules.lifetime(requested_seconds)
    if lifetime is None:
        hours = rules.max_lifetime_seconds // 3600
        raise PolicyDenied(
            _("The tenant's policy allows a mailbox delegation of at most %(hours)s hours.")
            % {"hours": hours},
            code="delegation.lifetime_above_policy",
        )
    delegation = MailboxDelegation.objects.create(
        tenant=case.tenant,
        case=case,
        mailbox=mailbox,
        delegate=case.account,
        owner_external_id=mailbox.mailbox_owner_external_id,
        lifetime_seconds=lifetime,
    )
    record(
        action="access.delegation_requested",
        actor=actor,
        tenant=case.tenant,
        target=case,
        data={
            "delegation": delegation.pk,
            "mailbox": mailbox.external_id,
            "mailbox_type": mailbox.mailbox_type,
            "delegate": case.account.external_id,
            "owner": delegation.owner_external_id,
            "lifetime_seconds": lifetime,
        },
    )
    return delegation


# --- the mailbox owner's decision, in their own portal session ------------------------------


def _owner_proof(session: OwnerPortalSession) -> dict[str, Any]:
    """How the owner's session was authenticated; only an identity provider sign-in (with a
    bound authenticator, checked when the session started) counts. A session opened from a
    link sent by e-mail is refused: the mailbox may be the compromised channel."""
    if session.kind != PortalSessionKind.IDP_ENROLMENT:
        raise PolicyDenied(
            _(
                "Sign in with your organisation's identity provider to decide on access to your "
                "mailbox; a link sent by e-mail is not enough."
            ),
            code="delegation.owner_sign_in_required",
        )
    return {
        "session": session.pk,
        "kind": session.kind,
        "activated_at": session.activated_at.isoformat() if session.activated_at else None,
    }


def delegation_owner_decide(
    *, session: OwnerPortalSession, delegation_id: int, approve: bool
) -> MailboxDelegation:
    """The mailbox's registered owner approves or refuses a requested delegation in their own
    portal session (`recovery.owner.sessions`), never through a bare link. Only the owner the
    system of record names now, and named when it was requested, decides; not the person who
    opened the case; only while the case is open; once (the same answer again changes
    nothing). Records `access.delegation_owner_approved` / `_refused`."""
    decision = OwnerDecision.APPROVED if approve else OwnerDecision.REFUSED
    with tenant_scope([session.tenant_id]), transaction.atomic():
        delegation = (
            MailboxDelegation.objects.for_tenant(session.tenant)
            .select_for_update(of=("self",))
            .select_related("case", "mailbox", "delegate")
            .filter(pk=delegation_id)
            .first()
        )
        owner = session.account
        if (
            delegation is None
            or delegation.owner_external_id != owner.external_id
            or delegation.mailbox.mailbox_owner_external_id != owner.external_id
        ):
            raise InvalidInput(
                _("There is no such request for a mailbox of yours."), code="delegation.not_found"
            )
        if delegation.owner_decision == decision:
            return delegation
        if delegation.owner_decision != OwnerDecision.NONE:
            raise InvalidInput(
                _("You already answered this request."), code="delegation.already_decided"
            )
        proof = _owner_proof(session)
        case = delegation.case
        if owner.person_id is not None and owner.person_id == case.opened_by_person:
            raise PolicyDenied(
                _("You opened this case yourself; the mailbox owner's approval must be another's."),
                code="sod.owner_is_opener",
            )
        if delegation.status != DelegationStatus.REQUESTED or case.status not in OPEN_STATUSES:
            raise InvalidInput(
                _("This request is no longer waiting for an answer."),
                code="delegation.not_pending",
            )
        delegation.owner_decision = decision
        delegation.owner_decided_at = timezone.now()
        delegation.owner_session = session
        delegation.owner_proof = proof
        if not approve:
            delegation.status = DelegationStatus.OWNER_REFUSED
        delegation.save(
            update_fields=[
                "owner_decision",
                "owner_decided_at",
                "owner_session",
                "owner_proof",
                "status",
            ]
        )
        record(
            action=f"access.delegation_owner_{decision}",
            actor=OWNER,
            tenant=session.tenant,
            target=case,
            data={
                "delegation": delegation.pk,
                "owner": owner.external_id,
                "mailbox": delegation.mailbox.external_id,
                "delegate": delegation.delegate.external_id,
                "proof": proof,
            },
        )
    return delegation


# --- execution: the grant -------------------------------------------------------------------


def _supervisor_approved(case: RecoveryCase) -> bool:
    """A live approval of the case by a supervisor or security officer (the normal approval)."""
    live = Approval.objects.for_tenant(case.tenant).filter(
        case=case,
        decision=ApprovalDecision.APPROVED,
        invalidated_at__isnull=True,
        expires_at__gt=Now(),
    )
    return any(SUPERVISOR_ROLES & set(approval.roles or []) for approval in live)


def delegation_execution_refusal(case: RecoveryCase) -> PolicyDenied | None:
    """Why a `mailbox_access` case may not be executed now (None for other case types): its
    mailbox's owner has not approved in their own session, the system of record names another
    owner now, the mailbox is no longer shared, no supervisor approved, or the delegate already
    has a live delegation to it."""
    if case.case_type != CaseType.MAILBOX_ACCESS:
        return None
    delegation = (
        MailboxDelegation.objects.for_tenant(case.tenant)
        .select_related("mailbox")
        .filter(case=case)
        .first()
    )
    if delegation is None:
        return PolicyDenied(
            _("This mailbox access case names no mailbox."), code="delegation.missing"
        )
    if delegation.owner_decision == OwnerDecision.REFUSED:
        return PolicyDenied(
            _("The mailbox's owner refused this request."), code="delegation.owner_refused"
        )
    if delegation.owner_decision != OwnerDecision.APPROVED:
        return PolicyDenied(
            _(
                "The mailbox's registered owner has not approved this request yet; they do so "
                "when signed in to the owner portal."
            ),
            code="delegation.owner_approval_missing",
        )
    mailbox = delegation.mailbox
    if mailbox.mailbox_owner_external_id != delegation.owner_external_id:
        return PolicyDenied(
            _("The system of record names another owner for this mailbox now; ask again."),
            code="delegation.owner_changed",
        )
    if not is_shared_mailbox(mailbox):
        return PolicyDenied(
            _("The mailbox is no longer a shared or functional mailbox."),
            code="delegation.mailbox_not_shared",
        )
    if not _supervisor_approved(case):
        return PolicyDenied(
            _("A supervisor or security officer must approve this request as well."),
            code="delegation.supervisor_approval_missing",
        )
    live = MailboxDelegation.objects.for_tenant(case.tenant).filter(
        mailbox=mailbox, delegate=delegation.delegate_id, status__in=sorted(LIVE_STATUSES)
    )
    if live.exists():
        return PolicyDenied(
            _("This account already has access to this mailbox."),
            code="delegation.already_active",
        )
    return None


def manual_step_words(kind: str, operation: str, mailbox: str, delegate: str) -> str:
    """What a person does in the mail system's own console for a connector that cannot."""
    if kind == "entra":
        if operation == GRANT:
            return (
                f"In Exchange Online PowerShell: Add-MailboxPermission -Identity '{mailbox}' "
                f"-User '{delegate}' -AccessRights FullAccess -InheritanceType All "
                "-AutoMapping $false"
            )
        return (
            f"In Exchange Online PowerShell: Remove-MailboxPermission -Identity '{mailbox}' "
            f"-User '{delegate}' -AccessRights FullAccess -InheritanceType All -Confirm:$false"
        )
    if operation == GRANT:
        return (
            f"In the mail system's admin console, give {delegate} access to the mailbox "
            f"{mailbox} (delegate or full access), and nothing more."
        )
    return (
        f"In the mail system's admin console, remove every access of {delegate} to the "
        f"mailbox {mailbox} (delegate or full access)."
    )


def _step(operation: str, words: str, code: str, error: str = "") -> dict[str, Any]:
    return step_pending(
        step_id=operation,
        operation=operation,
        code=code,
        words=words + (f" The connector answered: {error}" if error else ""),
    )


def delegation_grant(
    *,
    case: RecoveryCase,
    actor: User,
    audit_actor: Actor,
    proof: StepUpProof | None,
    connector: Any,
) -> DomainError | None:
    """Carry out a ready `mailbox_access` case, in `case_execute`'s transaction once its checks
    and the executor's step-up passed: no artifact and no reset link, ever, for the mailbox.

    The execution row and the delegation's new state go first (the database refuses an
    approver or a T2 opener, or a grant without the owner's decision, before the vendor is
    asked); then the connector grants the delegation (a native failure undoes the
    row and is returned, recorded, leaving the case ready); a connector without
    `Capability.MAILBOX_DELEGATE` leaves a manual grant step. The expiry is counted from now.
    """
    delegation = (
        MailboxDelegation.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("mailbox", "delegate")
        .get(case=case)
    )
    mailbox, delegate = delegation.mailbox, delegation.delegate
    savepoint = transaction.savepoint()
    execution = CaseExecution.objects.create(
        tenant=case.tenant,
        case=case,
        connector=connector.kind,
        path="mailbox_delegate_add",
        snapshot=None,
        detail={"delegation": delegation.pk},
        executed_by=actor,
        executed_by_person=actor.person_id,
        step_up=proof.stored_data() if proof else None,
    )
    # Written ahead, so that the database's checks (the owner's decision, one live delegation
    # per mailbox and delegate) refuse before the vendor is asked anything.
    now = timezone.now()
    delegation.status = DelegationStatus.GRANT_PENDING
    delegation.connector = connector.kind
    delegation.expires_at = now + timedelta(seconds=delegation.lifetime_seconds)
    delegation.save(update_fields=["status", "connector", "expires_at"])
    if Capability.MAILBOX_DELEGATE in connector.capabilities:
        result = cast(MailboxDelegating, connector).mailbox_delegate_add(
            mailbox=mailbox, delegate=delegate
        )
    else:
        result = ExecutionResult(
            ok=False,
            connector=connector.kind,
            path="mailbox_delegate_add",
            detail={"code": CAPABILITY_MISSING},
            error="",
        )
    manual = result.detail.get("code") == CAPABILITY_MISSING
    if not result.ok and not manual:
        transaction.savepoint_rollback(savepoint)
        record(
            action="case.execution_failed",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={
                "connector": result.connector,
                "path": result.path,
                "error": result.error,
                "code": result.detail.get("code"),
            },
        )
        return DomainError(
            _("The %(connector)s connector could not grant the delegation: %(error)s")
            % {"connector": result.connector, "error": result.error},
            code="case.execution_failed",
        )
    transaction.savepoint_commit(savepoint)
    delegation.grant_answer = {"ok": result.ok, "path": result.path, **result.detail}
    if manual:
        words = manual_step_words(connector.kind, GRANT, mailbox.username, delegate.username)
        delegation.steps = [_step(GRANT, words, CAPABILITY_MISSING)]
    else:
        delegation.status = DelegationStatus.ACTIVE
        delegation.granted_at = now
    delegation.save(update_fields=["grant_answer", "status", "steps", "granted_at"])
    execution.detail = {**execution.detail, "status": delegation.status}
    execution.save(update_fields=["detail"])
    case_move(case, Move.EXECUTE, CaseStatus.EXECUTED)
    case.revision += 1
    case.save(update_fields=["status", "revision", "updated_at"])
    about = {
        "delegation": delegation.pk,
        "mailbox": mailbox.external_id,
        "delegate": delegate.external_id,
        "connector": connector.kind,
        "expires_at": delegation.expires_at,
    }
    record(
        action="case.executed",
        actor=audit_actor,
        tenant=case.tenant,
        target=case,
        data={
            **about,
            "path": result.path,
            "result": "ok" if result.ok else "manual",
            "artifact": None,
            "executor_kind": actor.kind,
            "step_up": proof.audit_data() if proof else None,
        },
    )
    if manual:
        record(
            action="access.delegation_step_pending",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={**about, "operation": GRANT, "manual_step": delegation.steps[0]["manual_step"]},
        )
    else:
        record(
            action="access.delegation_granted",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={**about, "by": "connector", "answer": delegation.grant_answer},
        )
    return None


# --- manual steps, recorded by a person -----------------------------------------------------


def delegation_pending_steps(delegation: MailboxDelegation | None) -> list[dict[str, Any]]:
    if delegation is None:
        return []
    return steps_pending(delegation.steps)


def delegation_step_record(
    *, actor: User, case: RecoveryCase, step: str, step_up: StepUpProof | None
) -> MailboxDelegation:
    """A person records that they did the pending grant or removal step in the mail system's
    console, with a fresh passkey step-up bound to the case (action "execute"), as for
    containment steps. A grant recorded after the expiry is refused (the sweep removes it)."""
    from ..cases.services.base import audit_actor_of, case_locked, work_access

    enforce(ai_blocked(actor, "record a mailbox delegation step"))
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.RECORD_MANUAL_STEP)
        delegation = (
            MailboxDelegation.objects.for_tenant(case.tenant)
            .select_for_update(of=("self",))
            .select_related("mailbox", "delegate")
            .filter(case=case)
            .first()
        )
        pending = {item["id"]: item for item in delegation_pending_steps(delegation)}
        if delegation is None or step not in pending:
            raise InvalidInput(
                _("There is no pending delegation step with this id on the case."),
                code="delegation.step_unknown",
            )
        now = timezone.now()
        if step == GRANT and delegation.expires_at and delegation.expires_at <= now:
            raise PolicyDenied(
                _("The delegation has expired; it is not granted any more."),
                code="delegation.expired",
            )
        proof = step_record_proof(step_up, actor, case)
        delegation.steps = steps_recorded(delegation.steps, step, by=actor, at=now)
        if step == GRANT:
            delegation.status, delegation.granted_at = DelegationStatus.ACTIVE, now
            action = "access.delegation_granted"
        else:
            delegation.status, delegation.removed_at = DelegationStatus.REMOVED, now
            action = "access.delegation_removed"
        delegation.save(update_fields=["steps", "status", "granted_at", "removed_at"])
        audit_actor = audit_actor_of(actor, access, case.tenant)
        record(
            action="access.delegation_step_recorded",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={
                "delegation": delegation.pk,
                "step": step,
                "manual_step": pending[step]["manual_step"],
                "step_up": proof.audit_data(),
            },
        )
        record(
            action=action,
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={
                "delegation": delegation.pk,
                "mailbox": delegation.mailbox.external_id,
                "delegate": delegation.delegate.external_id,
                "by": "person",
                "expires_at": delegation.expires_at,
            },
        )
    return delegation


def delegation_close_refusal(case: RecoveryCase) -> PolicyDenied | None:
    """A `mailbox_access` case stays executed while its delegation may still give access:
    until the sweep (or a person) has removed it."""
    if case.case_type != CaseType.MAILBOX_ACCESS:
        return None
    delegation = MailboxDelegation.objects.for_tenant(case.tenant).filter(case=case).first()
    if delegation is None or delegation.status in (
        DelegationStatus.REMOVED,
        DelegationStatus.REQUESTED,
        DelegationStatus.OWNER_REFUSED,
    ):
        return None
    return PolicyDenied(
        _(
            "The mailbox delegation of this case is still in place (until %(expires)s); the "
            "case can be closed once it has been removed."
        )
        % {"expires": delegation.expires_at},
        code="case.delegation_active",
    )


def delegation_end_early(*, case: RecoveryCase, actor: Actor, reason: str) -> bool:
    """End the case's delegation now, in the caller's transaction (a repudiated or frozen
    case, a revoked request): a live one is marked expired (`access.delegation_expired` with
    the reason) and the next sweep removes it through the connector, or leaves the removal to
    a person; one still requested can no longer be granted. Whether anything changed."""
    delegation = (
        MailboxDelegation.objects.for_tenant(case.tenant)
        .select_for_update(of=("self",))
        .select_related("tenant", "case", "mailbox", "delegate")
        .filter(case=case)
        .first()
    )
    if delegation is None or delegation.status not in LIVE_STATUSES:
        return False
    _expired(delegation, actor=actor, reason=reason)
    return True


# --- the sweep: expired delegations removed --------------------------------------------------


def delegations_expire_sweep(*, batch: int = SWEEP_BATCH) -> int:
    """Remove every delegation past its expiry (by database time) through the connector that
    granted it; returns how many were removed.

    Each is first marked expired (`access.delegation_expired`) in its own transaction, claimed
    with SKIP LOCKED so two sweeps never take the same row; the connector is called outside
    any transaction; its answer is recorded in another (`access.delegation_removed`, or a
    failure `access.delegation_removal_failed`, tried again by the next sweep). Where the
    connector cannot remove it (no `Capability.MAILBOX_DELEGATE`, another connector now, or a
    grant a person was to make), a manual removal step is left on the delegation and the case
    stays executed until a person records it.
    """
    with system_scope():
        candidates = (
            MailboxDelegation.objects.filter(
                Q(status__in=sorted(LIVE_STATUSES), expires_at__lte=Now())
                | Q(status=DelegationStatus.REMOVAL_PENDING)
            )
            .order_by("expires_at", "pk")
            .values_list("pk", "tenant_id", "steps")
        )
        # One waiting for a person is left to them; read here, not by a JSON lookup, so the
        # sweep runs on the embedded SQLite default too.
        waiting = (
            (pk, tenant_id)
            for pk, tenant_id, steps in candidates.iterator()
            if not any(step.get("state") == PENDING for step in steps or ())
        )
        due = list(islice(waiting, batch))
    removed = 0
    for pk, tenant_id in due:
        try:
            removed += _delegation_expire(pk, tenant_id)
        except Exception:  # one broken row (or connector) must not stop the others
            logger.exception("removing expired mailbox delegation %s failed", pk)
    return removed


def _delegation_expire(pk: int, tenant_id: int) -> int:
    from ..connectors import connector_for

    tenant = Tenant(pk=tenant_id)
    with tenant_scope([tenant_id]), transaction.atomic():
        delegation = (
            MailboxDelegation.objects.for_tenant(tenant)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "case", "mailbox", "delegate")
            .filter(pk=pk)
            .filter(
                Q(status__in=sorted(LIVE_STATUSES), expires_at__lte=Now())
                | Q(status=DelegationStatus.REMOVAL_PENDING)
            )
            .first()
        )
        if delegation is None or delegation_pending_steps(delegation):
            return 0  # taken by another sweep, or waiting for a person
        if delegation.status != DelegationStatus.REMOVAL_PENDING:
            _expired(delegation)
        tenant = delegation.tenant
        connector = connector_for(tenant)
    answer = delegation.grant_answer
    native = (
        delegation.granted_at is not None
        and delegation.connector == connector.kind
        and Capability.MAILBOX_DELEGATE in connector.capabilities
        and answer.get("mailbox_address")
        and answer.get("delegate_address")
    )
    result = None
    if native:
        result = cast(MailboxDelegating, connector).mailbox_delegate_remove(
            mailbox_address=answer["mailbox_address"], delegate_address=answer["delegate_address"]
        )
    with tenant_scope([tenant_id]), transaction.atomic():
        delegation = (
            MailboxDelegation.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("tenant", "case", "mailbox", "delegate")
            .get(pk=pk)
        )
        if delegation.status != DelegationStatus.REMOVAL_PENDING:
            return 0  # a person recorded it meanwhile
        if result is None:
            _removal_step_add(delegation, connector.kind)
            return 0
        return _removal_recorded(delegation, result)


def _expired(
    delegation: MailboxDelegation, *, actor: Actor = SWEEP_ACTOR, reason: str = "expired"
) -> None:
    was = delegation.status
    delegation.status = DelegationStatus.REMOVAL_PENDING
    delegation.ended_at = timezone.now()
    # A grant nobody recorded is void: whether or not a person made it, the removal is due.
    delegation.steps = [
        {**item, "state": VOID} if item["state"] == PENDING else item for item in delegation.steps
    ]
    delegation.save(update_fields=["status", "ended_at", "steps"])
    record(
        action="access.delegation_expired",
        actor=actor,
        tenant=delegation.tenant,
        target=delegation.case,
        data={
            "delegation": delegation.pk,
            "mailbox": delegation.mailbox.external_id,
            "delegate": delegation.delegate.external_id,
            "expires_at": delegation.expires_at,
            "was": was,
            "reason": reason,
        },
    )


def _removal_step_add(delegation: MailboxDelegation, kind: str) -> None:
    words = manual_step_words(
        kind, REMOVE, delegation.mailbox.username, delegation.delegate.username
    )
    delegation.steps = [*delegation.steps, _step(REMOVE, words, CAPABILITY_MISSING)]
    delegation.save(update_fields=["steps"])
    record(
        action="access.delegation_step_pending",
        actor=SWEEP_ACTOR,
        tenant=delegation.tenant,
        target=delegation.case,
        data={
            "delegation": delegation.pk,
            "operation": REMOVE,
            "connector": kind,
            "manual_step": words,
        },
    )


def _removal_recorded(delegation: MailboxDelegation, result: ExecutionResult) -> int:
    answer = {"ok": result.ok, "path": result.path, "error": result.error, **result.detail}
    delegation.removal_answer = answer
    data = {
        "delegation": delegation.pk,
        "mailbox": delegation.mailbox.external_id,
        "delegate": delegation.delegate.external_id,
        "connector": result.connector,
        "answer": answer,
    }
    if not result.ok:
        delegation.save(update_fields=["removal_answer"])
        record(
            action="access.delegation_removal_failed",
            actor=SWEEP_ACTOR,
            tenant=delegation.tenant,
            target=delegation.case,
            data=data,
        )
        return 0
    delegation.status = DelegationStatus.REMOVED
    delegation.removed_at = timezone.now()
    delegation.save(update_fields=["removal_answer", "status", "removed_at"])
    record(
        action="access.delegation_removed",
        actor=SWEEP_ACTOR,
        tenant=delegation.tenant,
        target=delegation.case,
        data={**data, "by": "connector"},
    )
    return 1

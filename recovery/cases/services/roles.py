"""Standing privileged roles after a T2 recovery (R-19): suspended at execution, granted back
only by a separate, approved `privileged_role_restore` case.

- Suspension. A T2 recovery (`SUSPENDING_CASE_TYPES`) asks the tenant's connector to remove
  the subject's standing admin roles (`roles_suspend_call`) right after the recovery's own
  connector call and before anything is recorded, so the audit chain's lock is never held
  across the vendor call. `roles_suspended_record` then keeps the connector's snapshot in a
  `RoleSuspension` row (one active per account: a second T2 recovery adds to it) and records
  `roles.suspended` with the connector's answer. A connector without
  `Capability.ROLES_SUSPEND`, or one that failed (wholly or for some roles), leaves a
  containment step on the execution instead (`containment.step_failed`): pending, it blocks
  closing the case until a person records it with a passkey step-up
  (`containment_step_record`). When the suspension call failed before it could read the roles,
  the execution's own snapshot (taken by the same connector just before) says what to grant
  back.
- Restore. A `privileged_role_restore` case opens only on an account with an active
  suspension (`role_restore_open_check`, `roles.no_active_suspension`) and goes through the
  whole workflow (evidence, approvals at the account's tier by others than the agent, executor
  rules, passkey step-up, all in `case_execute`). Its execution (`roles_restore_execute`)
  issues no artifact and changes no credential: it calls `roles_restore(snapshot)`, records
  `roles.restored` and closes the suspension. Never on a frozen account (`account.frozen`).
  A connector that cannot restore roles leaves the restore as a tracked manual step; one that
  failed altogether leaves the case `ready` to execute again (the restore converges: roles
  already held are not granted twice); one that restored some roles leaves the rest as a
  manual step.
- The re-establishment window (R-35) counts a privileged role granted inside it as a change
  to undo, unless approved: a grant made by the account's approved restore case, reported at
  the time it ran, is that approval (`role_grant_restored`), so the window leaves it alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.context import Actor
from audit.services import record
from tenants.choices import CaseType, Tier
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.rls import system_scope, tenant_scope
from tenants.stepup import StepUpProof

from ...connectors.base import (
    CAPABILITY_MISSING,
    Capability,
    CloudConnector,
    Connector,
    ExecutionResult,
    Snapshot,
    capability_missing,
)
from ...connectors.cloud import ChangeKind, ReportedChange
from ...models import ProtectedAccount
from ...policy.rules import Requirements
from ..choices import CaseStatus
from ..models import CaseExecution, RecoveryCase, RoleSuspension
from ..steps import step_pending
from ..transitions import Move, case_move
from .base import requirements_for

SUSPEND, RESTORE = "roles_suspend", "roles_restore"
# The recoveries after which a T2 account's standing roles are suspended: every case type that
# hands the account to whoever proved to be its owner. Not a restore (it is the way back), nor
# mailbox access (the subject gets a delegation, not their own account back).
SUSPENDING_CASE_TYPES = frozenset(
    {
        CaseType.PASSWORD_RESET,
        CaseType.MFA_RESET,
        CaseType.UNLOCK,
        CaseType.TEMPORARY_ACCESS,
        CaseType.EXCEPTION,
    }
)
# How long before the restore was recorded a grant the provider reports may have been made
# (the connector's calls, and the provider's clock against ours), and how long after.
RESTORE_BEFORE, RESTORE_AFTER = timedelta(minutes=5), timedelta(minutes=1)
NO_ACTIVE_SUSPENSION = "roles.no_active_suspension"
# R-19's time box: the shortest re-grant; the expiry sweep's batch, actor and lease (a row it
# is removing roles of is left to it this long; a sweep that died frees it by then).
REGRANT_MIN_SECONDS = 3600
REGRANT_EXPIRE = "roles_regrant_expire"
REGRANT_SWEEP_BATCH = 100
REGRANT_LEASE = timedelta(minutes=10)
REGRANT_ACTOR = Actor.system("role-regrant-sweep")

logger = logging.getLogger(__name__)


def roles_suspension_due(case: RecoveryCase) -> bool:
    """Whether executing `case` suspends the subject's standing roles (R-19)."""
    return case.tier == Tier.T2 and case.case_type in SUSPENDING_CASE_TYPES


def _called(connector: Connector, operation: str, call: Any) -> ExecutionResult:
    """The connector's answer to `call()`; a connector without ROLES_SUSPEND, or one that
    raised, answers a failure (the step becomes a person's)."""
    if Capability.ROLES_SUSPEND not in connector.capabilities:
        return capability_missing(connector.kind, operation)
    try:
        return cast(ExecutionResult, call())
    except Exception as error:  # a connector that raised must not undo the recovery's record
        return ExecutionResult(
            ok=False,
            connector=connector.kind,
            path=operation,
            detail={"code": "connector.failed"},
            error=f"{type(error).__name__}: {error}"[:300],
        )


def roles_suspend_call(*, connector: Connector, account: ProtectedAccount) -> ExecutionResult:
    """Ask the connector to remove the account's standing admin roles. Nothing is written:
    call it before the transaction that records (`roles_suspended_record`)."""
    return _called(
        connector,
        SUSPEND,
        lambda: cast(CloudConnector, connector).roles_suspend(account=account),
    )


def _roles_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a restore needs of a snapshot: whose roles, at which connector, and which."""
    if not state or state.get("roles") is None:
        return None
    kept = ("connector", "user_id", "username", "roles")
    return {key: state[key] for key in kept if key in state}


def _role_key(role: dict[str, Any]) -> tuple[str, str]:
    return str(role.get("role_id")), str(role.get("scope"))


def _role_names(roles: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{role.get('role_name') or role.get('role_id')} ({role.get('scope')})" for role in roles
    )


def _step_add(execution: CaseExecution, step: dict[str, Any]) -> None:
    """A pending step on the locked `execution`, once (`containment_step_record` records it)."""
    if any(item["id"] == step["id"] for item in execution.containment_steps):
        return
    execution.containment_steps = [*execution.containment_steps, step]
    execution.save(update_fields=["containment_steps"])


def _answer(result: ExecutionResult) -> dict[str, Any]:
    return {
        "connector": result.connector,
        "path": result.path,
        "ok": result.ok,
        "detail": result.detail,
        "error": result.error,
    }


def roles_suspended_record(
    *,
    case: RecoveryCase,
    result: ExecutionResult,
    execution_snapshot: dict[str, Any] | None,
    actor: Actor,
) -> RoleSuspension | None:
    """Record the connector's answer to `roles_suspend_call` for executed `case`, in the
    execution's transaction (its `CaseExecution` exists). Returns the account's active
    suspension (None when the connector found no role to suspend)."""
    snapshot = _roles_state(result.snapshot.state if result.snapshot else None)
    if snapshot is None and not result.ok:
        # The call failed before it read the roles: the recovery's snapshot, taken by the
        # same connector a moment before, lists them.
        snapshot = _roles_state(execution_snapshot)
    if result.ok and snapshot is not None and not snapshot["roles"]:
        record(
            action="roles.suspended",
            actor=actor,
            tenant=case.tenant,
            target=case,
            data={**_answer(result), "roles": [], "suspension": None},
        )
        return None
    suspension = _suspension_keep(case, result.connector, snapshot)
    if result.ok:
        record(
            action="roles.suspended",
            actor=actor,
            tenant=case.tenant,
            target=case,
            data={
                **_answer(result),
                "roles": snapshot["roles"] if snapshot else None,
                "suspension": suspension.pk,
            },
        )
        return suspension
    code = str(result.detail.get("code") or "connector.failed")
    username = case.account.username
    if snapshot is not None:
        words = (
            f"In the directory's admin console, remove these standing admin roles of "
            f"{username} if they still hold them: {_role_names(snapshot['roles'])}."
        )
    else:
        words = (
            f"In the directory's admin console, remove every standing admin role of "
            f"{username} and write down which, for the restore case that grants them back."
        )
    if result.error:
        words += f" The connector answered: {result.error}"
    execution = CaseExecution.objects.for_tenant(case.tenant).select_for_update().get(case=case)
    _step_add(
        execution,
        step_pending(
            step_id=f"{SUSPEND}:{username}",
            operation=SUSPEND,
            target=username,
            code=code,
            words=words,
        ),
    )
    record(
        action="containment.step_failed",
        actor=actor,
        tenant=case.tenant,
        target=case,
        data={
            "operation": SUSPEND,
            "target": username,
            "connector": result.connector,
            "path": result.path,
            "detail": result.detail,
            "code": code,
            "error": result.error,
            "manual_step": words,
            "suspension": suspension.pk,
        },
    )
    return suspension


def _suspension_keep(
    case: RecoveryCase, connector: str, snapshot: dict[str, Any] | None
) -> RoleSuspension:
    """The account's active suspension, made now or, when one is active already, with the
    roles of `snapshot` it lacked added (a second T2 recovery before the restore)."""
    active = (
        RoleSuspension.objects.for_tenant(case.tenant)
        .select_for_update()
        .filter(account_id=case.account_id, restored_at__isnull=True)
        .first()
    )
    if active is None:
        return RoleSuspension.objects.create(
            tenant=case.tenant,
            account_id=case.account_id,
            case=case,
            connector=connector,
            snapshot=snapshot,
        )
    if snapshot is not None and active.snapshot is not None:
        known = {_role_key(role) for role in active.snapshot["roles"]}
        added = [role for role in snapshot["roles"] if _role_key(role) not in known]
        if added:
            active.snapshot = {**active.snapshot, "roles": [*active.snapshot["roles"], *added]}
            active.save(update_fields=["snapshot"])
    return active


# --- the restore case ------------------------------------------------------------------------


def suspension_active(account: ProtectedAccount) -> RoleSuspension | None:
    return (
        RoleSuspension.objects.for_tenant(account.tenant)
        .filter(account=account, restored_at__isnull=True)
        .first()
    )


def role_restore_open_check(account: ProtectedAccount) -> None:
    """A `privileged_role_restore` case opens only on an account whose roles a T2 recovery
    suspended and no restore has granted back (PolicyDenied otherwise)."""
    if suspension_active(account) is None:
        raise PolicyDenied(
            "This account has no suspended privileged roles: a role restore is only for roles "
            "a T2 recovery suspended and no restore has granted back yet.",
            code=NO_ACTIVE_SUSPENSION,
        )


def role_regrant_seconds(
    *, case_type: str, requested_seconds: int | None, req: Requirements
) -> int | None:
    """How long a case of `case_type` opened now grants the suspended roles back (R-19): a
    `privileged_role_restore` case asks for a length (None: the policy's maximum) of at least
    an hour and at most `role_regrant_max_seconds`; any other case type asks for none."""
    if case_type != CaseType.PRIVILEGED_ROLE_RESTORE:
        if requested_seconds is not None:
            raise InvalidInput(
                _("Only a privileged role restore grants roles back for a time."),
                code="roles.regrant_only_for_restore",
                field_errors={"regrant_hours": [_("Only for a privileged role restore.")]},
            )
        return None
    if requested_seconds is None:
        return req.role_regrant_max_seconds
    if requested_seconds < REGRANT_MIN_SECONDS:
        raise InvalidInput(
            _("Roles are granted back for at least one hour."),
            code="roles.regrant_length_invalid",
            field_errors={"regrant_hours": [_("At least 1 hour.")]},
        )
    if requested_seconds > req.role_regrant_max_seconds:
        raise PolicyDenied(
            _(
                "The tenant's policy grants privileged roles back for at most %(hours)s hours "
                "at a time."
            )
            % {"hours": req.role_regrant_max_seconds // 3600},
            code="roles.regrant_above_policy",
        )
    return requested_seconds


def roles_restore_execute(
    *, case: RecoveryCase, actor: User, audit_actor: Actor, step_up: StepUpProof | None
) -> DomainError | None:
    """Carry out ready restore `case` (locked, its executor checked and step-up spent by
    `case_execute`): the connector grants the suspension's roles back, then the execution,
    `roles.restored` and `case.executed` are recorded and the suspension is closed.

    Returns the refusal to raise after the caller's transaction commits (the failure is
    recorded): no active suspension, a frozen account, or a connector that restored nothing.
    """
    from ...connectors import connector_for

    account = (
        ProtectedAccount.objects.for_tenant(case.tenant).select_for_update().get(pk=case.account_id)
    )
    suspension = (
        RoleSuspension.objects.for_tenant(case.tenant)
        .select_for_update()
        .filter(account=account, restored_at__isnull=True)
        .first()
    )
    refusal: DomainError | None = None
    if account.frozen_at is not None:
        refusal = PolicyDenied(
            "The account is frozen pending review; no role is restored on it.",
            code="account.frozen",
        )
    elif suspension is None:
        refusal = PolicyDenied(
            "This account has no suspended privileged roles any more (a restore granted them "
            "back already).",
            code=NO_ACTIVE_SUSPENSION,
        )
    elif suspension.suspended_at > case.created_at:
        # the roles were suspended again (a re-grant's time box ended, or another T2
        # recovery) after this case was opened: it was approved for an earlier suspension.
        refusal = PolicyDenied(
            "The roles were suspended again after this restore case was opened; open a new "
            "restore case to grant them back.",
            code="roles.restore_case_stale",
        )
    if refusal is not None:
        _restore_failed(case, audit_actor, refusal.code, refusal.message, None)
        return refusal
    assert suspension is not None
    connector = connector_for(case.tenant)
    snapshot = suspension.snapshot
    # Natively only by the kind of connector that took the roles, from what it recorded; a
    # connector changed since, or roles a person removed, are granted back by a person.
    native = (
        Capability.ROLES_SUSPEND in connector.capabilities
        and snapshot is not None
        and snapshot.get("connector") == connector.kind
    )
    if native:
        state = Snapshot(account.external_id, snapshot)
        result = _called(
            connector,
            RESTORE,
            lambda: cast(CloudConnector, connector).roles_restore(account=account, snapshot=state),
        )
    else:
        result = capability_missing(connector.kind, RESTORE)
    if not result.ok and native and not result.detail.get("done"):
        refusal = DomainError(
            f"The {result.connector} connector could not restore the roles: {result.error}",
            code="roles.restore_failed",
        )
        _restore_failed(case, audit_actor, refusal.code, result.error, result)
        return refusal
    _restored(case, actor, audit_actor, account, suspension, result, step_up)
    return None


def _restore_failed(
    case: RecoveryCase,
    audit_actor: Actor,
    code: str,
    error: str,
    result: ExecutionResult | None,
) -> None:
    record(
        action="case.execution_failed",
        actor=audit_actor,
        tenant=case.tenant,
        target=case,
        data={
            "code": code,
            "error": error,
            "connector": result.connector if result else None,
            "path": result.path if result else None,
            "detail": result.detail if result else None,
        },
    )


def _restored(
    case: RecoveryCase,
    actor: User,
    audit_actor: Actor,
    account: ProtectedAccount,
    suspension: RoleSuspension,
    result: ExecutionResult,
    step_up: StepUpProof | None,
) -> None:
    roles = suspension.snapshot["roles"] if suspension.snapshot else None
    steps: list[dict[str, Any]] = []
    if not result.ok:
        if result.detail.get("failed"):
            what = "; ".join(step["step"] for step in result.detail["failed"])
            words = f"In the directory's admin console, grant {account.username} back: {what}."
        elif roles is not None:
            words = (
                f"In the directory's admin console, grant {account.username} back these admin "
                f"roles (eligible where the directory offers it): {_role_names(roles)}."
            )
        else:
            words = (
                f"In the directory's admin console, grant {account.username} back the admin "
                f"roles removed when case {suspension.case_id} was executed (its manual step "
                "says which)."
            )
        if result.error:
            words += f" The connector answered: {result.error}"
        steps.append(
            step_pending(
                step_id=f"{RESTORE}:{account.username}",
                operation=RESTORE,
                target=account.username,
                code=str(result.detail.get("code") or "connector.failed"),
                words=words,
            )
        )
    with transaction.atomic():  # a savepoint: the executor trigger may refuse it
        CaseExecution.objects.create(
            tenant=case.tenant,
            case=case,
            connector=result.connector,
            path=result.path,
            snapshot=None,
            detail=result.detail,
            executed_by=actor,
            executed_by_person=actor.person_id,
            step_up=step_up.stored_data() if step_up else None,
            containment_steps=steps,
        )
    now = timezone.now()
    suspension.restored_at, suspension.restore_case = now, case
    suspension.regrant_until = now + timedelta(seconds=regrant_box(case))
    suspension.save(update_fields=["restored_at", "restore_case", "regrant_until"])
    record(
        action="roles.restored",
        actor=audit_actor,
        tenant=case.tenant,
        target=case,
        data={
            **_answer(result),
            "suspension": suspension.pk,
            "suspended_by_case": suspension.case_id,
            "roles": roles,
            "manual_step": steps[0]["manual_step"] if steps else None,
            "regrant_until": suspension.regrant_until,
        },
    )
    case_move(case, Move.EXECUTE, CaseStatus.EXECUTED)
    case.revision += 1
    case.save(update_fields=["status", "revision", "updated_at"])
    record(
        action="case.executed",
        actor=audit_actor,
        tenant=case.tenant,
        target=case,
        data={
            "connector": result.connector,
            "path": result.path,
            "result": "ok" if result.ok else "manual_step",
            "artifact": None,
            "roles_restored": suspension.pk,
            "executor_kind": actor.kind,
            "step_up": step_up.audit_data() if step_up else None,
        },
    )


# --- the re-establishment window -------------------------------------------------------------


def _names(role: dict[str, Any]) -> set[str]:
    return {str(role.get(key) or "").strip().lower() for key in ("role_id", "role_name")} - {""}


def _granted_names(change: ReportedChange) -> set[str]:
    """The roles a provider's record of a grant names: Entra `role_id`/`role_name`, Google
    `ROLE_NAME`, Okta `privilege` (comma-separated)."""
    target = change.target
    names = {
        str(target.get(key) or "").strip().lower() for key in ("role_id", "role_name", "ROLE_NAME")
    }
    names |= {part.strip().lower() for part in str(target.get("privilege") or "").split(",")}
    return names - {""}


def role_grant_restored(account: ProtectedAccount, change: ReportedChange) -> bool:
    """Whether `change` is a role grant the account's approved restore case made: R-35 refuses
    activating privileged roles in the window unless approved, and a restore case is that
    approval (two approvers at T2, executor rules, a passkey step-up). It must name a role the
    restore granted back and fall in the time the restore ran; anything else is undone."""
    if change.kind != ChangeKind.PRIVILEGED_ROLE:
        return False
    granted = _granted_names(change)
    if not granted:
        return False
    restores = RoleSuspension.objects.for_tenant(account.tenant).filter(
        account=account,
        restore_case__isnull=False,
        restored_at__gte=change.at - RESTORE_AFTER,
        restored_at__lte=change.at + RESTORE_BEFORE,
    )
    for suspension in restores:
        roles = (suspension.snapshot or {}).get("roles") or []
        restored = set().union(*(_names(role) for role in roles)) if roles else set()
        if granted <= restored:
            return True
    return False


def roles_suspend_undo(
    connector: Connector, account: ProtectedAccount, suspended: ExecutionResult
) -> ExecutionResult:
    """Grant back what `roles_suspend_call` took, when the execution it went with is refused
    after all (its artifact could not be issued, the executor trigger refused it)."""
    taken = suspended.snapshot
    assert taken is not None
    return _called(
        connector,
        RESTORE,
        lambda: cast(CloudConnector, connector).roles_restore(account=account, snapshot=taken),
    )


# --- the re-grant's time box (R-19) ----------------------------------------------------------


def regrant_box(case: RecoveryCase) -> int:
    """How long restore `case`, executed now, grants the roles back: the length it asked for
    at opening, never more than the maximum of the stricter of its two policy versions (a
    tightening since it opened applies); a case opened without one gets that maximum."""
    longest = requirements_for(case).role_regrant_max_seconds
    return min(case.regrant_seconds or longest, longest)


def roles_regrant_close_refusal(case: RecoveryCase) -> PolicyDenied | None:
    """A restore case stays executed while the roles it granted back are held: its time box
    ends first (the expiry sweep removes them, or a person does, recorded on the case)."""
    if case.case_type != CaseType.PRIVILEGED_ROLE_RESTORE:
        return None
    live = (
        RoleSuspension.objects.for_tenant(case.tenant)
        .filter(restore_case=case, regrant_ended_at__isnull=True)
        .first()
    )
    if live is None:
        return None
    return PolicyDenied(
        _(
            "The roles this case granted back are held until %(until)s; the case can be closed "
            "once they have been removed again."
        )
        % {"until": live.regrant_until},
        code="case.regrant_active",
    )


def _regrant_due() -> Q:
    """Restored, not ended, past the time box (database time), and no sweep's lease on it."""
    ended = Q(restored_at__isnull=False, regrant_ended_at__isnull=True, regrant_until__lte=Now())
    return ended & (Q(regrant_lease_until__isnull=True) | Q(regrant_lease_until__lt=Now()))


def role_regrant_end_early(case: RecoveryCase) -> bool:
    """The roles `case` (a restore) granted back are due for removal now, in the caller's
    transaction (its owner repudiated it): the next expiry sweep removes them through the
    connector and suspends the account again. Whether a live re-grant was ended."""
    return bool(
        RoleSuspension.objects.for_tenant(case.tenant)
        .filter(restore_case=case, restored_at__isnull=False, regrant_ended_at__isnull=True)
        .update(regrant_until=Now())
    )


def roles_regrant_expire_sweep(*, batch: int = REGRANT_SWEEP_BATCH) -> int:
    """Remove again, through the tenant's connector, the roles of every re-grant whose time
    box has ended (by database time), and suspend the account again; returns how many ended.

    Each row is claimed with SKIP LOCKED and a lease in a short transaction (two sweeps never
    take the same row, and no lock is held across the call to the provider); the connector's
    `roles_suspend` is called outside any transaction; its answer is recorded in another:
    `roles.regrant_expired` and a new active suspension (another restore case is needed), or
    `roles.regrant_expiry_failed`, the row staying due for the next sweep. A connector that
    cannot remove roles leaves a tracked manual step on the restore case instead, and the
    account is suspended again all the same.
    """
    with system_scope():
        due = list(
            RoleSuspension.objects.filter(_regrant_due())
            .order_by("regrant_until", "pk")
            .values_list("pk", "tenant_id")[:batch]
        )
    ended = 0
    for pk, tenant_id in due:
        try:
            ended += _regrant_expire(pk, tenant_id)
        except Exception:  # one broken row must not stop the others; it stays due
            logger.exception("ending the re-grant of role suspension %s failed", pk)
    return ended


def _regrant_expire(pk: int, tenant_id: int) -> int:
    from ...connectors import connector_for

    tenant = Tenant(pk=tenant_id)
    with tenant_scope([tenant_id]), transaction.atomic():
        suspension = (
            RoleSuspension.objects.for_tenant(tenant)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "account")
            .filter(_regrant_due(), pk=pk)
            .first()
        )
        if suspension is None:
            return 0  # taken by another sweep, or ended meanwhile
        RoleSuspension.objects.filter(pk=pk).update(regrant_lease_until=Now() + REGRANT_LEASE)
        tenant, account = suspension.tenant, suspension.account
        unusable: Exception | None = None
        try:
            connector: Connector | None = connector_for(tenant)
        except Exception as error:  # a configuration that no longer builds: retried
            connector, unusable = None, error
    if connector is None:
        result = ExecutionResult(
            ok=False,
            connector="",
            path=SUSPEND,
            detail={"code": "connector.unavailable"},
            error=f"{type(unusable).__name__}: {unusable}"[:300] if unusable else "",
        )
    else:
        result = roles_suspend_call(connector=connector, account=account)
    with tenant_scope([tenant_id]), transaction.atomic():
        suspension = (
            RoleSuspension.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("tenant", "account", "restore_case")
            .get(pk=pk)
        )
        if suspension.regrant_ended_at is not None:
            return 0  # another sweep recorded it after our lease lapsed
        manual = result.detail.get("code") == CAPABILITY_MISSING
        if not result.ok and not manual:
            _regrant_expiry_failed(suspension, result)
            return 0
        _regrant_ended(suspension, result, manual)
    return 1


def _regrant_expiry_failed(suspension: RoleSuspension, result: ExecutionResult) -> None:
    suspension.regrant_lease_until = None  # due again at the next sweep
    suspension.save(update_fields=["regrant_lease_until"])
    record(
        action="roles.regrant_expiry_failed",
        actor=REGRANT_ACTOR,
        tenant=suspension.tenant,
        target=suspension.restore_case,
        data={
            **_answer(result),
            "suspension": suspension.pk,
            "regrant_until": suspension.regrant_until,
            "code": str(result.detail.get("code") or "connector.failed"),
        },
    )


def _roles_merged(
    restored: dict[str, Any] | None, taken: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What the next restore grants back: the roles the re-grant gave back, and any other
    standing admin role the connector removed now (kept once each). The former stay listed
    when they were gone already (a retry after a crash, or a person removed them)."""
    if restored is None and taken is None:
        return None
    base = dict(taken or restored or {})
    roles = list((restored or {}).get("roles") or [])
    known = {_role_key(role) for role in roles}
    roles += [role for role in (taken or {}).get("roles") or [] if _role_key(role) not in known]
    return {**base, "roles": roles}


def _regrant_ended(suspension: RoleSuspension, result: ExecutionResult, manual: bool) -> None:
    """The time box is over: the account is suspended again (a new active suspension, or the
    one a T2 recovery made meanwhile, with these roles added); what the connector could not
    remove is a person's tracked step on the restore case."""
    account = suspension.account
    taken = _roles_state(result.snapshot.state if result.snapshot else None)
    snapshot = _roles_merged(_roles_state(suspension.snapshot), taken)
    active = (
        RoleSuspension.objects.for_tenant(suspension.tenant)
        .select_for_update()
        .filter(account=account, restored_at__isnull=True)
        .first()
    )
    if active is None:
        active = RoleSuspension.objects.create(
            tenant=suspension.tenant,
            account=account,
            case_id=suspension.case_id,
            connector=result.connector or suspension.connector,
            snapshot=snapshot,
            follows=suspension,
        )
    elif snapshot is not None and active.snapshot is not None:
        known = {_role_key(role) for role in active.snapshot["roles"]}
        added = [role for role in snapshot["roles"] if _role_key(role) not in known]
        if added:
            active.snapshot = {**active.snapshot, "roles": [*active.snapshot["roles"], *added]}
            active.save(update_fields=["snapshot"])
    words = None
    if manual:
        restore = cast(RecoveryCase, suspension.restore_case)
        roles = (snapshot or {}).get("roles")
        if roles:
            words = (
                f"The time-boxed re-grant of case {restore.pk} has ended: in the directory's "
                f"admin console, remove these admin roles of {account.username}: "
                f"{_role_names(roles)}."
            )
        else:
            words = (
                f"The time-boxed re-grant of case {restore.pk} has ended: in the directory's "
                f"admin console, remove the admin roles granted back to {account.username} "
                "(the restore's manual step says which)."
            )
        execution = (
            CaseExecution.objects.for_tenant(suspension.tenant)
            .select_for_update()
            .get(case=restore)
        )
        _step_add(
            execution,
            step_pending(
                step_id=f"{REGRANT_EXPIRE}:{account.username}",
                operation=REGRANT_EXPIRE,
                target=account.username,
                code=str(result.detail.get("code")),
                words=words,
            ),
        )
    now = timezone.now()
    suspension.regrant_ended_at, suspension.regrant_lease_until = now, None
    suspension.save(update_fields=["regrant_ended_at", "regrant_lease_until"])
    record(
        action="roles.regrant_expired",
        actor=REGRANT_ACTOR,
        tenant=suspension.tenant,
        target=suspension.restore_case,
        data={
            **_answer(result),
            "suspension": suspension.pk,
            "regrant_until": suspension.regrant_until,
            "roles": (snapshot or {}).get("roles"),
            "suspended_again": active.pk,
            "by": "person" if manual else "connector",
            "manual_step": words,
        },
    )

"""The owner's "this wasn't me" (R-41), the revert it triggers (R-37), and the frozen account.

A repudiation covers the whole account (`case_repudiate`):

1. Freeze, in one transaction (the caller's, when it has one): the account gets `frozen_at`;
   the repudiated case, and every other active recovery of the account (open, or executed
   and not closed), becomes `frozen`, its artifacts revoked, each recorded as
   `case.repudiated`; the passkeys and codes the owner portal took in the quarantine window
   go; an alert is raised, which the tenant's alert routes (its security contacts, chat and
   webhooks) carry once it commits (`integrations.routes`).
2. Revert (`account_revert`), once that has committed, still in the owner's request: each
   frozen execution is put back through the connector that made it, one step at a time, from
   its snapshot. A cloud connector deletes the one-time pass, removes every sign-in method
   registered since the execution (those the snapshot does not list: the one containment
   kept too) and ends every session, last; LDAP and the webhook restore the snapshot. Each
   step the connector did is recorded as `change.reverted` with its answer; one it failed or
   cannot do, and every step the manual connector lists, is a tracked revert step
   (`revert.step_pending`) that a person does in the directory's console and records with a
   passkey step-up (`revert_step_record`). Once none is pending the case is `reverted`.

The connector is asked outside any transaction: the audit chain's lock is never held across
a call to the provider. The owner's request carries the freeze whatever the revert does; a
request that dies between the two leaves executions with `revert_ran_at` unset, which the
next click, or `account_revert_sweep`, reverts. Revert steps are safe to repeat (a method
already gone counts as removed), and the recording transaction records each execution once.

A frozen account: no execution, owner binding or enrolment on it, and no case opened on it
but by a security officer (`case_open_refusal`). A security officer lifts the freeze
(`account_unfreeze`, with a reason and a fresh step-up), refused while a revert step is
pending. The re-establishment window's freeze (`window.py`) is the same `frozen_at`, lifted
the same way.

Admin roles are left as they are: a repudiated T2 recovery keeps the roles it suspended
suspended (restoring them onto a frozen account would hand them to whoever is in it); they
come back only through a `privileged_role_restore` case.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.context import Actor
from audit.services import record
from tenants.access import TenantAccess, access_in
from tenants.choices import CaseType, Role
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import ALLOW, Decision, enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope, tenant_scope
from tenants.stepup import StepUpProof, require_fresh_step_up

from ...artifacts.services import artifacts_revoke_for_case
from ...connectors.base import (
    Capability,
    CloudConnector,
    Connector,
    ExecutionResult,
    Snapshot,
    capability_missing,
)
from ...connectors.vendor_http import VendorError
from ...models import ProtectedAccount
from ...notifications.models import OwnerNotice
from ..choices import OPEN_STATUSES, CaseStatus, ChangeOutcome
from ..models import CaseExecution, RecoveryCase, WindowChange
from ..steps import (
    RECORDED,
    step_record_proof,
    steps_pending,
    steps_recorded,
)
from ..transitions import TRANSITIONS, Move, case_move, transition_require
from .base import audit_actor_of, case_end, case_locked, work_access
from .containment import (
    METHOD_REMOVE,
    PASSWORD_KINDS,
    SESSIONS_REVOKE,
    TEMPORARY_ACCESS_REVOKE,
    StepOutcome,
    containment_pending,
    manual_step_words,
    outcomes_record,
)
from .roles import role_regrant_end_early
from .window import CHANGE_UNDO

logger = logging.getLogger(__name__)

OWNER = Actor.system("account-owner")
REVERT_ACTOR = Actor.system("revert")
# A recovery still in force: open, or executed and not closed.
ACTIVE_STATUSES = frozenset({*OPEN_STATUSES, CaseStatus.EXECUTED})
SNAPSHOT_RESTORE = "snapshot_restore"
MANUAL_STEP = "manual_step"
CONNECTOR_CHANGED = "connector_changed"
MANUAL_CODE = "connector.manual_step"
# A revert the request did not finish is left this long to the request before the sweep.
REVERT_GRACE = timedelta(minutes=2)
UNFREEZE_REASON_MIN = 10


# --- 1. freeze ------------------------------------------------------------------------------


def case_repudiate(*, notice: OwnerNotice) -> RecoveryCase:
    """The owner's "this wasn't me" (R-41) on a case notice: freeze the account and every
    active recovery on it, revoke their artifacts, page the security contact; then, once that
    has committed, revert each executed recovery through its connector (`account_revert`).

    Idempotent: a second click freezes nothing more and only finishes a revert that did not
    run. Runs in the owner's request, inside the caller's transaction if it has one (the
    revert then runs after it commits), so it is done long before the one-minute target.
    """
    with tenant_scope([notice.tenant_id]):  # the owner has no session: the notice names it
        case = case_locked(notice.case)
        if TRANSITIONS[Move.REPUDIATE].allows(case.status):
            _freeze(case, notice)
        tenant, account_id = case.tenant, case.account_id
        transaction.on_commit(
            lambda: account_revert(tenant=tenant, account_id=account_id), robust=True
        )
    with tenant_scope([notice.tenant_id]):
        return RecoveryCase.objects.for_tenant(case.tenant).select_related("tenant").get(pk=case.pk)


def _freeze(case: RecoveryCase, notice: OwnerNotice) -> None:
    """Step 1 in the caller's transaction: the locked `case` and every active recovery of its
    account frozen (cases locked before the account, in the order `case_execute` locks them)."""
    from ...owner.enrolment import portal_credentials_take_back  # the portal sits beside

    others = list(
        RecoveryCase.objects.for_tenant(case.tenant)
        .select_for_update()
        .filter(account_id=case.account_id, status__in=ACTIVE_STATUSES)
        .exclude(pk=case.pk)
        .order_by("pk")
    )
    account = (
        ProtectedAccount.objects.for_tenant(case.tenant).select_for_update().get(pk=case.account_id)
    )
    # A case opened while this waited for the account's lock is frozen as well.
    late = (
        RecoveryCase.objects.for_tenant(case.tenant)
        .select_for_update()
        .filter(account_id=case.account_id, status__in=ACTIVE_STATUSES)
        .exclude(pk__in=[case.pk, *(other.pk for other in others)])
        .order_by("pk")
    )
    others += list(late)
    was_frozen = account.frozen_at is not None
    if not was_frozen:
        account.frozen_at = timezone.now()
        account.save(update_fields=["frozen_at"])
    # A passkey bound after this recovery was the recoverer's: it goes too.
    taken = portal_credentials_take_back(account)
    case_frozen(
        case,
        notice=notice,
        was_frozen=was_frozen,
        reason="Repudiated by the account owner.",
        extra=taken.as_data(),
    )
    for other in others:
        case_frozen(
            other,
            notice=notice,
            was_frozen=was_frozen,
            reason=f"Frozen: the account owner repudiated case {case.pk}.",
            extra={"via_case": case.pk},
        )
    record(
        action="alert.raised",
        actor=Actor.system("detection"),
        tenant=case.tenant,
        target=case,
        data={
            "type": "repudiation",
            "notice": notice.pk,
            "cases_frozen": [case.pk, *(other.pk for other in others)],
        },
    )


def case_frozen(
    case: RecoveryCase,
    *,
    notice: OwnerNotice,
    was_frozen: bool,
    reason: str,
    extra: dict[str, Any],
) -> None:
    """One locked active recovery of a repudiated account frozen, its artifacts revoked, and
    `case.repudiated` recorded; an executed one is left for `account_revert`. `reason` is
    stored data, in the trail's language (not the request's)."""
    from ...delegation.services import delegation_end_early  # the delegation app sits beside

    previous = case.status
    revoked = artifacts_revoke_for_case(case=case, reason="repudiated", actor=OWNER)
    delegation_ended = delegation_end_early(case=case, actor=OWNER, reason="repudiated")
    regrant_ended = role_regrant_end_early(case)  # the roles a restore gave back go again
    executed = CaseExecution.objects.for_tenant(case.tenant).filter(case=case).exists()
    case_end(case, Move.REPUDIATE, status=CaseStatus.FROZEN, reason=reason)
    record(
        action="case.repudiated",
        actor=OWNER,
        tenant=case.tenant,
        target=case,
        data={
            "notice": notice.pk,
            "from": previous,
            "artifacts_revoked": revoked,
            "account_frozen": True,
            "account_was_frozen": was_frozen,
            "revert": "pending" if executed else None,
            "delegation_ended": delegation_ended,
            "regrant_ended": regrant_ended,
            **extra,
        },
    )


def account_cases_locked(*, tenant: Tenant, account_id: int) -> list[RecoveryCase]:
    """The account's active recoveries, locked (before the account is: the order
    `case_execute` locks in), oldest first."""
    return list(
        RecoveryCase.objects.for_tenant(tenant)
        .select_for_update()
        .select_related("tenant", "account")
        .filter(account_id=account_id, status__in=ACTIVE_STATUSES)
        .order_by("pk")
    )


# --- 2. revert ------------------------------------------------------------------------------


def account_revert(*, tenant: Tenant, account_id: int, connector: Connector | None = None) -> int:
    """Revert every frozen execution of the account whose revert has not run: the connector
    first, outside any transaction, then one recording transaction per execution. Returns
    how many executions were reverted here (0 when another caller did them first)."""
    with tenant_scope([tenant.pk]):
        executions = list(
            CaseExecution.objects.for_tenant(tenant)
            .select_related("case", "case__account", "case__tenant")
            .filter(
                case__account_id=account_id,
                case__status=CaseStatus.FROZEN,
                revert_ran_at__isnull=True,
            )
            .order_by("pk")
        )
        unusable = ""
        if executions and connector is None:
            from ...connectors import connector_for

            try:
                connector = connector_for(tenant)
            except Exception as error:  # a configuration that no longer builds: by hand
                logger.exception("revert for tenant %s: no connector", tenant.pk)
                unusable = f"{type(error).__name__}: {error}"[:300]
    done = 0
    for execution in executions:
        if connector is None:
            outcomes = [_unusable(execution, unusable)]
        else:
            outcomes = revert_run(connector=connector, execution=execution)
        done += revert_record(execution_id=execution.pk, tenant=tenant, outcomes=outcomes)
    return done


def _unusable(execution: CaseExecution, error: str) -> StepOutcome:
    words = (
        f"The tenant's connector cannot be used ({error}): put back by hand what the case "
        f"changed for {execution.case.account.username} through {execution.connector} "
        f"({execution.path[:300]})."
    )
    return _manual(CONNECTOR_CHANGED, execution.connector, "", words)


def account_revert_sweep(*, batch: int = 100) -> int:
    """The safety net: revert executions frozen more than `REVERT_GRACE` ago whose revert
    never ran (the owner's request died between the freeze and the revert). Account by
    account; a failure of one is logged and left for the next round."""
    with system_scope():
        rows = list(
            CaseExecution.objects.filter(
                case__status=CaseStatus.FROZEN,
                revert_ran_at__isnull=True,
                case__ended_at__lt=timezone.now() - REVERT_GRACE,
            )
            .values_list("tenant_id", "case__account_id")
            .distinct()
            .order_by("tenant_id", "case__account_id")[:batch]
        )
        tenants = Tenant.objects.in_bulk({tenant_id for tenant_id, _account in rows})
    done = 0
    for tenant_id, account_id in rows:
        try:
            done += account_revert(tenant=tenants[tenant_id], account_id=account_id)
        except Exception:
            logger.exception("revert of account %s (tenant %s) failed", account_id, tenant_id)
    return done


def revert_run(*, connector: Connector, execution: CaseExecution) -> list[StepOutcome]:
    """Ask the connector to put back what `execution` changed, step by step; nothing is
    written here. Through the connector that made the change only: if the tenant's
    connector is another kind now, the whole revert is a person's."""
    account = execution.case.account
    if execution.case.case_type in (CaseType.MAILBOX_ACCESS, CaseType.PRIVILEGED_ROLE_RESTORE):
        # Neither changed the account's sign-in: a delegation, or roles granted back. Each
        # ended with the freeze (`case_frozen`) and its sweep takes it back at the provider.
        return []
    if connector.kind != execution.connector:
        words = (
            f"The change was made through the {execution.connector} connector, but the "
            f"tenant's connector is now {connector.kind}: put back by hand what the case "
            f"changed for {account.username} ({execution.path[:300]})."
        )
        return [_manual(CONNECTOR_CHANGED, execution.connector, connector.kind, words)]
    if execution.detail.get("requires_confirmation") or not connector.capabilities:
        return _listed(connector, execution)
    try:
        if Capability.TEMPORARY_PASS in connector.capabilities:
            return _cloud_revert(connector, execution)  # type: ignore[arg-type]
        if Capability.REVERT in connector.capabilities and execution.snapshot:
            result = connector.revert(
                account=account, snapshot=Snapshot(account.external_id, execution.snapshot)
            )
            return [StepOutcome.of(SNAPSHOT_RESTORE, connector.kind, result)]
    except Exception as error:  # a connector that raised: a person does it
        logger.exception(
            "revert of execution %s: the %s connector raised", execution.pk, connector.kind
        )
        failed = ExecutionResult(
            ok=False,
            connector=connector.kind,
            path="revert",
            detail={"code": "connector.failed"},
            error=f"{type(error).__name__}: {error}"[:300],
        )
        return [StepOutcome.of(SNAPSHOT_RESTORE, connector.kind, failed)]
    missing = capability_missing(connector.kind, "revert")
    return [StepOutcome.of(SNAPSHOT_RESTORE, connector.kind, missing)]


def _manual(operation: str, target: str, connector: str, words: str) -> StepOutcome:
    return StepOutcome(
        operation=operation,
        target=target,
        ok=False,
        connector=connector,
        path="",
        code=MANUAL_CODE,
        detail={"manual_step": words},
    )


def _listed(connector: Connector, execution: CaseExecution) -> list[StepOutcome]:
    """The manual connector: its revert steps, then its steps ending the temporary access,
    each a tracked step (the same words once)."""
    account = execution.case.account
    steps: list[str] = []
    for result in (
        connector.revert(account=account, snapshot=Snapshot(account.external_id, {})),
        connector.revoke_temporary_access(account=account),
    ):
        steps += [step for step in result.detail.get("steps", []) if step not in steps]
    if not steps:
        steps = [
            f"Put back what case {execution.case_id} changed for {account.username}, as the "
            "case records it."
        ]
    return [
        _manual(MANUAL_STEP, str(number), connector.kind, step)
        for number, step in enumerate(steps, start=1)
    ]


def _cloud_revert(connector: CloudConnector, execution: CaseExecution) -> list[StepOutcome]:
    """Delete the one-time pass, remove each method registered since the execution, then end
    every session (last: no session opened while the revert ran survives it)."""
    account = execution.case.account
    issued = execution.temporary_pass or {}
    pass_id = str(issued.get("id") or "")
    outcomes = [
        StepOutcome.of(
            TEMPORARY_ACCESS_REVOKE,
            pass_id or account.username,
            connector.revoke_temporary_access(account=account),
        )
    ]
    outcomes += _methods_revert(connector, execution, pass_id)
    if Capability.SESSIONS_REVOKE in connector.capabilities:
        ended = connector.sessions_revoke(account=account)
        outcomes.append(StepOutcome.of(SESSIONS_REVOKE, account.username, ended))
    else:
        missing = capability_missing(connector.kind, SESSIONS_REVOKE)
        outcomes.append(StepOutcome.of(SESSIONS_REVOKE, account.username, missing))
    return outcomes


def _methods_revert(
    connector: CloudConnector, execution: CaseExecution, pass_id: str
) -> list[StepOutcome]:
    """Each method the provider lists that the execution's snapshot does not (without one:
    created since the execution, or of unknown age) is removed: whoever recovered the account
    bound it, the one containment kept included. Not the password, nor the pass."""
    account = execution.case.account
    try:
        listed = connector.methods_list(account=account)
    except VendorError as error:
        return [
            StepOutcome(
                operation=METHOD_REMOVE,
                target="*",
                ok=False,
                connector=connector.kind,
                path="methods_list",
                code=f"{connector.kind}.{error.kind}",
                error=str(error)[:300],
                detail={"kind": "every"},
            )
        ]
    recorded = (execution.snapshot or {}).get("methods")
    before = {method["id"] for method in recorded} if recorded is not None else None
    outcomes: list[StepOutcome] = []
    for method in listed:
        if method.kind in PASSWORD_KINDS or method.id == pass_id:
            continue
        if before is not None and method.id in before:
            continue
        if before is None and method.created_at and method.created_at < execution.executed_at:
            continue
        about = {"kind": method.kind, "registered_since_execution": True}
        if Capability.METHODS_REMOVE not in connector.capabilities:
            result = capability_missing(connector.kind, METHOD_REMOVE)
        else:
            result = connector.method_remove(account=account, method=method)
        outcome = StepOutcome.of(METHOD_REMOVE, method.id, result)
        outcomes.append(replace(outcome, detail={**outcome.detail, **about}))
    return outcomes


def _step_words(outcome: StepOutcome, username: str) -> str:
    """A tracked step in words. Stored with the step and in the trail, so in the trail's
    language, like containment's (not the owner's request's)."""
    if outcome.operation in (MANUAL_STEP, CONNECTOR_CHANGED):
        return str(outcome.detail["manual_step"])
    if outcome.operation == METHOD_REMOVE and outcome.target == "*":
        words = (
            f"Remove every sign-in method of {username} registered since the case was executed, "
            "in the directory's admin console (the user's authentication methods)."
        )
    elif outcome.operation == SNAPSHOT_RESTORE:
        words = (
            f"Put back what the case changed for {username} in the directory, as its snapshot "
            "records it (the case's execution)."
        )
    else:
        return manual_step_words(outcome, username)
    if outcome.error:
        words += f" The connector answered: {outcome.error}"
    return words


def revert_record(*, execution_id: int, tenant: Tenant, outcomes: list[StepOutcome]) -> int:
    """Record the connector's answers for one execution, once: `change.reverted` per step
    done, `revert.step_pending` per step a person does. With none pending the case becomes
    `reverted`. Returns 1 if recorded here, 0 if another caller recorded it first."""
    with tenant_scope([tenant.pk]):
        execution = (
            CaseExecution.objects.for_tenant(tenant).select_related("case").get(pk=execution_id)
        )
        case = case_locked(execution.case)
        execution = (
            CaseExecution.objects.for_tenant(tenant).select_for_update().get(pk=execution_id)
        )
        if execution.revert_ran_at is not None or case.status != CaseStatus.FROZEN:
            return 0
        left = outcomes_record(
            outcomes,
            case=case,
            actor=REVERT_ACTOR,
            done="change.reverted",
            left="revert.step_pending",
            words=lambda outcome: _step_words(outcome, case.account.username),
        )
        execution.revert_steps = [*execution.revert_steps, *left]
        execution.revert_ran_at = timezone.now()
        execution.save(update_fields=["revert_steps", "revert_ran_at"])
        if not revert_pending(execution):
            _reverted(case, execution, REVERT_ACTOR)
    return 1


def revert_pending(execution: CaseExecution | None) -> list[dict[str, Any]]:
    """The revert steps nobody has recorded yet."""
    if execution is None:
        return []
    return steps_pending(execution.revert_steps)


def _reverted(case: RecoveryCase, execution: CaseExecution, actor: Actor) -> None:
    """Every revert step is done: the execution is reverted and the case `reverted`."""
    execution.reverted_at = timezone.now()
    execution.save(update_fields=["reverted_at"])
    case_move(case, Move.REVERT, CaseStatus.REVERTED)
    case.revision += 1
    case.save(update_fields=["status", "revision", "updated_at"])
    record(
        action="case.reverted",
        actor=actor,
        tenant=case.tenant,
        target=case,
        data={
            "connector": execution.connector,
            "steps_recorded_by_hand": sum(
                1 for step in execution.revert_steps if step["state"] == RECORDED
            ),
        },
    )


def revert_step_record(
    *, actor: User, case: RecoveryCase, step: str, step_up: StepUpProof | None
) -> CaseExecution:
    """A person records that they did pending revert step `step` (its id) in the directory's
    console, with a fresh passkey step-up bound to this case as it stands (as for an
    execution: `case_step_up_verify` with action "execute"), spent on this record. The last
    one makes the case `reverted`."""
    enforce(ai_blocked(actor, "record a revert step"))
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.RECORD_REVERT_STEP)
        execution = (
            CaseExecution.objects.for_tenant(case.tenant)
            .select_for_update()
            .filter(case=case)
            .first()
        )
        pending = {item["id"]: item for item in revert_pending(execution)}
        if execution is None or step not in pending:
            raise InvalidInput(
                _("There is no pending revert step with this id on the case."),
                code="revert.step_unknown",
            )
        proof = step_record_proof(step_up, actor, case)
        audit_actor = audit_actor_of(actor, access, case.tenant)
        execution.revert_steps = steps_recorded(
            execution.revert_steps, step, by=actor, at=timezone.now()
        )
        execution.save(update_fields=["revert_steps"])
        record(
            action="revert.step_recorded",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={
                "step": step,
                "operation": pending[step]["operation"],
                "target": pending[step]["target"],
                "manual_step": pending[step]["manual_step"],
                "step_up": proof.audit_data(),
                "still_pending": len(pending) - 1,
            },
        )
        if len(pending) == 1:
            _reverted(case, execution, audit_actor)
    return execution


# --- the frozen account ---------------------------------------------------------------------


def case_open_refusal(account: ProtectedAccount, access: TenantAccess | None) -> Decision:
    """No case is opened on a frozen account but by a security officer (R-41)."""
    if account.frozen_at is None:
        return ALLOW
    if access is not None and Role.SECURITY_OFFICER in access.roles:
        return ALLOW
    return Decision(
        False,
        "account.frozen",
        _(
            "This account is frozen: its owner reported a recovery as not theirs, or a change "
            "was made inside its re-establishment window. Only a security officer can open a "
            "case on it."
        ),
    )


@dataclass(frozen=True)
class FreezeHolds:
    """What keeps an account frozen: revert steps not done (or a revert not yet run), and
    changes reported inside the window not yet undone (not acted on, or a manual undo step
    nobody has recorded)."""

    revert_steps: int
    window_changes: int

    def __bool__(self) -> bool:
        return bool(self.revert_steps or self.window_changes)


def freeze_holds(account: ProtectedAccount) -> FreezeHolds:
    executions = list(
        CaseExecution.objects.for_tenant(account.tenant)
        .filter(case__account=account)
        .select_related("case")
    )
    unrun = sum(
        1
        for execution in executions
        if execution.case.status == CaseStatus.FROZEN and execution.revert_ran_at is None
    )
    steps = sum(len(revert_pending(execution)) for execution in executions)
    undo_steps = sum(
        1
        for execution in executions
        for step in containment_pending(execution)
        if step["operation"] == CHANGE_UNDO
    )
    changes = (
        WindowChange.objects.for_tenant(account.tenant)
        .filter(account=account, outcome=ChangeOutcome.PENDING)
        .count()
    )
    return FreezeHolds(revert_steps=steps + unrun, window_changes=changes + undo_steps)


def account_unfreeze(
    *, actor: User, account: ProtectedAccount, reason: str, step_up: StepUpProof | None
) -> ProtectedAccount:
    """A security officer lifts the freeze of an account (`account.unfrozen`), with a reason
    and a fresh step-up; refused while a revert step is pending or a window change is not yet
    acted on (`account.revert_pending`). The freeze of a repudiation and of the window alike."""
    reason = reason.strip()
    if not UNFREEZE_REASON_MIN <= len(reason) <= 2000:
        raise InvalidInput(
            _("Say why the account may be used again (10 to 2000 characters)."),
            code="account.unfreeze_reason_invalid",
            field_errors={"reason": [_("10 to 2000 characters.")]},
        )
    enforce(ai_blocked(actor, "lift an account's freeze"))
    tenant = account.tenant
    with transaction.atomic():
        access = access_in(actor, tenant)
        if access is None or Role.SECURITY_OFFICER not in access.roles:
            raise PolicyDenied(
                _("Only a security officer of the tenant can lift an account's freeze."),
                code="account.unfreeze_forbidden",
            )
        locked = ProtectedAccount.objects.for_tenant(tenant).select_for_update().get(pk=account.pk)
        if locked.frozen_at is None:
            raise InvalidInput(_("This account is not frozen."), code="account.not_frozen")
        holds = freeze_holds(locked)
        if holds:
            raise PolicyDenied(
                _(
                    "The freeze stays while %(steps)s revert step(s) and %(changes)s window "
                    "change(s) are still to be done: record them on their cases first."
                )
                % {"steps": holds.revert_steps, "changes": holds.window_changes},
                code="account.revert_pending",
            )
        proof = require_fresh_step_up(step_up, actor)
        frozen_at = locked.frozen_at
        locked.frozen_at = None
        locked.save(update_fields=["frozen_at"])
        record(
            action="account.unfrozen",
            actor=audit_actor_of(actor, access, tenant),
            tenant=tenant,
            target=locked,
            data={
                "reason": reason,
                "frozen_at": frozen_at,
                "frozen_cases": list(
                    RecoveryCase.objects.for_tenant(tenant)
                    .filter(account=locked)
                    .filter(Q(status=CaseStatus.FROZEN) | Q(status=CaseStatus.REVERTED))
                    .values_list("pk", flat=True)
                    .order_by("pk")
                ),
                "step_up": proof.audit_data(),
            },
        )
    return locked

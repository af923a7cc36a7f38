"""Containment after a cloud recovery (R-34): once the owner has bound a new sign-in method,
the lost ones go, every session and refresh token ends, and the one-time pass is deleted.

Each step is carried out by the tenant's connector and recorded with the connector's answer
(`containment.step_done` / `containment.step_failed`). A step the connector failed, or cannot
do at all (a capability it lacks), becomes a manual step on the `CaseExecution`: the case
cannot be closed (`case.containment_pending`) until a person has done it in the directory's
console and recorded it here with a fresh step-up (`containment_step_record`).

`containment_run` only talks to the connector and `containment_record` only writes, so the
caller makes every connector call before its transaction records anything (the audit chain's
lock is never held across a call to the vendor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.models import User
from tenants.policies import enforce
from tenants.principals import ai_blocked
from tenants.stepup import StepUpProof

from ...connectors.base import Capability, CloudConnector, ExecutionResult, capability_missing
from ...connectors.cloud import AuthMethod
from ...models import ProtectedAccount
from ..models import CaseExecution, RecoveryCase
from ..steps import step_pending, step_record_proof, steps_pending, steps_recorded
from ..transitions import Move, transition_require
from .base import audit_actor_of, case_locked, work_access

METHOD_REMOVE = "method_remove"
SESSIONS_REVOKE = "sessions_revoke"
TEMPORARY_ACCESS_REVOKE = "revoke_temporary_access"
# Never removed by containment: the owner changes a password; it is no lost authenticator.
PASSWORD_KINDS = frozenset({"password"})


@dataclass(frozen=True)
class StepOutcome:
    """One containment step and the connector's answer to it."""

    operation: str
    target: str
    ok: bool
    connector: str
    path: str
    code: str = ""
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def step_id(self) -> str:
        return f"{self.operation}:{self.target}"

    @classmethod
    def of(cls, operation: str, target: str, result: ExecutionResult) -> StepOutcome:
        return cls(
            operation=operation,
            target=target,
            ok=result.ok,
            connector=result.connector,
            path=result.path,
            code="" if result.ok else str(result.detail.get("code") or "connector.failed"),
            error=result.error,
            detail=result.detail,
        )


def _missing(connector: CloudConnector, operation: str, target: str, **detail: Any) -> StepOutcome:
    """A step the connector lacks the capability for: not attempted, a manual step."""
    missing = capability_missing(connector.kind, operation)
    return StepOutcome.of(operation, target, replace(missing, detail={**missing.detail, **detail}))


def containment_run(
    *,
    connector: CloudConnector,
    account: ProtectedAccount,
    listed: list[AuthMethod],
    kept: frozenset[str],
    snapshot_methods: dict[str, str],
    pass_id: str,
    remove_methods: bool = True,
) -> list[StepOutcome]:
    """Remove every method in `listed` but the `kept` ones, the password and the pass (unless
    not `remove_methods`: a password recovery never removes MFA, R-12); end sessions; delete
    the pass. Nothing is written here.

    `snapshot_methods` (id -> kind) are the methods the execution's snapshot held. One of
    them that the listing no longer has is done already (a retry after a crash, or the owner
    removed it): it is reported as done without a call, so every lost method has exactly one
    outcome however often this runs.
    """
    outcomes: list[StepOutcome] = []
    if remove_methods:
        outcomes += _removals(connector, account, listed, kept, snapshot_methods, pass_id)
    if Capability.SESSIONS_REVOKE in connector.capabilities:
        revoked = connector.sessions_revoke(account=account)
        outcomes.append(StepOutcome.of(SESSIONS_REVOKE, account.username, revoked))
    else:
        outcomes.append(_missing(connector, SESSIONS_REVOKE, account.username))
    deleted = connector.revoke_temporary_access(account=account)
    outcomes.append(StepOutcome.of(TEMPORARY_ACCESS_REVOKE, pass_id, deleted))
    return outcomes


def _removals(
    connector: CloudConnector,
    account: ProtectedAccount,
    listed: list[AuthMethod],
    kept: frozenset[str],
    snapshot_methods: dict[str, str],
    pass_id: str,
) -> list[StepOutcome]:
    outcomes: list[StepOutcome] = []
    can_remove = Capability.METHODS_REMOVE in connector.capabilities
    listed_ids = {method.id for method in listed}
    for method in listed:
        if method.id in kept or method.id == pass_id or method.kind in PASSWORD_KINDS:
            continue
        if not can_remove:
            outcomes.append(_missing(connector, METHOD_REMOVE, method.id, kind=method.kind))
            continue
        result = connector.method_remove(account=account, method=method)
        outcome = StepOutcome.of(METHOD_REMOVE, method.id, result)
        about = {"kind": method.kind, "in_snapshot": method.id in snapshot_methods}
        outcomes.append(replace(outcome, detail={**outcome.detail, **about}))
    for gone, kind in sorted(snapshot_methods.items()):
        if gone in listed_ids or gone in kept or gone == pass_id or kind in PASSWORD_KINDS:
            continue
        outcomes.append(
            StepOutcome(
                operation=METHOD_REMOVE,
                target=gone,
                ok=True,
                connector=connector.kind,
                path="methods_list",
                detail={"kind": kind, "in_snapshot": True, "absent": True},
            )
        )
    return outcomes


def manual_step_words(outcome: StepOutcome, username: str) -> str:
    """What a person does in the directory's own console instead of the connector."""
    if outcome.operation == METHOD_REMOVE:
        kind = outcome.detail.get("kind", "")
        words = (
            f"Remove the {kind} sign-in method {outcome.target} of {username} in the "
            "directory's admin console (the user's authentication methods)."
        )
    elif outcome.operation == SESSIONS_REVOKE:
        words = (
            f"End every session and refresh token of {username} in the directory's admin "
            "console (for Entra ID: the user's page, Revoke sessions)."
        )
    else:
        words = (
            f"Delete the temporary access pass {outcome.target} of {username} in the "
            "directory's admin console (the user's authentication methods)."
        )
    if outcome.error:
        words += f" The connector answered: {outcome.error}"
    return words


def outcomes_record(
    outcomes: list[StepOutcome],
    *,
    case: RecoveryCase,
    actor: Actor,
    done: str,
    left: str,
    words: Callable[[StepOutcome], str],
) -> list[dict[str, Any]]:
    """Record the connector's answer to each step on `case`: action `done` for a step it did,
    `left` (with its code, error and the `words` for a person) for one it failed or cannot
    do. Returns the new pending steps (`recovery.cases.steps`) for the caller's row."""
    pending: list[dict[str, Any]] = []
    for outcome in outcomes:
        data = {
            "operation": outcome.operation,
            "target": outcome.target,
            "connector": outcome.connector,
            "path": outcome.path,
            "detail": outcome.detail,
        }
        if outcome.ok:
            record(action=done, actor=actor, tenant=case.tenant, target=case, data=data)
            continue
        manual = words(outcome)
        record(
            action=left,
            actor=actor,
            tenant=case.tenant,
            target=case,
            data={**data, "code": outcome.code, "error": outcome.error, "manual_step": manual},
        )
        pending.append(
            step_pending(
                step_id=outcome.step_id,
                operation=outcome.operation,
                target=outcome.target,
                code=outcome.code,
                words=manual,
            )
        )
    return pending


def containment_record(
    *,
    case: RecoveryCase,
    execution: CaseExecution,
    outcomes: list[StepOutcome],
    actor: Actor,
) -> None:
    """Record each outcome, keep the failed ones as manual steps on the locked `execution`,
    and mark containment done."""
    left = outcomes_record(
        outcomes,
        case=case,
        actor=actor,
        done="containment.step_done",
        left="containment.step_failed",
        words=lambda outcome: manual_step_words(outcome, case.account.username),
    )
    execution.containment_steps = [*execution.containment_steps, *left]
    execution.containment_done_at = timezone.now()
    execution.save(update_fields=["containment_steps", "containment_done_at"])


def containment_pass_end(*, case: RecoveryCase, execution: CaseExecution | None) -> None:
    """Closing a case whose owner was given a pass but never confirmed a new method: the pass
    is deleted at the provider first (R-33), recorded as a containment step; if the provider
    cannot delete it, the case stays open (`case.pass_not_revoked`)."""
    if execution is None or not execution.temporary_pass or execution.containment_done_at:
        return
    from ...connectors import connector_for

    connector = connector_for(case.tenant)
    outcome = StepOutcome.of(
        TEMPORARY_ACCESS_REVOKE,
        execution.temporary_pass["id"],
        connector.revoke_temporary_access(account=case.account),
    )
    if not outcome.ok:
        raise PolicyDenied(
            "The owner's one-time pass could not be deleted at the identity provider "
            f"({outcome.error}); delete it there or try again before closing the case.",
            code="case.pass_not_revoked",
        )
    containment_record(
        case=case, execution=execution, outcomes=[outcome], actor=Actor.system("containment")
    )


def containment_pending(execution: CaseExecution | None) -> list[dict[str, Any]]:
    """The manual containment steps nobody has recorded yet."""
    if execution is None:
        return []
    return steps_pending(execution.containment_steps)


def containment_step_record(
    *, actor: User, case: RecoveryCase, step: str, step_up: StepUpProof | None
) -> CaseExecution:
    """A person records that they did pending containment step `step` (its id) in the
    directory's console. Like an execution, it takes a fresh passkey step-up bound to this
    case as it stands (`case_step_up_verify` with action "execute"), spent on this record."""
    enforce(ai_blocked(actor, "record a containment step"))
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.RECORD_MANUAL_STEP)
        execution = CaseExecution.objects.for_tenant(case.tenant).select_for_update().get(case=case)
        pending = {item["id"]: item for item in containment_pending(execution)}
        if step not in pending:
            raise InvalidInput(
                "There is no pending containment step with this id on the case.",
                code="containment.step_unknown",
            )
        proof = step_record_proof(step_up, actor, case)
        execution.containment_steps = steps_recorded(
            execution.containment_steps, step, by=actor, at=timezone.now()
        )
        execution.save(update_fields=["containment_steps"])
        record(
            action="containment.step_recorded",
            actor=audit_actor_of(actor, access, case.tenant),
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
    return execution

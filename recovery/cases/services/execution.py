"""Execution: where a ready case really changes the account. How the owner undoes it ("this
wasn't me", R-41) is `repudiation`.

Execution is a privileged act (R-21, R-23): `executor_refusal` says who may not carry a case
out, a fresh passkey step-up bound to the case is spent on every execution by a person (keys
execute T0 only), and a trigger on CaseExecution refuses a live approver (and a T2 case's
opener) even if this code were bypassed.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext

from audit.context import Actor
from audit.integrity import integrity_refusal
from audit.services import record
from tenants.choices import CaseType, Scope, Tier
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied, StepUpFailed
from tenants.incident import freeze_refusal
from tenants.models import User
from tenants.policies import Decision, enforce
from tenants.principals import ai_blocked, api_scopes
from tenants.stepup import StepUpProof

from ...artifacts.services import (
    artifact_delivery_contact,
    artifact_issue,
    artifacts_revoke_for_case,
)
from ...connectors.base import Connector, ExecutionResult
from ...delegation.services import (
    delegation_close_refusal,
    delegation_execution_refusal,
    delegation_grant,
)
from ...notifications.services import notices_block_execution
from ...policy.floors import EXECUTION_STEP_UP
from ...policy.rules import CasePolicy
from ...policy.selectors import policy_for_case
from ..choices import CaseStatus
from ..models import Approval, CaseExecution, RecoveryCase
from ..transitions import Move, case_move, transition_require
from .approval import (
    EXPIRED,
    LOST_ROLE,
    SNAPSHOT_CHANGED,
    approvals_void_stale_locked,
    case_policy_recheck_locked,
    case_tier_recompute,
    subject_and_delegate_persons,
)
from .base import (
    TIER_RANK,
    audit_actor_of,
    case_end,
    case_locked,
    requirements_for,
    work_access,
    workflow_move,
)
from .containment import containment_pass_end, containment_pending
from .roles import (
    roles_regrant_close_refusal,
    roles_restore_execute,
    roles_suspend_call,
    roles_suspend_undo,
    roles_suspended_record,
    roles_suspension_due,
)
from .step_up import EXECUTE, case_snapshot_hash, require_bound_step_up
from .window import window_open

VOIDED_MESSAGES = {
    LOST_ROLE: "An approver of this case no longer holds the role they approved with; the case "
    "needs approval again.",
    SNAPSHOT_CHANGED: "The case changed after it was approved (evidence, delivery channel, "
    "connector or policy); the case needs approval again.",
    EXPIRED: "An approval of this case expired before execution; the case needs approval again.",
}


def _tier_rose(case: RecoveryCase, policy: CasePolicy) -> bool:
    """Recompute the tier at execution (R-17); a raise voids approvals and stops here."""
    if TIER_RANK[policy.compute_tier(case.account)[0]] <= TIER_RANK[case.tier]:
        return False
    case_tier_recompute(case, policy)
    if case.status == CaseStatus.READY:
        workflow_move(case, Move.SEND_BACK, CaseStatus.PENDING_APPROVAL, reason="tier_raised")
    return True


def executor_refusal(case: RecoveryCase, actor: User) -> Decision | None:
    """Who may not carry out `case` (R-21, R-23); None when `actor` may.

    A key executes T0 cases only, and only with `cases:execute_t0` (granted by name). Nobody
    executes a case they, or another account of their person, approved (live approvals); the
    opener does not execute a T2 case; the subject and the subject's delegates never execute.
    """
    if not actor.is_human:
        if case.tier != Tier.T0:
            return Decision(
                False,
                "execution.human_required",
                f"Only a person may execute a {case.tier} case, with a fresh step-up; "
                "an API key executes T0 cases only.",
            )
        if Scope.CASES_EXECUTE_T0 not in (api_scopes(actor) or frozenset()):
            return Decision(
                False,
                "auth.scope_missing",
                f"This API key lacks the {Scope.CASES_EXECUTE_T0} scope, which a tenant admin "
                "grants by name.",
            )
    approvers = Approval.objects.for_tenant(case.tenant).filter(
        case=case, invalidated_at__isnull=True
    )
    if approvers.filter(Q(approver=actor) | Q(approver_person=actor.person_id)).exists():
        return Decision(
            False,
            "sod.executor_is_approver",
            "You approved this case (or another account of yours did); another person must "
            "execute it.",
        )
    if case.tier == Tier.T2 and (
        actor.pk == case.opened_by_id or actor.person_id == case.opened_by_person
    ):
        return Decision(
            False,
            "sod.executor_is_opener",
            "You opened this T2 case (or another account of yours did); another person must "
            "execute it.",
        )
    if actor.person_id in subject_and_delegate_persons(case.account):
        return Decision(
            False,
            "sod.executor_is_subject",
            "The subject of a case, or their delegate, cannot execute it.",
        )
    return None


def _execution_step_up(
    case: RecoveryCase, actor: User, step_up: StepUpProof | None
) -> StepUpProof | None:
    """Spend the executor's fresh step-up: a person executes at any tier only with a passkey
    answer bound to this execution of the case as it stands (the floor, R-23, R-47); a key
    (T0 only, see `executor_refusal`) presents none."""
    if not actor.is_human:
        return None
    return require_bound_step_up(
        step_up,
        actor,
        case=case,
        action=EXECUTE,
        snapshot=case_snapshot_hash(case),
        kinds=EXECUTION_STEP_UP,
    )


def case_execute(
    *, actor: User, case: RecoveryCase, step_up: StepUpProof | None = None
) -> RecoveryCase:
    """Carry out a ready case through the tenant's connector and send the owner the artifact.

    Privileged (R-21, R-23): `executor_refusal` decides who may not, and a person executing a
    case presents a fresh passkey step-up (`step_up`, from `case_step_up_verify` over a
    challenge issued for this execution of the case as it stands) spent on this execution
    alone; a TOTP code is refused (the floor). A refusal is recorded as
    `case.execution_refused` with its code and raised; a trigger refuses a live approver or a
    T2 opener in the database too.

    The connector snapshots what it changes (R-37); the artifact goes only to a contact held
    before the case opened (R-10) that R-04 allows now; when none does, the execution is
    refused before anything changes and recorded (`artifact.no_eligible_channel`, as
    `case.execution_failed`). A T1/T2 case waits until every owner notice has gone out
    and is refused if one failed (R-42). A connector failure, or an artifact that cannot be
    delivered, leaves the account as it was and is recorded.
    """
    from ...connectors import connector_for

    enforce(ai_blocked(actor, "execute a recovery"))
    refusal: DomainError | None = None
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        audit_actor = audit_actor_of(actor, access, case.tenant)
        transition_require(case, Move.EXECUTE)
        if case.account.frozen_at is not None:
            raise PolicyDenied(
                "The owner reported this recovery as not theirs; the account is frozen.",
                code="account.frozen",
            )
        proof: StepUpProof | None = None
        policy = policy_for_case(case)
        if frozen := freeze_refusal(case.tenant):
            refusal = frozen  # an incident freeze (tenants.incident): every tier waits
            _execution_refused_record(case, actor, audit_actor, frozen)
        elif case.tier != Tier.T0 and (
            failing := integrity_refusal(
                case.tenant, what=gettext("a %(tier)s recovery") % {"tier": case.tier}
            )
        ):
            refusal = failing  # the trail is not trusted (audit.integrity): T0 goes on
            _execution_refused_record(case, actor, audit_actor, failing)
        elif _tier_rose(case, policy):
            refusal = PolicyDenied(
                f"The account is now {case.tier}: the case needs approval again.",
                code="case.tier_raised",
            )
        elif (voided := approvals_void_stale_locked(case)) and case.status != CaseStatus.READY:
            # Checked again here: an approval whose approver lost the role, made on the
            # case as it was before a change, or expired no longer counts.
            refusal = PolicyDenied(VOIDED_MESSAGES[voided[0]], code=f"approval.{voided[0]}")
        elif case_policy_recheck_locked(case, policy):
            refusal = PolicyDenied(
                "The tenant's policy was tightened since this case opened and the case no "
                f"longer meets it: it is {case.get_status_display().lower()} again.",
                code="case.policy_tightened",
            )
        elif (refused := delegation_execution_refusal(case)) is not None:
            refusal = refused  # the mailbox owner's approval is checked before any step-up
            _execution_refused_record(case, actor, audit_actor, refused)
        else:
            refusal, proof = _executor_checked(case, actor, audit_actor, step_up)
        restore = case.case_type == CaseType.PRIVILEGED_ROLE_RESTORE  # no artifact
        # A mailbox delegation (recovery.delegation): no artifact, never a reset link.
        delegated = case.case_type == CaseType.MAILBOX_ACCESS
        if refusal is None:
            notices_block_execution(case)
            refusal = None if restore or delegated else _no_delivery_channel(case, audit_actor)
        if refusal is None and restore:
            refusal = roles_restore_execute(
                case=case, actor=actor, audit_actor=audit_actor, step_up=proof
            )
        elif refusal is None and delegated:
            refusal = delegation_grant(
                case=case,
                actor=actor,
                audit_actor=audit_actor,
                proof=proof,
                connector=connector_for(case.tenant),
            )
        elif refusal is None:
            connector = connector_for(case.tenant)
            result = connector.execute(
                account=case.account, case_type=case.case_type, case_id=case.pk
            )
            if not result.ok:
                record(
                    action="case.execution_failed",
                    actor=audit_actor,
                    tenant=case.tenant,
                    target=case,
                    data={
                        "connector": result.connector,
                        "path": result.path,
                        "error": result.error,
                    },
                )
                refusal = DomainError(
                    f"The {result.connector} connector could not make the change: {result.error}",
                    code="case.execution_failed",
                )
            else:
                # a T2 recovery takes the standing admin roles too, asked before anything
                # is recorded; if the execution is then refused, they are granted back.
                suspended = (
                    roles_suspend_call(connector=connector, account=case.account)
                    if roles_suspension_due(case)
                    else None
                )
                try:
                    _executed(case, actor, audit_actor, result, connector, proof)
                except Exception:
                    if suspended is not None and suspended.snapshot is not None:
                        roles_suspend_undo(connector, case.account, suspended)
                    raise
                if suspended is not None:
                    roles_suspended_record(
                        case=case,
                        result=suspended,
                        execution_snapshot=result.snapshot.state if result.snapshot else None,
                        actor=audit_actor,
                    )
    if refusal is not None:
        raise refusal
    return case


def _executor_checked(
    case: RecoveryCase, actor: User, audit_actor: Actor, step_up: StepUpProof | None
) -> tuple[DomainError | None, StepUpProof | None]:
    """The executor rules, then the step-up; a refusal is recorded (it commits, then raises)."""
    refusal: DomainError | None = None
    proof: StepUpProof | None = None
    denied = executor_refusal(case, actor)
    if denied is not None:
        refusal = PolicyDenied(denied.detail, code=denied.code)
    else:
        try:
            proof = _execution_step_up(case, actor, step_up)
        except StepUpFailed as failed:
            refusal = failed
    if refusal is not None:
        record(
            action="case.execution_refused",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={"code": refusal.code, "tier": case.tier, "executor_kind": actor.kind},
        )
    return refusal, proof


def _execution_refused_record(
    case: RecoveryCase, actor: User, audit_actor: Actor, refusal: DomainError
) -> None:
    record(
        action="case.execution_refused",
        actor=audit_actor,
        tenant=case.tenant,
        target=case,
        data={"code": refusal.code, "tier": case.tier, "executor_kind": actor.kind},
    )


def _no_delivery_channel(case: RecoveryCase, audit_actor: Actor) -> DomainError | None:
    """Before anything changes: the artifact needs a contact R-04 allows now (quarantine, SIM
    change or port). Without one the execution is refused and recorded, and nothing is
    touched; the refusal is returned so the caller raises it after the record commits."""
    req = requirements_for(case)
    try:
        artifact_delivery_contact(case, req)
    except InvalidInput as refused:
        record(
            action="case.execution_failed",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={
                "code": refused.code,
                "error": refused.message,
                "connector": None,
                "policy_versions": list(req.policy_versions),
            },
        )
        return refused
    return None


def _executed(
    case: RecoveryCase,
    actor: User,
    audit_actor: Actor,
    result: ExecutionResult,
    connector: Connector,
    proof: StepUpProof | None,
) -> None:
    req = requirements_for(case)
    try:
        with transaction.atomic():
            artifact = artifact_issue(case=case, req=req, actor=audit_actor)
    except DomainError:
        if result.snapshot is not None:  # nothing may stay changed without its artifact
            connector.revert(account=case.account, snapshot=result.snapshot)
        raise
    try:
        with transaction.atomic():
            CaseExecution.objects.create(
                tenant=case.tenant,
                case=case,
                connector=result.connector,
                path=result.path,
                snapshot=result.snapshot.state if result.snapshot else None,
                detail=result.detail,
                executed_by=actor,
                executed_by_person=actor.person_id,
                step_up=proof.stored_data() if proof else None,
            )
    except IntegrityError:  # the executor trigger refused it: undo the change, then fail
        if result.snapshot is not None:
            connector.revert(account=case.account, snapshot=result.snapshot)
        raise
    restricted_until = window_open(case=case, req=req)
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
            "result": "ok",
            "artifact": artifact.pk,
            "snapshot_taken": result.snapshot is not None,
            "restricted_until": restricted_until,
            "executor_kind": actor.kind,
            "step_up": proof.audit_data() if proof else None,
            "policy_versions": list(req.policy_versions),
        },
    )


def case_close(*, actor: User, case: RecoveryCase, reason: str) -> RecoveryCase:
    """Close an executed case: every artifact still active is revoked (R-33).

    Refused (`case.containment_pending`) while a containment step the connector failed or
    cannot do is not recorded as done by a person (R-34, `containment_step_record`). A
    provider's one-time pass the owner never used is deleted first (`containment_pass_end`).
    """
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.CLOSE)
        execution = (
            CaseExecution.objects.for_tenant(case.tenant)
            .select_for_update()
            .filter(case=case)
            .first()
        )
        pending = containment_pending(execution)
        if pending:
            raise PolicyDenied(
                f"{len(pending)} containment step(s) are still to be done in the directory "
                "and recorded here with a fresh step-up before the case can be closed: "
                + " ".join(step["manual_step"] for step in pending),
                code="case.containment_pending",
            )
        if (delegation_open := delegation_close_refusal(case)) is not None:
            raise delegation_open  # a mailbox delegation is still in place
        if (regrant_live := roles_regrant_close_refusal(case)) is not None:
            raise regrant_live  # the roles granted back are held until the time box ends
        containment_pass_end(case=case, execution=execution)
        audit_actor = audit_actor_of(actor, access, case.tenant)
        revoked = artifacts_revoke_for_case(case=case, reason="case_closed", actor=audit_actor)
        case_end(case, Move.CLOSE, status=CaseStatus.CLOSED, reason=reason.strip()[:2000])
        record(
            action="case.closed",
            actor=audit_actor,
            tenant=case.tenant,
            target=case,
            data={"reason": case.end_reason, "artifacts_revoked": revoked},
        )
    return case


def case_manual_step_record(*, actor: User, case: RecoveryCase, path_used: str) -> CaseExecution:
    """With the manual connector, the agent records the exact path they followed in the other
    console once they have made the change there (the execution listed the expected steps)."""
    path_used = path_used.strip()
    if not 10 <= len(path_used) <= 2000:
        raise InvalidInput(
            "Describe the exact path you followed (10 to 2000 characters).",
            code="execution.path_invalid",
            field_errors={"path": ["10 to 2000 characters."]},
        )
    enforce(ai_blocked(actor, "record a manual recovery step"))
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.RECORD_MANUAL_STEP)
        execution = CaseExecution.objects.for_tenant(case.tenant).select_for_update().get(case=case)
        if not execution.detail.get("requires_confirmation"):
            raise InvalidInput(
                "This case was carried out by a connector; there is no manual step to record.",
                code="execution.not_manual",
            )
        execution.detail = {**execution.detail, "path_used": path_used, "recorded_by": actor.pk}
        execution.save(update_fields=["detail"])
        record(
            action="case.manual_step_recorded",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"path_used": path_used, "expected": execution.path},
        )
    return execution

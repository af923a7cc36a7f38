"""Tracked steps: what a connector failed or cannot do, kept on a row (an execution's
containment or revert steps, a delegation's steps) in words a person follows in the
directory's own console, and pending until that person records it done here with a fresh
passkey step-up bound to the case as it stands (`step_record_proof`, as for an execution).

A step is a dict stored in a JSON list: its `id` (what a person names when recording it),
the `operation` and its `target`, the connector's `code` for why it was left, the
`manual_step` words, and `state`, `recorded_at`, `recorded_by`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenants.models import User
from tenants.stepup import StepUpProof

from ..policy.floors import EXECUTION_STEP_UP
from .models import RecoveryCase

PENDING, RECORDED = "pending", "recorded"


def step_pending(
    *, step_id: str, operation: str, code: str, words: str, **about: Any
) -> dict[str, Any]:
    """A new pending step (`about`: what else the list keeps of it, e.g. its `target`)."""
    return {
        "id": step_id,
        "operation": operation,
        **about,
        "code": code,
        "manual_step": words,
        "state": PENDING,
        "recorded_at": None,
        "recorded_by": None,
    }


def steps_pending(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps nobody has recorded yet."""
    return [step for step in steps if step["state"] == PENDING]


def steps_recorded(
    steps: list[dict[str, Any]], step_id: str, *, by: User, at: datetime
) -> list[dict[str, Any]]:
    """`steps` with pending step `step_id` recorded as done by `by` at `at`."""
    return [
        {**step, "state": RECORDED, "recorded_at": at.isoformat(), "recorded_by": by.pk}
        if step["id"] == step_id and step["state"] == PENDING
        else step
        for step in steps
    ]


def step_record_proof(step_up: StepUpProof | None, actor: User, case: RecoveryCase) -> StepUpProof:
    """The fresh passkey step-up a person spends on recording a step of `case`: bound to the
    case as it stands, with the execution's action and floor."""
    # Imported here: the services import this module (and the delegation app imports both).
    from .services.step_up import EXECUTE, case_snapshot_hash, require_bound_step_up

    return require_bound_step_up(
        step_up,
        actor,
        case=case,
        action=EXECUTE,
        snapshot=case_snapshot_hash(case),
        kinds=EXECUTION_STEP_UP,
    )

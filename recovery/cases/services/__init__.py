"""Every transition of a recovery case: checks policy, writes its audit event, fails closed.

One module per part of the lifecycle; `base` holds what they share (the locked case, the
worker's access, the audit actor). Callers import the public functions from here.
"""

from .approval import (
    APPROVALS_PER_HOUR,
    ONSITE_BIOMETRIC_METHOD,
    VELOCITY_THRESHOLD,
    CaseNeeds,
    approval_decide,
    approval_refusal,
    approvals_void_stale,
    case_needs,
    case_submit,
    subject_and_delegate_persons,
)
from .evidence import (
    CONTEXT_STATEMENT_MAX,
    CONTEXT_TOPIC_MAX,
    VerifiedSignal,
    accepted_classes,
    context_record,
    counted_evidence,
    evidence_from_verifier,
    evidence_refusal_record,
)
from .lifecycle import case_cancel, case_expire_idle, case_expire_sweep, case_release_cooled
from .opening import case_open, case_take, case_taken_decision
from .repudiation import account_unfreeze, case_repudiate, revert_step_record
from .step_up import case_snapshot_hash, case_step_up_verify, step_up_options

__all__ = [
    "APPROVALS_PER_HOUR",
    "CONTEXT_STATEMENT_MAX",
    "CONTEXT_TOPIC_MAX",
    "ONSITE_BIOMETRIC_METHOD",
    "VELOCITY_THRESHOLD",
    "CaseNeeds",
    "VerifiedSignal",
    "accepted_classes",
    "account_unfreeze",
    "approval_decide",
    "approval_refusal",
    "approvals_void_stale",
    "case_cancel",
    "case_expire_idle",
    "case_expire_sweep",
    "case_needs",
    "case_open",
    "case_release_cooled",
    "case_repudiate",
    "case_snapshot_hash",
    "case_step_up_verify",
    "case_submit",
    "case_take",
    "case_taken_decision",
    "context_record",
    "counted_evidence",
    "evidence_from_verifier",
    "evidence_refusal_record",
    "revert_step_record",
    "step_up_options",
    "subject_and_delegate_persons",
]

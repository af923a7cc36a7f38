"""One-line timeline summaries for the verifiers' audit actions (proofing, attended sessions,
fraud flags, rejections, taking a drafted case), as the case page and the review page show them.
"""

from __future__ import annotations

import pytest

from audit.registry import ACTIONS
from recovery.cases.timeline import SUMMARIES, summarise

VERIFIER_ACTIONS = {
    "verification.proofing_started": (
        {"session": 7, "provider": "dev", "provider_ref": "dev-1", "level": "IAL2"},
        "Identity proofing started at dev by kim (session 7)",
    ),
    "verification.proofing_refused": (
        {"code": "proofing.no_enrolment_reference", "provider": "dev"},
        "Identity proofing refused (proofing.no_enrolment_reference)",
    ),
    "verification.proofing_verdict": (
        {"session": 7, "provider": "dev", "verdict_id": "v-9", "status": "mismatch"},
        "Proofing verdict v-9 from dev: mismatch with the enrolment record",
    ),
    "verification.attended_started": (
        {"session": 3, "mode": "onsite", "referee": "kim"},
        "Attended session 3 (onsite, in person) started by referee kim",
    ),
    "verification.attended_coercion_answered": (
        {"session": 3, "observed": True, "note": "prompted off camera"},
        "Referee kim observed signs of coercion in attended session 3",
    ),
    "verification.attended_ended": (
        {"session": 3, "status": "failed", "reason": "live_challenge_failed"},
        "Attended session 3: ended: identity not confirmed",
    ),
    "case.fraud_flagged": (
        {"session": 3, "reason": "forged   passport"},
        "Fraud flagged by kim in attended session 3: 'forged passport'",
    ),
    "case.rejected": (
        {"session": 7, "provider": "dev", "reason": "mismatch"},
        "Rejected: identity proofing at dev did not match the enrolment record",
    ),
    "case.taken": ({"drafted_by": 4}, "Taken by kim: a person now works this case"),
}


@pytest.mark.parametrize(("action", "example"), VERIFIER_ACTIONS.items())
def test_each_verifier_action_reads_in_one_line(action, example):
    data, expected = example
    assert action in ACTIONS and action in SUMMARIES
    assert summarise(action, data, "kim") == expected


def test_no_coercion_observed_reads_as_such():
    data = {"session": 3, "observed": False, "note": ""}
    assert summarise("verification.attended_coercion_answered", data, "kim") == (
        "Referee kim saw no sign of coercion in attended session 3"
    )


def test_a_request_refused_before_any_verifier_names_its_reason():
    data = {"reason": "caller_supplied_channel", "field": "destination"}
    assert summarise("verification.signal_rejected", data, "kim") == (
        "Refused and kept on record: kim asked for evidence (caller_supplied_channel)"
    )


def test_an_unknown_status_value_is_shown_as_recorded():
    data = {"session": 3, "status": "paused"}
    assert summarise("verification.attended_ended", data, "kim") == ("Attended session 3: paused")

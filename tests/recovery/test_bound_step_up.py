"""Step-up bound to the case (R-22, R-23, R-47, R-62): the floor (passkeys for T2 approvals and
every execution), a challenge that is the hash of the case snapshot, the action, the case and a
server nonce (single use), the assertion stored and checked again by audit_verify, and a person
who loses access signed out at once with their pending step-ups cancelled."""

from __future__ import annotations

import json

import pytest
import yaml
from django.contrib.sessions.models import Session

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.models import Approval, CaseExecution, RecoveryCase, StepUpChallenge
from recovery.cases.services import (
    approval_decide,
    case_open,
    case_step_up_verify,
    case_submit,
)
from recovery.cases.services.execution import case_execute
from recovery.notifications.models import OwnerNotice
from recovery.policy.errors import PolicyInvalid
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.validation import validate
from tenants.choices import Role
from tenants.exceptions import StepUpFailed
from tenants.models import Membership
from tenants.services import membership_revoke

from ..api.conftest import api, staff_api_client
from ..conftest import signed_in_client
from ..connector_helpers import connector_set
from ..factories import (
    execute,
    make_account_with,
    operator,
    passkey_of,
    staff,
    step_up,
    step_up_assertion,
)
from .casework import contact, signal
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

ADMINS = {"groups": ["IT-Admins"]}  # T2
FINANCE = {"groups": ["Finance"]}  # T1


def _pending(tenant, attributes: dict) -> RecoveryCase:
    agent = staff(Role.SECURITY_OFFICER, tenant=tenant)
    account = make_account_with(tenant, **attributes)
    contact(account)
    case = case_open(actor=agent, account=account, case_type="mfa_reset", channel="phone")
    signal(case, agent, "S2")
    signal(case, agent, "S3")
    case = case_submit(actor=agent, case=case)
    assert case.status == "pending_approval"
    return case


def _decide(case: RecoveryCase, approver, proof) -> Approval:
    return approval_decide(
        actor=approver, case=case, decision="approved", reason="checked", step_up=proof
    )


# --- the floor -------------------------------------------------------------------------------


def test_a_t2_approval_refuses_an_authenticator_code(acme):
    case = _pending(acme, ADMINS)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(StepUpFailed) as refused:
        _decide(case, officer, step_up(officer))  # a TOTP proof
    assert refused.value.code == "stepup.kind_refused"
    assert not Approval.objects.filter(case=case).exists()
    approval = _decide(case, officer, step_up(officer, case=case))
    assert approval.step_up["device_type"] == "passkey"


def test_a_t1_approval_takes_a_code_where_the_policy_accepts_one(acme):
    case = _pending(acme, FINANCE)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    assert _decide(case, supervisor, step_up(supervisor)).step_up["device_type"] == "totp"


def test_every_execution_refuses_an_authenticator_code(acme):
    case = ready_case(acme, case_type="password_reset")  # T0
    owner_email(case)
    agent = staff(Role.AGENT, tenant=acme)
    with pytest.raises(StepUpFailed) as refused:
        case_execute(actor=agent, case=case, step_up=step_up(agent))
    assert refused.value.code == "stepup.kind_refused"
    refusal = AuditEvent.objects.get(tenant=acme, action="case.execution_refused")
    assert refusal.data["code"] == "stepup.kind_refused"


def test_a_policy_may_not_accept_codes_for_t2_approvals():
    document = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    document["tiers"]["T2"]["step_up"] = ["passkey", "totp"]
    with pytest.raises(PolicyInvalid) as refused:
        validate(json.dumps(document, indent=1))
    assert refused.value.rules == ["R-23.T2.step_up"]
    assert refused.value.errors[0].path == "$.tiers.T2.step_up"


# --- the challenge is the case as it stands --------------------------------------------------


def test_an_answer_for_another_cases_snapshot_is_refused(acme):
    first, second = (ready_case(acme, case_type="password_reset") for _ in range(2))
    owner_email(second)
    agent = staff(Role.AGENT, tenant=acme)
    answer = step_up_assertion(agent, case=first, action="execute")
    with pytest.raises(StepUpFailed) as refused:
        case_step_up_verify(actor=agent, case=second, action="execute", credential_json=answer)
    assert refused.value.code == "stepup.challenge_unknown"
    proof = case_step_up_verify(actor=agent, case=first, action="execute", credential_json=answer)
    with pytest.raises(StepUpFailed) as moved:
        case_execute(actor=agent, case=second, step_up=proof)
    assert moved.value.code == "stepup.wrong_binding"
    assert RecoveryCase.objects.get(pk=second.pk).status == "ready"


def test_an_answer_made_before_the_case_changed_is_refused(acme):
    case = _pending(acme, FINANCE)
    supervisor = staff(Role.SUPERVISOR, tenant=acme)
    proof = step_up(supervisor, case=case)  # the case as it was
    connector_set(  # execution would now run another connector
        acme,
        kind="webhook",
        settings={"url": "https://automation.example.test/hook", "secret_env": "HOOK_SECRET"},
    )
    with pytest.raises(StepUpFailed) as refused:
        _decide(case, supervisor, proof)
    assert refused.value.code == "stepup.snapshot_changed"


def test_an_answer_given_to_approve_cannot_deny_nor_the_reverse(acme):
    """The challenge names the decision: a passkey answer the approver gave to approve is
    refused for a denial of the same case, and one given to deny for an approval."""
    case = _pending(acme, ADMINS)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    to_approve = step_up(officer, case=case, action="approve")
    with pytest.raises(StepUpFailed) as refused:
        approval_decide(
            actor=officer, case=case, decision="denied", reason="checked", step_up=to_approve
        )
    assert refused.value.code == "stepup.wrong_binding"
    with pytest.raises(StepUpFailed) as reverse:
        _decide(case, officer, step_up(officer, case=case, action="deny"))
    assert reverse.value.code == "stepup.wrong_binding"
    assert not Approval.objects.filter(case=case).exists()
    denied = approval_decide(
        actor=officer,
        case=case,
        decision="denied",
        reason="checked",
        step_up=step_up(officer, case=case, action="deny"),
    )
    assert denied.decision == "denied"
    # The stored denial is checked again as a denial (a false alarm would fail the tenant closed).
    assert verify_chain(acme.pk, acme.slug).intact


def test_a_replayed_answer_is_refused(acme):
    case = _pending(acme, ADMINS)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    answer = step_up_assertion(officer, case=case, action="approve")
    _decide(
        case,
        officer,
        case_step_up_verify(actor=officer, case=case, action="approve", credential_json=answer),
    )
    with pytest.raises(StepUpFailed) as replayed:
        case_step_up_verify(actor=officer, case=case, action="approve", credential_json=answer)
    assert replayed.value.code == "stepup.challenge_spent"


def test_the_options_endpoints_issue_a_single_use_challenge_for_the_case(acme):
    case = _pending(acme, ADMINS)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    key = passkey_of(officer)
    console = signed_in_client(officer)
    page = console.get(f"/t/{acme.slug}/cases/{case.pk}/step-up/options/?action=approve")
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    assert page.json()["allowCredentials"][0]["id"] == key.id
    bad = console.get(f"/t/{acme.slug}/cases/{case.pk}/step-up/options/?action=reset")
    assert bad.status_code == 400 and bad.json()["code"] == "stepup.action_invalid"

    client = staff_api_client(officer)
    options = client.get(api(acme, f"cases/{case.pk}/step-up/options/?action=approve"))
    assert options.status_code == 200, options.content
    answer = key.get(json.dumps(options.json()))
    done = client.post(
        api(acme, f"cases/{case.pk}/approve/"),
        {"reason": "checked", "step_up_assertion": answer},
        format="json",
    )
    assert done.status_code == 201, done.content
    assert StepUpChallenge.objects.filter(case=case, spent_at__isnull=False).count() == 1
    code = client.post(api(acme, f"cases/{case.pk}/approve/"), {"reason": "again"}, format="json")
    assert code.status_code == 400  # a step-up is required in the request


# --- audit_verify checks the stored assertions again -----------------------------------------


def _tampered(row, **changes) -> dict:
    step_up = json.loads(json.dumps(row.step_up))
    step_up["assertion"].update(changes)
    return step_up


def test_audit_verify_detects_a_tampered_stored_assertion(acme):
    case = ready_case(acme, **FINANCE)  # approved with a passkey
    owner_email(case)
    OwnerNotice.objects.filter(case=case).update(status="sent")
    execute(case, staff(Role.AGENT, tenant=acme))
    assert verify_chain(acme.pk, acme.slug).intact

    approval = Approval.objects.get(case=case)
    original = approval.step_up
    signature = original["assertion"]["signature"]
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]
    Approval.objects.filter(pk=approval.pk).update(step_up=_tampered(approval, signature=forged))
    report = verify_chain(acme.pk, acme.slug)
    assert not report.intact
    assert f"approval {approval.pk}" in report.reason
    recorded = AuditEvent.objects.get(tenant=acme, action="approval.approved")
    assert report.first_bad_seq == recorded.seq

    Approval.objects.filter(pk=approval.pk).update(step_up=original, snapshot_hash="0" * 64)
    assert "snapshot" in verify_chain(acme.pk, acme.slug).reason
    Approval.objects.filter(pk=approval.pk).update(snapshot_hash=approval.snapshot_hash)
    assert verify_chain(acme.pk, acme.slug).intact

    execution = CaseExecution.objects.get(case=case)
    inputs = {**execution.step_up["assertion"]["inputs"], "case": case.pk + 1}
    CaseExecution.objects.filter(pk=execution.pk).update(
        step_up=_tampered(execution, inputs=inputs)
    )
    assert f"execution {execution.pk}" in verify_chain(acme.pk, acme.slug).reason


# --- losing access ends sessions and queued step-ups at once ---------------------------


def test_losing_the_membership_ends_sessions_and_cancels_pending_step_ups(acme):
    case = _pending(acme, ADMINS)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    console = signed_in_client(officer)
    assert console.get(f"/t/{acme.slug}/").status_code == 200
    answer = step_up_assertion(officer, case=case, action="approve")  # pending, unspent

    membership_revoke(
        actor=operator(), membership=Membership.objects.get(user=officer, tenant=acme)
    )

    sessions = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(officer.pk) not in sessions
    assert console.get(f"/t/{acme.slug}/").status_code == 302  # signed out
    event = AuditEvent.objects.get(tenant=acme, action="auth.sessions_ended")
    assert event.target_id == str(officer.pk)
    assert event.data["sessions"] == 1 and event.data["step_up_challenges_cancelled"] == 1
    assert event.data["cause"] == "membership.revoked"
    with pytest.raises(StepUpFailed) as cancelled:
        case_step_up_verify(actor=officer, case=case, action="approve", credential_json=answer)
    assert cancelled.value.code == "stepup.challenge_cancelled"

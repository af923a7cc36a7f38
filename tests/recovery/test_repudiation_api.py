"""The revert of a repudiated recovery and the account's freeze over the API (R-37, R-41): the
case detail shows the pending revert steps, `revert/record/` records one with the execution's
passkey step-up, and a security officer lifts the freeze at `accounts/<id>/unfreeze/`."""

from __future__ import annotations

import pytest

from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services.repudiation import account_revert, case_repudiate
from recovery.notifications.models import OwnerNotice
from tenants.choices import Role

from ..api.conftest import api, staff_api_client
from ..factories import execute, make_tenant, notices_planned, staff, step_up_assertion, totp_token
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

REASON = "Reviewed with the owner; the attacker's changes are reverted in the directory."


def repudiated(tenant) -> RecoveryCase:
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    notices_planned(tenant)
    case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())
    account_revert(tenant=tenant, account_id=case.account_id)  # what the commit runs
    return RecoveryCase.objects.get(pk=case.pk)


def recording(case: RecoveryCase) -> str:
    return api(case.tenant, f"cases/{case.pk}/revert/record/")


def test_the_detail_shows_the_pending_revert_steps_recorded_one_by_one_with_a_passkey(acme):
    case = repudiated(acme)
    person = staff(Role.AGENT, tenant=acme)
    agent = staff_api_client(person)

    shown = agent.get(api(acme, f"cases/{case.pk}/")).json()
    revert = shown["revert"]
    assert shown["status"] == "frozen" and revert["ran_at"] and revert["reverted_at"] is None
    pending = revert["pending"]
    assert pending and all(step["code"] == "connector.manual_step" for step in pending)
    assert pending == [
        {key: step[key] for key in ("id", "operation", "target", "code", "manual_step")}
        for step in CaseExecution.objects.get(case=case).revert_steps
    ]

    bare = agent.post(recording(case), {"step": pending[0]["id"]}, format="json")
    code = agent.post(
        recording(case), {"step": pending[0]["id"], "otp": totp_token(person)}, format="json"
    )
    unknown = agent.post(
        recording(case),
        {
            "step": "manual_step:99",
            "step_up_assertion": step_up_assertion(person, case=case, action="execute"),
        },
        format="json",
    )
    assert (bare.status_code, bare.json()["code"]) == (403, "stepup.required")
    assert (code.status_code, code.json()["code"]) == (403, "stepup.required")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "revert.step_unknown")

    for number, step in enumerate(pending, start=1):
        done = agent.post(
            recording(case),
            {
                "step": step["id"],
                "step_up_assertion": step_up_assertion(person, case=case, action="execute"),
            },
            format="json",
        )
        assert done.status_code == 200, done.json()
        assert len(done.json()["pending"]) == len(pending) - number
        assert done["ETag"]
    final = agent.get(api(acme, f"cases/{case.pk}/")).json()
    assert final["status"] == "reverted" and final["revert"]["reverted_at"]


def test_a_security_officer_lifts_the_freeze_over_the_api_once_nothing_is_pending(acme):
    case = repudiated(acme)
    account = api(acme, f"accounts/{case.account_id}/")
    agent_user = staff(Role.AGENT, tenant=acme)
    officer_user = staff(Role.SECURITY_OFFICER, tenant=acme)
    agent, officer = staff_api_client(agent_user), staff_api_client(officer_user)
    assert officer.get(account).json()["frozen_at"] is not None

    def unfreeze(client, user):
        body = {"reason": REASON, "otp": totp_token(user)}
        return client.post(account + "unfreeze/", body, format="json")

    forbidden = unfreeze(agent, agent_user)
    pending = unfreeze(officer, officer_user)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "account.unfreeze_forbidden")
    assert (pending.status_code, pending.json()["code"]) == (403, "account.revert_pending")

    for step in CaseExecution.objects.get(case=case).revert_steps:
        agent.post(
            recording(case),
            {
                "step": step["id"],
                "step_up_assertion": step_up_assertion(agent_user, case=case, action="execute"),
            },
            format="json",
        )
    lifted = unfreeze(officer, officer_user)

    assert lifted.status_code == 200 and lifted.json() == {"id": case.account_id, "frozen_at": None}
    assert officer.get(account).json()["frozen_at"] is None
    # Another tenant's officer sees the same 404 as for an account that does not exist.
    other = make_tenant()
    stranger_user = staff(Role.SECURITY_OFFICER, tenant=other)
    stranger = staff_api_client(stranger_user)
    foreign = stranger.post(
        api(other, f"accounts/{case.account_id}/unfreeze/"),
        {"reason": REASON, "otp": totp_token(stranger_user)},
        format="json",
    )
    missing = stranger.post(
        api(other, "accounts/999999999/unfreeze/"),
        {"reason": REASON, "otp": totp_token(stranger_user)},
        format="json",
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()

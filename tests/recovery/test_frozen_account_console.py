"""The console of a repudiated recovery and a frozen account (R-37, R-41): the case page lists
the pending revert steps with a passkey form each, and the account page shows the freeze, with
"lift the freeze" for a security officer only."""

from __future__ import annotations

import re

import pytest

from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services.repudiation import account_revert, case_repudiate
from recovery.models import ProtectedAccount
from recovery.notifications.models import OwnerNotice
from tenants.choices import Role

from ..conftest import signed_in_client
from ..factories import execute, notices_planned, staff, step_up_assertion, totp_token
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

REASON = "Reviewed with the owner; every change is reverted in the directory."


def repudiated(tenant) -> RecoveryCase:
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    notices_planned(tenant)
    case_repudiate(notice=OwnerNotice.objects.filter(case=case).first())
    account_revert(tenant=tenant, account_id=case.account_id)  # what the commit runs
    return RecoveryCase.objects.get(pk=case.pk)


def case_url(case: RecoveryCase, action: str = "") -> str:
    return f"/t/{case.tenant.slug}/cases/{case.pk}/" + (f"{action}/" if action else "")


def test_the_case_page_lists_each_pending_revert_step_and_records_it_with_a_passkey(acme):
    case = repudiated(acme)
    agent = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(agent)
    steps = CaseExecution.objects.get(case=case).revert_steps

    page = client.get(case_url(case)).content.decode()

    assert "data-account-frozen" in page  # the summary says the account is frozen

    shown = re.findall(r'data-revert-pending="([^"]+)"', page)
    assert shown == [step["id"] for step in steps]
    assert page.count(f'action="{case_url(case, "revert/record")}"') == len(steps)
    assert all(step["manual_step"] in page for step in steps)

    bare = client.post(case_url(case, "revert/record"), {"revert-step": steps[0]["id"]})
    assert bare.status_code == 400 and "stepup.required" in bare.content.decode()
    for step in steps:
        answer = step_up_assertion(agent, case=case, action="execute")
        done = client.post(
            case_url(case, "revert/record"),
            {"revert-step": step["id"], "revert-step_up_assertion": answer},
        )
        assert done.status_code == 302, done.content.decode()[:500]
    page = client.get(case_url(case)).content.decode()
    assert "data-reverted" in page and "data-revert-pending" not in page
    assert len(re.findall(r"data-revert-recorded=", page)) == len(steps)


def test_an_auditor_sees_the_revert_steps_but_gets_no_form(acme):
    case = repudiated(acme)
    page = signed_in_client(staff(Role.AUDITOR, tenant=acme)).get(case_url(case))
    body = page.content.decode()
    assert page.status_code == 200 and "data-revert-pending" in body
    assert "revert/record" not in body


def test_the_account_page_offers_lifting_the_freeze_to_a_security_officer_only(acme):
    case = repudiated(acme)
    account = f"/t/{acme.slug}/workspace/accounts/{case.account_id}/"
    agent = staff(Role.AGENT, tenant=acme)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)

    as_agent = signed_in_client(agent).get(account).content.decode()
    officer_client = signed_in_client(officer)
    as_officer = officer_client.get(account).content.decode()

    assert 'id="account-frozen"' in as_agent and "data-unfreeze" not in as_agent
    assert "data-unfreeze" in as_officer
    # No form that can only be refused: the agent is told why instead.
    assert 'data-open-refused="account.frozen"' in as_agent
    assert "Open the case" not in as_agent and "Open the case" in as_officer
    refused = officer_client.post(
        account + "unfreeze/", {"reason": REASON, "token": totp_token(officer)}, follow=True
    )
    assert "account.revert_pending" in refused.content.decode()
    assert ProtectedAccount.objects.get(pk=case.account_id).frozen_at is not None

    agent_client = signed_in_client(agent)
    for step in CaseExecution.objects.get(case=case).revert_steps:
        agent_client.post(
            case_url(case, "revert/record"),
            {
                "revert-step": step["id"],
                "revert-step_up_assertion": step_up_assertion(agent, case=case, action="execute"),
            },
        )
    by_agent = agent_client.post(
        account + "unfreeze/", {"reason": REASON, "token": totp_token(agent)}, follow=True
    )
    assert "account.unfreeze_forbidden" in by_agent.content.decode()
    lifted = officer_client.post(
        account + "unfreeze/", {"reason": REASON, "token": totp_token(officer)}, follow=True
    )
    assert lifted.status_code == 200 and 'id="account-frozen"' not in lifted.content.decode()
    assert ProtectedAccount.objects.get(pk=case.account_id).frozen_at is None

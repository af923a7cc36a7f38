"""Containment after a cloud recovery over the API (R-10, R-12, R-34): the case detail shows the
owner's pass (its times, never the pass) and the pending containment steps; `containment/record/`
records one with the execution's passkey step-up; closing is refused while one is pending.

The recovery runs against the Graph fake (tests/console/test_containment_console.py builds it).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from recovery.cases.models import RecoveryCase
from tenants.choices import Role

from ..console import test_containment_console as console
from ..factories import staff, step_up_assertion, totp_token
from ..owner.binding_helpers import events
from .conftest import api, staff_api_client

pytestmark = pytest.mark.django_db

graph = console.graph
entra = console.entra
sms_outbox = console.sms_outbox


class Answers:
    """An API client that keeps every answer's body, to check none holds the pass."""

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self.bodies: list[str] = []

    def get(self, path: str):
        return self._kept(self.client.get(path))

    def post(self, path: str, data: dict):
        return self._kept(self.client.post(path, data, format="json"))

    def _kept(self, response):
        self.bodies.append(response.content.decode())
        return response


def detail(case: RecoveryCase) -> str:
    return api(case.tenant, f"cases/{case.pk}/")


def recording(case: RecoveryCase) -> str:
    return api(case.tenant, f"cases/{case.pk}/containment/record/")


def test_the_detail_shows_the_pass_times_then_the_pending_step_never_the_pass(
    acme, entra, sms_outbox
):
    shown = console.pass_shown(acme, entra, sms_outbox)
    agent = Answers(staff_api_client(staff(Role.AGENT, tenant=acme)))

    before = agent.get(detail(shown.case)).json()["containment"]

    given = console.cloud.execution_of(shown.case).temporary_pass
    assert before["temporary_pass"]["given_at"] is not None
    assert before["temporary_pass"]["expires_at"] is not None
    assert set(before["temporary_pass"]) == {"given_at", "expires_at"}  # no id, no pass
    assert before["done_at"] is None and before["pending"] == []

    console.cloud.registered_at_microsoft(entra, shown.owner)
    lost_key = shown.owner.lost[1]
    entra.fail_next("DELETE", rf"/fido2Methods/{lost_key}$", 503, times=5)
    assert shown.recovery.client.post(console.cloud.CONFIRM_URL).status_code == 302

    after = agent.get(detail(shown.case)).json()["containment"]

    assert after["done_at"] is not None
    [pending] = after["pending"]
    assert pending["id"] == f"method_remove:{lost_key}"
    assert (pending["operation"], pending["target"]) == ("method_remove", lost_key)
    assert pending["code"] == "entra.unavailable"
    assert lost_key in pending["manual_step"]
    assert given["id"] not in str(after["temporary_pass"])
    assert all(shown.secret not in body for body in agent.bodies)


def test_a_pending_step_is_recorded_only_with_the_executions_passkey_step_up(
    acme, entra, sms_outbox
):
    shown = console.bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = console.pending_steps(shown.case)
    person = staff(Role.AGENT, tenant=acme)
    agent = Answers(staff_api_client(person))

    closing = agent.post(api(acme, f"cases/{shown.case.pk}/close/"), {"reason": "done"})
    bare = agent.post(recording(shown.case), {"step": pending["id"]})
    code = agent.post(recording(shown.case), {"step": pending["id"], "otp": totp_token(person)})
    approving = agent.post(
        recording(shown.case),
        {
            "step": pending["id"],
            "step_up_assertion": step_up_assertion(person, case=shown.case, action="approve"),
        },
    )

    assert (closing.status_code, closing.json()["code"]) == (403, "case.containment_pending")
    assert pending["manual_step"] in closing.json()["message"]
    assert (bare.status_code, bare.json()["code"]) == (403, "stepup.required")
    assert (code.status_code, code.json()["code"]) == (403, "stepup.required")
    assert "passkey" in code.json()["message"]
    assert (approving.status_code, approving.json()["code"]) == (403, "stepup.challenge_unknown")
    assert console.pending_steps(shown.case) == [pending]
    assert events(acme, "containment.step_recorded", shown.case) == []

    unknown = agent.post(
        recording(shown.case),
        {
            "step": "sessions_revoke:someone-else",
            "step_up_assertion": step_up_assertion(person, case=shown.case, action="execute"),
        },
    )
    done = agent.post(
        recording(shown.case),
        {
            "step": pending["id"],
            "step_up_assertion": step_up_assertion(person, case=shown.case, action="execute"),
        },
    )

    assert (unknown.status_code, unknown.json()["code"]) == (400, "containment.step_unknown")
    assert done.status_code == 200 and done.json()["pending"] == []
    assert done["ETag"]
    [recorded] = events(acme, "containment.step_recorded", shown.case)
    assert recorded.data["step"] == pending["id"] and recorded.data["step_up"]
    assert console.cloud.execution_of(shown.case).containment_steps[0]["recorded_by"] == person.pk
    closed = agent.post(api(acme, f"cases/{shown.case.pk}/close/"), {"reason": "done"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert all(shown.secret not in body for body in agent.bodies)


def test_an_auditor_reads_the_pending_step_but_cannot_record_it(acme, entra, sms_outbox):
    shown = console.bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = console.pending_steps(shown.case)
    auditor = Answers(staff_api_client(staff(Role.AUDITOR, tenant=acme)))

    read = auditor.get(detail(shown.case))
    refused = auditor.post(recording(shown.case), {"step": pending["id"]})

    assert read.status_code == 200
    assert [step["id"] for step in read.json()["containment"]["pending"]] == [pending["id"]]
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.scope_missing")
    assert console.pending_steps(shown.case) == [pending]
    assert all(shown.secret not in body for body in auditor.bodies)


def test_another_tenants_staff_get_the_404_of_a_missing_case(acme, globex, entra, sms_outbox):
    shown = console.bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = console.pending_steps(shown.case)
    outsider = Answers(staff_api_client(staff(Role.AGENT, tenant=globex)))
    theirs = api(globex, f"cases/{shown.case.pk}/")
    missing = api(globex, f"cases/{shown.case.pk + 10_000}/")

    for suffix, send in (("", outsider.get), ("containment/record/", outsider.post)):
        args = ({"step": pending["id"]},) if suffix else ()
        foreign, absent = send(theirs + suffix, *args), send(missing + suffix, *args)
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == absent.json()
    assert console.pending_steps(shown.case) == [pending]
    assert all(shown.secret not in body for body in outsider.bodies)

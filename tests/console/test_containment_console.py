"""The case page after a cloud recovery (R-10, R-12, R-34): the owner's one-time pass (when and
until when, never the pass), the binding the connector verified, each containment step the
connector did, and each step left to a person with the form that records it with a passkey
step-up; closing is refused in words while one is pending.

The recovery runs for real against the Graph fake, as in tests/owner/test_binding_cloud.py:
the owner is shown the Temporary Access Pass, registers a new key "at Microsoft" (the test adds
it to the fake) and confirms; a removal the fake refuses becomes the pending step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from django.utils.html import escape

from recovery.cases.models import RecoveryCase
from tenants.choices import Role
from tenants.models import Tenant, User
from tests.fakes.graph import FakeGraph, graph_error

from ..conftest import signed_in_client
from ..factories import staff, step_up_assertion
from ..owner import test_binding_cloud as cloud
from ..owner.binding_helpers import Recovery, events, mfa_session
from ..pages import page

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}

# The Entra connector at the Graph fake, from the binding tests.
graph = cloud.graph
entra = cloud.entra
sms_outbox = cloud.sms_outbox


@dataclass
class CloudRecovery:
    """An executed mfa reset whose owner was shown the pass (`secret`) in their session."""

    recovery: Recovery
    owner: cloud.Owner
    secret: str

    @property
    def case(self) -> RecoveryCase:
        return self.recovery.case


def pass_shown(tenant: Tenant, graph: FakeGraph, sms_outbox) -> CloudRecovery:
    """The case executed through Entra; the owner opened the texted artifact and was shown the
    Temporary Access Pass (the fake's value of it is the secret no staff answer may hold)."""
    owner = cloud.entra_owner(graph)
    recovery = mfa_session(tenant, sms_outbox, external_id=owner.external_id)
    assert recovery.client.post(cloud.PASS_URL).status_code == 200
    [pass_id] = cloud.passes(graph, owner)
    return CloudRecovery(recovery=recovery, owner=owner, secret=graph.pass_values[pass_id])


def bound_with_a_failed_removal(tenant: Tenant, graph: FakeGraph, sms_outbox) -> CloudRecovery:
    """The owner bound a new key at Microsoft; Graph refused to delete the lost key (403), so
    that removal is the case's one pending containment step."""
    shown = pass_shown(tenant, graph, sms_outbox)
    cloud.registered_at_microsoft(graph, shown.owner)
    graph.fail_next(
        "DELETE",
        rf"/fido2Methods/{shown.owner.lost[1]}$",
        403,
        graph_error(
            "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        ),
    )
    assert shown.recovery.client.post(cloud.CONFIRM_URL).status_code == 302
    return shown


def pending_steps(case: RecoveryCase) -> list[dict]:
    execution = cloud.execution_of(case)
    return [step for step in execution.containment_steps if step["state"] == "pending"]


def url(case: RecoveryCase, action: str = "", *, slug: str = "") -> str:
    base = f"/t/{slug or case.tenant.slug}/cases/{case.pk}/"
    return base + (f"{action}/" if action else "")


def record(client: Client, case: RecoveryCase, step: str, assertion: str = "", **extra):
    data = {"containment-step": step, "containment-step_up_assertion": assertion}
    return client.post(url(case, "containment/record"), data, **extra)


# --- what the page shows ----------------------------------------------------------------------


def test_before_the_binding_the_page_shows_when_the_pass_was_given_never_the_pass(
    acme, entra, sms_outbox
):
    shown = pass_shown(acme, entra, sms_outbox)
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))

    body = agent.get(url(shown.case)).content.decode()

    assert "data-temporary-pass" in body and "Valid until" in body
    assert "Runs once the owner confirms their new sign-in method" in body
    assert "data-owner-binding" not in body  # nothing bound yet
    # Closing now would first delete the unused pass at Microsoft: the page says so.
    assert "closing first deletes their one-time pass" in body
    assert shown.secret not in body


def test_after_the_binding_the_page_shows_the_verified_method_and_each_step_done(
    acme, entra, sms_outbox
):
    shown = pass_shown(acme, entra, sms_outbox)
    cloud.registered_at_microsoft(entra, shown.owner)
    assert shown.recovery.client.post(cloud.CONFIRM_URL).status_code == 302
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))

    body = agent.get(url(shown.case)).content.decode()

    assert "New sign-in method (fido2) set up by the owner at the identity provider" in body
    assert "verified by the entra connector" in body
    assert "New passkey bound" not in body  # the portal registered no passkey
    upn = shown.owner.upn
    for lost in shown.owner.lost:
        assert f'data-containment-done="method_remove:{lost}"' in body
        [removal] = [
            e for e in events(acme, "containment.step_done", shown.case) if e.data["target"] == lost
        ]
        assert escape(removal.data["path"]) in body  # the connector's own path
    assert f'data-containment-done="sessions_revoke:{upn}"' in body
    assert 'data-containment-done="revoke_temporary_access:' in body
    assert "data-containment-pending" not in body and "data-close-refused" not in body
    assert shown.secret not in body


# --- a step left to a person ------------------------------------------------------------------


def test_a_pending_step_is_shown_with_its_words_and_closing_is_refused_in_words(
    acme, entra, sms_outbox
):
    shown = bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = pending_steps(shown.case)
    client = signed_in_client(staff(Role.AGENT, tenant=acme))

    body = client.get(url(shown.case)).content.decode()

    assert f'data-containment-pending="{escape(pending["id"])}"' in body
    assert escape(pending["manual_step"]) in body and "(entra.forbidden)" in body
    assert "I did this: confirm with your passkey" in body
    assert 'data-options-url="' + url(shown.case, "step-up/options") + '?action=execute"' in body
    assert "The case cannot be closed yet: 1 containment step" in body
    assert 'data-close-refused="containment_pending"' in body

    refused = client.post(url(shown.case, "close"), {"end-reason": "the owner is back in"})

    assert refused.status_code == 400
    assert "(case.containment_pending)" in refused.content.decode()
    assert RecoveryCase.objects.get(pk=shown.case.pk).status == "executed"
    assert shown.secret not in body + refused.content.decode()


def test_recording_a_step_needs_a_passkey_step_up_for_this_case(acme, entra, sms_outbox):
    shown = bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = pending_steps(shown.case)
    agent = staff(Role.AGENT, tenant=acme)
    client = signed_in_client(agent)

    bare = record(client, shown.case, pending["id"])
    approving = record(
        client,
        shown.case,
        pending["id"],
        step_up_assertion(agent, case=shown.case, action="approve"),
    )

    assert bare.status_code == 400 and "(stepup.required)" in bare.content.decode()
    assert approving.status_code == 400
    assert "(stepup.challenge_unknown)" in approving.content.decode()
    assert pending_steps(shown.case) == [pending]
    assert events(acme, "containment.step_recorded", shown.case) == []

    done = record(
        client,
        shown.case,
        pending["id"],
        step_up_assertion(agent, case=shown.case, action="execute"),
        **HTMX,
    )

    assert done.status_code == 200  # htmx: the live section, re-rendered
    body = done.content.decode()
    assert "No containment step is pending: the case can be closed." in body
    assert f'data-containment-recorded="{escape(pending["id"])}"' in body
    assert f"recorded by {agent.username}" in body
    assert "data-close-refused" not in body and shown.secret not in body
    assert pending_steps(shown.case) == []
    [recorded] = events(acme, "containment.step_recorded", shown.case)
    assert recorded.data["step"] == pending["id"] and recorded.data["step_up"]
    closed = client.post(url(shown.case, "close"), {"end-reason": "the owner is back in"})
    assert closed.status_code == 302
    assert RecoveryCase.objects.get(pk=shown.case.pk).status == "closed"


def test_an_unknown_step_is_refused_with_its_code(acme, entra, sms_outbox):
    shown = bound_with_a_failed_removal(acme, entra, sms_outbox)
    agent = staff(Role.AGENT, tenant=acme)
    answer = step_up_assertion(agent, case=shown.case, action="execute")

    refused = record(signed_in_client(agent), shown.case, "method_remove:not-a-step", answer)

    assert refused.status_code == 400
    assert "(containment.step_unknown)" in refused.content.decode()
    assert len(pending_steps(shown.case)) == 1


# --- who may see and record -----------------------------------------------------------------


def test_an_auditor_sees_the_pending_step_but_cannot_record_it(acme, entra, sms_outbox):
    shown = bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = pending_steps(shown.case)
    auditor = staff(Role.AUDITOR, tenant=acme)
    client = signed_in_client(auditor)

    body = client.get(url(shown.case)).content.decode()

    assert escape(pending["manual_step"]) in body
    assert 'name="containment-step"' not in body and "I did this" not in body
    assert shown.secret not in body
    refused = record(client, shown.case, pending["id"])
    assert refused.status_code == 403
    assert pending_steps(shown.case) == [pending]


def test_another_tenants_staff_get_the_404_of_a_missing_case(acme, globex, entra, sms_outbox):
    shown = bound_with_a_failed_removal(acme, entra, sms_outbox)
    [pending] = pending_steps(shown.case)
    outsider: User = staff(Role.AGENT, tenant=globex)
    client = signed_in_client(outsider)
    missing = RecoveryCase(pk=shown.case.pk + 10_000, tenant=globex)

    for action, send in (("", client.get), ("containment/record", client.post)):
        data = {"containment-step": pending["id"]} if action else None
        foreign = send(url(shown.case, action, slug=globex.slug), data)
        absent = send(url(missing, action, slug=globex.slug), data)
        assert foreign.status_code == absent.status_code == 404
        assert page(foreign) == page(absent)
        assert shown.secret not in foreign.content.decode()
    assert pending_steps(shown.case) == [pending]

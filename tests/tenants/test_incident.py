"""The incident switches (R-68, issue 16 part 5): AI assistance off at once, recoveries frozen
until a second person lifts the freeze. Real PostgreSQL, real API requests, Django's mail
outbox as the SMTP server."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from audit.models import AuditEvent
from recovery.cases.services import case_open
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.incident import ai_switch, incident_state, recoveries_freeze, recoveries_unfreeze
from tenants.models import User

from ..api.conftest import api, key_client
from ..conftest import signed_in_client
from ..factories import (
    active_grant,
    execute,
    make_account,
    make_provider,
    staff,
    step_up,
    totp_token,
)
from ..recovery.execution.helpers import ready_case

pytestmark = pytest.mark.django_db

REASON = "suspected help-desk social engineering"


@pytest.fixture
def officer(acme) -> User:
    return staff(Role.SECURITY_OFFICER, tenant=acme)


@pytest.fixture
def second_officer(acme) -> User:
    return staff(Role.TENANT_ADMIN, tenant=acme)


def refused(code: str, act) -> DomainError:
    with pytest.raises(DomainError) as error:
        act()
    assert error.value.code == code, error.value.message
    return error.value


def freeze(actor: User, tenant) -> None:
    recoveries_freeze(actor=actor, tenant=tenant, reason=REASON, step_up=step_up(actor))


def unfreeze(actor: User, tenant) -> None:
    recoveries_unfreeze(actor=actor, tenant=tenant, reason=REASON, step_up=step_up(actor))


def test_ai_keys_are_refused_at_once_and_people_go_on(acme, officer):
    ai, integration = key_client(acme, kind="ai_assistant"), key_client(acme)
    assert ai.get(api(acme, "cases/")).status_code == 200  # and its key is now remembered
    ai_switch(actor=officer, tenant=acme, off=True, reason=REASON, step_up=step_up(officer))
    response = ai.get(api(acme, "cases/"))
    assert response.status_code == 403
    assert response.json()["code"] == "ai.switched_off"
    assert integration.get(api(acme, "cases/")).status_code == 200
    ai_switch(actor=officer, tenant=acme, off=False, reason=REASON, step_up=step_up(officer))
    assert ai.get(api(acme, "cases/")).status_code == 200
    actions = AuditEvent.objects.filter(tenant=acme, action__startswith="incident.")
    assert list(actions.values_list("action", flat=True)) == [
        "incident.ai_switched_off",
        "incident.ai_switched_on",
    ]


def test_another_tenants_ai_keys_are_not_refused(acme, globex, officer):
    ai_switch(actor=officer, tenant=acme, off=True, reason=REASON, step_up=step_up(officer))
    assert key_client(globex, kind="ai_assistant").get(api(globex, "cases/")).status_code == 200


def test_a_freeze_routes_new_cases_to_security_and_stops_every_execution(acme, officer):
    agent = staff(Role.AGENT, tenant=acme)
    waiting = ready_case(acme, agent, case_type="password_reset")
    assert waiting.tier == "T0"
    freeze(officer, acme)
    refused("incident.recoveries_frozen", lambda: execute(waiting, agent))
    waiting.refresh_from_db()
    assert waiting.status == "ready"
    refusal = AuditEvent.objects.filter(tenant=acme, action="case.execution_refused").last()
    assert refusal.data["code"] == "incident.recoveries_frozen"
    opened = case_open(
        actor=agent, account=make_account(acme), case_type="password_reset", channel="phone"
    )
    assert opened.route == "security"
    opening = AuditEvent.objects.get(tenant=acme, action="case.opened", target_id=str(opened.pk))
    assert "recoveries in the tenant are frozen for an incident" in opening.data["route_reasons"]


def test_only_a_second_person_lifts_the_freeze(acme, officer, second_officer):
    agent = staff(Role.AGENT, tenant=acme)
    waiting = ready_case(acme, agent, case_type="password_reset")
    freeze(officer, acme)
    refused("incident.second_person_required", lambda: unfreeze(officer, acme))
    other_account = staff(Role.SECURITY_OFFICER, tenant=acme)  # the same person's second account
    User.objects.filter(pk=other_account.pk).update(person_id=officer.person_id)
    other_account.refresh_from_db()
    refused("incident.second_person_required", lambda: unfreeze(other_account, acme))
    assert incident_state(acme).frozen
    unfreeze(second_officer, acme)
    assert not incident_state(acme).frozen
    assert execute(waiting, agent).status == "executed"


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.AUDITOR, Role.AUDIT_ADMIN])
def test_only_security_officers_and_tenant_admins_flip_the_switches(acme, role):
    person = staff(role, tenant=acme)
    refused("incident.controller_required", lambda: freeze(person, acme))
    assert not incident_state(acme).frozen


def test_provider_staff_through_a_grant_cannot_flip_them(acme):
    provider = make_provider()
    active_grant(provider, acme, roles=(Role.SECURITY_OFFICER, Role.AGENT))
    provider_officer = staff(Role.SECURITY_OFFICER, provider=provider)
    refused("incident.controller_required", lambda: freeze(provider_officer, acme))


def test_each_switch_needs_a_fresh_step_up_and_a_reason(acme, officer):
    refused(
        "stepup.required",
        lambda: recoveries_freeze(actor=officer, tenant=acme, reason=REASON, step_up=None),
    )
    refused(
        "incident.reason_required",
        lambda: recoveries_freeze(actor=officer, tenant=acme, reason="x", step_up=step_up(officer)),
    )
    assert not incident_state(acme).frozen
    assert not AuditEvent.objects.filter(tenant=acme, action__startswith="incident.").exists()


def test_the_tenant_admins_are_told(acme, officer, django_capture_on_commit_callbacks):
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    User.objects.filter(pk=admin.pk).update(email="admin@acme.test")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        freeze(officer, acme)
    [message] = mail.outbox
    assert message.bcc == ["admin@acme.test"]
    assert "incident.recoveries_frozen" in message.subject and REASON in message.body


def test_the_console_page_flips_a_switch(acme, officer):
    client = signed_in_client(officer)
    home = client.get(f"/t/{acme.slug}/")
    assert f"/t/{acme.slug}/incident/".encode() in home.content
    response = client.post(
        f"/t/{acme.slug}/incident/switch/",
        {"switch": "freeze", "reason": REASON, "token": totp_token(officer)},
        follow=True,
    )
    assert b'id="freeze-state"' in response.content and b"Recoveries frozen." in response.content
    assert incident_state(acme).frozen
    agent_client = signed_in_client(staff(Role.AGENT, tenant=acme))
    assert agent_client.get(f"/t/{acme.slug}/incident/").status_code == 403

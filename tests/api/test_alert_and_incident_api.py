"""Issue 16 over the API: alerts as people work them (`alerts/queue/`) and the incident
switches (`incident/`), each a person's act with the same rules as the console."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from recovery.cases.services import case_open
from recovery.cases.services.base import alert_raise
from recovery.detection.models import Alert
from tenants.choices import Role
from tenants.models import IncidentControl

from ..factories import make_account, staff, totp_token
from .conftest import api, key_client, staff_api_client

pytestmark = pytest.mark.django_db
REASON = "suspected help-desk social engineering"


@pytest.fixture
def alert(acme) -> Alert:
    agent = staff(Role.AGENT, tenant=acme)
    case = case_open(actor=agent, account=make_account(acme), case_type="unlock", channel="phone")
    alert_raise(case, "caller_reuse")
    alert_raise(case, "caller_reuse")  # the same again: one alert, counted twice
    return Alert.objects.get(tenant=acme, kind="caller_reuse")


def test_the_queue_lists_each_alert_once_with_its_count_and_a_key_can_read_it(acme, alert):
    body = key_client(acme, ["alerts:read"]).get(api(acme, "alerts/queue/?status=open")).json()
    [row] = body["results"]
    assert (row["id"], row["count"], row["status"]) == (alert.pk, 2, "open")


def test_a_security_officer_acknowledges_then_resolves_with_a_reason(acme, alert):
    officer = staff_api_client(staff(Role.SECURITY_OFFICER, tenant=acme))
    done = officer.post(api(acme, f"alerts/queue/{alert.pk}/acknowledge/"))
    assert done.status_code == 200 and done.json()["status"] == "acknowledged"
    short = officer.post(
        api(acme, f"alerts/queue/{alert.pk}/resolve/"),
        {"outcome": "resolved", "reason": "ok"},
        format="json",
    )
    assert short.status_code == 400 and short.json()["code"] == "alert.reason_required"
    closed = officer.post(
        api(acme, f"alerts/queue/{alert.pk}/resolve/"),
        {"outcome": "false_positive", "reason": "one caller for a family of two, verified"},
        format="json",
    )
    assert closed.status_code == 200 and closed.json()["status"] == "false_positive"
    assert AuditEvent.objects.filter(tenant=acme, action="alert.resolved").count() == 1


def test_a_tenant_admin_and_a_key_cannot_work_alerts(acme, alert):
    admin = staff_api_client(staff(Role.TENANT_ADMIN, tenant=acme))
    refused = admin.post(api(acme, f"alerts/queue/{alert.pk}/acknowledge/"))
    assert refused.json()["code"] == "alert.security_officer_required"
    keyed = key_client(acme).post(api(acme, f"alerts/queue/{alert.pk}/acknowledge/"))
    assert keyed.status_code == 403
    assert Alert.objects.get(pk=alert.pk).status == "open"


def test_the_incident_freeze_over_the_api_takes_a_second_person_to_lift(acme):
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    admin = staff(Role.TENANT_ADMIN, tenant=acme)
    first, second = staff_api_client(officer), staff_api_client(admin)
    frozen = first.post(
        api(acme, "incident/"),
        {"switch": "freeze", "reason": REASON, "otp": totp_token(officer)},
        format="json",
    )
    assert frozen.status_code == 200 and frozen.json()["frozen"] is True
    own = first.post(
        api(acme, "incident/"),
        {"switch": "unfreeze", "reason": REASON, "otp": totp_token(officer)},
        format="json",
    )
    assert own.status_code == 403 and own.json()["code"] == "incident.second_person_required"
    lifted = second.post(
        api(acme, "incident/"),
        {
            "switch": "unfreeze",
            "reason": "contained; the agent was retrained",
            "otp": totp_token(admin),
        },
        format="json",
    )
    assert lifted.status_code == 200 and lifted.json()["frozen"] is False
    assert second.get(api(acme, "incident/")).json()["frozen"] is False


def test_an_ai_key_and_an_agent_cannot_use_the_switches(acme):
    agent = staff_api_client(staff(Role.AGENT, tenant=acme))
    refused = agent.post(
        api(acme, "incident/"), {"switch": "ai_off", "reason": REASON, "otp": "000000"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "auth.scope_missing"
    ai = key_client(acme, kind="ai_assistant").get(api(acme, "incident/"))
    assert ai.status_code == 403
    assert not IncidentControl.objects.filter(tenant=acme, ai_off=True).exists()

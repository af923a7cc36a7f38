"""The console page where an audit_admin acknowledges an audit integrity finding (issue 15
part 3, R-44, R-48): the chain page shows the tenant's and the platform's findings to readers
of the trail, and the tenant's audit_admin acknowledges one with a passkey step-up through the
real views (options, the soft passkey's answer, the post), recorded in the platform chain.

Everything is real: PostgreSQL (the chain tampered as a superuser would), the verifier task run
in-process, the WebAuthn verification of a soft authenticator's answer.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.integrity import integrity_failing, platform_audit_admin_set
from audit.models import AuditEvent, ChainIntegrity
from audit.tasks import audit_verify_task
from tenants.choices import Role, Scope
from tenants.models import Tenant, User

from ..api.conftest import api, key_client
from ..conftest import signed_in_client
from ..factories import execute, notices_sent, operator, passkey_of, staff, totp_token
from ..recovery.execution.helpers import ready_case
from .test_fail_closed import T1, break_row, finding_of
from .test_tampering import tamper

pytestmark = pytest.mark.django_db

FORM = 'id="integrity-acknowledge-tenant"'
OPTIONS = re.compile(r'data-options-url="([^"]+)"')


@pytest.fixture
def agent(acme) -> User:
    return staff(Role.AGENT, tenant=acme)


@pytest.fixture
def audit_admin(acme) -> User:
    return staff(Role.AUDIT_ADMIN, tenant=acme)


@pytest.fixture
def t1_case(acme, agent):
    case = ready_case(acme, agent, **T1)
    assert case.tier == "T1"
    assert set(notices_sent(acme)) <= {"sent"}  # the owner is told before anything executes
    return case


@pytest.fixture
def broken(acme, t1_case) -> ChainIntegrity:
    """acme's chain tampered at seq 3 and the verifier run over it."""
    break_row(acme, 3)
    audit_verify_task()
    return finding_of(acme)


def chain_page(tenant: Tenant) -> str:
    return f"/t/{tenant.slug}/audit/chain/"


def acknowledge_url(tenant: Tenant) -> str:
    return f"/t/{tenant.slug}/audit/chain/integrity/acknowledge/"


def options_url(tenant: Tenant, finding: int, chain: str = "tenant") -> str:
    return f"/t/{tenant.slug}/audit/chain/integrity/step-up/?chain={chain}&finding={finding}"


def passkey_answer(client: Client, user: User, url: str) -> str:
    """What passkey.js posts as `step_up_assertion`: the user's answer to the options at `url`."""
    key = passkey_of(user)  # enrolled first: the options list the user's active passkeys
    response = client.get(url)
    assert response.status_code == 200, response.content
    return key.get(response.content.decode())


def post(client: Client, tenant: Tenant, finding: int, **step_up: str):
    data = {"chain": "tenant", "finding": finding, **step_up}
    return client.post(acknowledge_url(tenant), data, follow=True)


def test_an_auditor_sees_the_finding_without_a_form(acme, broken):
    body = signed_in_client(staff(Role.AUDITOR, tenant=acme)).get(chain_page(acme))
    assert body.status_code == 200
    text = body.content.decode()
    assert 'data-integrity-chain="tenant"' in text and "#3" in text and broken.reason in text
    assert "Failing closed" in text and FORM not in text
    assert 'data-integrity-chain="platform"' not in text  # the platform chain has no finding


def test_an_audit_admin_sees_the_form_bound_to_the_finding(acme, broken, audit_admin):
    text = signed_in_client(audit_admin).get(chain_page(acme)).content.decode()
    assert FORM in text and "data-passkey-step-up" in text
    assert f'name="finding" value="{broken.finding_event_seq}"' in text
    url = OPTIONS.search(text.split(FORM, 1)[1]).group(1).replace("&amp;", "&")
    assert url == options_url(acme, broken.finding_event_seq)


@pytest.mark.parametrize(
    ("step_up", "code"), [("none", "stepup.required"), ("totp", "stepup.kind_refused")]
)
def test_without_a_passkey_the_acknowledgement_is_refused_with_its_code(
    acme, broken, audit_admin, step_up, code
):
    client = signed_in_client(audit_admin)
    presented = {"token": totp_token(audit_admin)} if step_up == "totp" else {}
    response = post(client, acme, broken.finding_event_seq, **presented)
    assert response.status_code == 200 and f"({code})" in response.content.decode()
    assert integrity_failing(acme) == broken
    refusal = AuditEvent.objects.filter(
        tenant=None, action="audit.integrity_acknowledge_refused"
    ).last()
    assert refusal.data == {"key": broken.key, "code": code}


def test_with_a_passkey_it_is_acknowledged_in_the_platform_chain_and_the_tenant_executes(
    acme, agent, t1_case, broken, audit_admin
):
    client = signed_in_client(audit_admin)
    answer = passkey_answer(client, audit_admin, options_url(acme, broken.finding_event_seq))
    response = post(client, acme, broken.finding_event_seq, step_up_assertion=answer)
    assert response.redirect_chain == [(chain_page(acme), 302)]
    text = response.content.decode()
    assert "Finding acknowledged" in text and FORM not in text
    assert audit_admin.username in text  # "acknowledged by"
    assert integrity_failing(acme) is None
    state = finding_of(acme)
    event = AuditEvent.objects.get(tenant=None, seq=state.acknowledged_event_seq)
    assert event.action == "audit.integrity_acknowledged"
    assert event.actor_id == str(audit_admin.pk)
    assert (event.data["key"], event.data["finding"]) == (broken.key, broken.finding_event_seq)
    assert event.data["step_up"]["device_type"] == "passkey"
    assert execute(t1_case, agent).status == "executed"


def test_a_passkey_answer_is_spent_by_one_post(acme, broken, audit_admin):
    client = signed_in_client(audit_admin)
    answer = passkey_answer(client, audit_admin, options_url(acme, broken.finding_event_seq))
    post(client, acme, broken.finding_event_seq, step_up_assertion=answer)
    again = post(client, acme, broken.finding_event_seq, step_up_assertion=answer)
    assert "(stepup.challenge_unknown)" in again.content.decode()


def test_a_stale_finding_is_refused(acme, broken, audit_admin):
    client = signed_in_client(audit_admin)
    stale = broken.finding_event_seq - 1
    answer = passkey_answer(client, audit_admin, options_url(acme, stale))
    response = post(client, acme, stale, step_up_assertion=answer)
    assert "(audit.integrity_finding_changed)" in response.content.decode()
    assert integrity_failing(acme) == broken


def test_an_answer_made_for_another_finding_is_refused(acme, broken, audit_admin):
    client = signed_in_client(audit_admin)
    answer = passkey_answer(client, audit_admin, options_url(acme, broken.finding_event_seq - 1))
    response = post(client, acme, broken.finding_event_seq, step_up_assertion=answer)
    assert "(stepup.challenge_unknown)" in response.content.decode()
    assert integrity_failing(acme) == broken


def test_another_tenants_audit_admin_gets_404(acme, globex, broken):
    client = signed_in_client(staff(Role.AUDIT_ADMIN, tenant=globex))
    assert client.get(chain_page(acme)).status_code == 404
    assert client.get(options_url(acme, broken.finding_event_seq)).status_code == 404
    response = client.post(acknowledge_url(acme), {"chain": "tenant", "finding": 1})
    assert response.status_code == 404
    assert integrity_failing(acme) == broken


def test_an_agent_gets_403_and_the_attempt_is_recorded(acme, broken, agent):
    client = signed_in_client(agent)
    options = client.get(options_url(acme, broken.finding_event_seq))
    assert options.status_code == 403 and options.json()["code"] == "audit.admin_required"
    response = client.post(
        acknowledge_url(acme), {"chain": "tenant", "finding": broken.finding_event_seq}
    )
    assert response.status_code == 403 and "(audit.admin_required)" in response.content.decode()
    assert integrity_failing(acme) == broken
    refusal = AuditEvent.objects.filter(
        tenant=None, action="audit.integrity_acknowledge_refused"
    ).last()
    assert refusal.data == {"key": broken.key, "code": "audit.admin_required"}


def test_a_platform_finding_is_acknowledged_by_a_platform_audit_admin_only(acme, audit_admin):
    tamper(
        acme, "UPDATE audit_auditevent SET actor_label = 'x' WHERE tenant_id IS NULL AND seq = 1"
    )
    audit_verify_task()
    state = ChainIntegrity.objects.get(key="platform")
    platform_form = 'id="integrity-acknowledge-platform"'
    text = signed_in_client(audit_admin).get(chain_page(acme)).content.decode()
    assert 'data-integrity-chain="platform"' in text and platform_form not in text
    reader = staff(Role.AUDITOR, tenant=acme)  # a reader of acme's trail, made platform audit admin
    platform_audit_admin_set(actor=operator(), user=reader, enabled=True)
    client = signed_in_client(reader)
    assert platform_form in client.get(chain_page(acme)).content.decode()
    url = options_url(acme, state.finding_event_seq, chain="platform")
    answer = passkey_answer(client, reader, url)
    data = {"chain": "platform", "finding": state.finding_event_seq, "step_up_assertion": answer}
    response = client.post(acknowledge_url(acme), data, follow=True)
    assert "Finding acknowledged" in response.content.decode()
    assert integrity_failing(acme) is None


def test_the_api_gives_readers_both_chains_states_and_records_the_read(
    acme, globex, broken, audit_admin
):
    """`GET audit/integrity/` (Scope.AUDIT_READ) reads; there is no route to acknowledge."""
    client = key_client(acme, [Scope.AUDIT_READ])
    response = client.get(api(acme, "audit/integrity/"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["platform"] is None
    tenant = body["tenant"]
    assert (tenant["failing"], tenant["first_bad_seq"]) == (True, 3)
    assert tenant["finding_event_seq"] == broken.finding_event_seq
    assert tenant["untrusted"] == list(broken.window) and tenant["acknowledged_by"] is None
    read = AuditEvent.objects.filter(tenant=acme, action="audit.read").last()
    assert read.data == {"read": "api.integrity"}
    assert client.get(api(globex, "audit/integrity/")).status_code == 404
    no_scope = key_client(acme, [Scope.CASES_READ]).get(api(acme, "audit/integrity/"))
    assert no_scope.status_code == 403
    assert client.post(api(acme, "audit/integrity/"), {}).status_code == 405  # read-only
    client_staff = signed_in_client(audit_admin)
    answer = passkey_answer(client_staff, audit_admin, options_url(acme, broken.finding_event_seq))
    post(client_staff, acme, broken.finding_event_seq, step_up_assertion=answer)
    after = client.get(api(acme, "audit/integrity/")).json()["tenant"]
    assert after["failing"] is False and after["acknowledged_by"] == audit_admin.username

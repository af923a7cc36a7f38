"""Alert routes (issue 16 part 4): where a tenant's alerts go, changed under dual control, and
the alerts really arriving: email through Django's mail outbox, a signed webhook, Slack and
Teams formats at a real HTTP receiver on 127.0.0.1 (the vendors lie outside this machine; the
receiver checks what their incoming webhooks document: a JSON `text` for Slack, an Adaptive
Card attachment for Teams)."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from integrations.choices import DeliveryKind, DeliveryStatus
from integrations.delivery import webhook_outbox_sweep
from integrations.models import WebhookDelivery
from integrations.outbox import webhooks_derive
from integrations.signing import verify
from recovery.cases.models import RecoveryCase
from recovery.cases.services.base import alert_raise
from tenants.choices import Role
from tenants.exceptions import DomainError
from tenants.models import AlertRoute, Tenant, User
from tenants.routes import (
    route_approve,
    route_propose,
    route_reject,
    route_removal_propose,
    route_withdraw,
    security_contacts,
)

from ..api.conftest import api, key_client, staff_api_client
from ..conftest import signed_in_client
from ..factories import (
    active_grant,
    make_account,
    make_provider,
    make_user,
    member,
    staff,
    step_up,
    totp_token,
)
from ..integrations.hooks import Receiver

pytestmark = pytest.mark.django_db

REASON = "the mailbox is being retired"


@pytest.fixture
def admin(acme) -> User:
    return staff(Role.TENANT_ADMIN, tenant=acme)


@pytest.fixture
def admin2(acme) -> User:
    return staff(Role.TENANT_ADMIN, tenant=acme)


@pytest.fixture
def receiver():
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def base(receiver) -> str:
    """The receiver's origin: each route posts to its own path there."""
    return receiver.url.removesuffix("/hooks/vouchsafe")


def refused(code: str, act) -> DomainError:
    with pytest.raises(DomainError) as error:
        act()
    assert error.value.code == code, error.value.message
    return error.value


def active_route(tenant: Tenant, proposer: User, approver: User, kind: str, target: str):
    route = route_propose(actor=proposer, tenant=tenant, kind=kind, target=target)
    return route_approve(actor=approver, route=route, step_up=step_up(approver))


def a_case(tenant: Tenant) -> RecoveryCase:
    from recovery.cases.services import case_open

    agent = staff(Role.AGENT, tenant=tenant)
    return case_open(actor=agent, account=make_account(tenant), case_type="unlock", channel="phone")


def raised(case: RecoveryCase, kind: str = "caller_reuse") -> None:
    with transaction.atomic():
        alert_raise(case, kind, correlation_id=str(case.correlation_id))


def routed(tenant: Tenant) -> int:
    webhooks_derive(tenant_id=tenant.pk)
    return webhook_outbox_sweep()


# --- dual control ------------------------------------------------------------------------------


def test_a_proposed_route_sends_nothing_until_a_second_admin_approves(acme, admin, admin2):
    route = route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    assert route.status == "proposed" and security_contacts(acme.pk) == []
    case = a_case(acme)
    raised(case)
    routed(acme)
    assert not [m for m in mail.outbox if m.to == ["soc@acme.test"]]

    route, secret = route_approve(actor=admin2, route=route, step_up=step_up(admin2))
    assert (route.status, route.approved_by, secret) == ("active", admin2, "")
    assert security_contacts(acme.pk) == ["soc@acme.test"]
    approved = AuditEvent.objects.get(tenant=acme, action="alert_route.approved")
    assert approved.data["proposed_by"] == admin.username
    assert approved.data["step_up"]["proof"]  # the step-up, spent on this approval

    raised(case, "repeat_case")  # raised after the approval: this one reaches the contact
    mail.outbox.clear()
    assert routed(acme) == 1
    [page] = mail.outbox
    assert page.to == ["soc@acme.test"]
    assert page.subject == f"Vouchsafe alert in {acme.name}: repeat_case"
    assert f"On: case {case.pk}" in page.body
    assert f"/t/{acme.slug}/review/{case.pk}/" in page.body
    assert case.account.username not in page.body  # the console names the account, not mail


def test_whoever_proposed_cannot_approve_under_any_account(acme, admin):
    route = route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    refused(
        "sod.approver_is_requester",
        lambda: route_approve(actor=admin, route=route, step_up=step_up(admin)),
    )
    same_person = make_user(person_id=str(admin.person_id))
    member(same_person, Role.TENANT_ADMIN, tenant=acme)
    refused(
        "sod.approver_is_requester",
        lambda: route_approve(actor=same_person, route=route, step_up=step_up(same_person)),
    )
    assert AlertRoute.objects.get(pk=route.pk).status == "proposed"


def test_the_database_refuses_an_approval_by_the_proposer(acme, admin):
    """The check constraint behind the service: a row written around it is refused."""
    route = route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertRoute.objects.filter(pk=route.pk).update(status="active", approved_by=admin)


def test_approving_needs_a_fresh_step_up(acme, admin, admin2):
    route = route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    refused("stepup.required", lambda: route_approve(actor=admin2, route=route, step_up=None))
    assert AlertRoute.objects.get(pk=route.pk).status == "proposed"


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR])
def test_only_tenant_admins_change_routes(acme, role):
    someone = staff(role, tenant=acme)
    refused(
        "tenant.admin_required",
        lambda: route_propose(actor=someone, tenant=acme, kind="email", target="x@acme.test"),
    )


def test_provider_staff_through_a_grant_cannot_change_routes(acme):
    provider = make_provider()
    active_grant(provider, acme)
    msp_admin = staff(Role.AGENT, provider=provider)
    refused(
        "tenant.admin_not_delegable",
        lambda: route_propose(actor=msp_admin, tenant=acme, kind="email", target="x@acme.test"),
    )


@pytest.mark.parametrize(
    ("kind", "target", "field"),
    [
        ("email", "not an address", "target"),
        ("slack", "ftp://hooks.slack.example/T0/B0", "target"),
        ("teams", "https://user:pw@teams.example/hook", "target"),
        ("pager", "soc@acme.test", "kind"),
    ],
)
def test_an_invalid_route_is_refused_with_its_field_and_nothing_stored(
    acme, admin, kind, target, field
):
    error = refused(
        "alert_route.invalid",
        lambda: route_propose(actor=admin, tenant=acme, kind=kind, target=target),
    )
    assert list(error.field_errors) == [field]
    assert not AlertRoute.objects.filter(tenant=acme).exists()


def test_a_route_cannot_be_proposed_twice(acme, admin, admin2):
    route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    refused(
        "alert_route.duplicate",
        lambda: route_propose(actor=admin2, tenant=acme, kind="email", target="soc@acme.test"),
    )


def test_a_removal_takes_a_second_admin_and_the_route_sends_until_then(acme, admin, admin2):
    route, _ = active_route(acme, admin, admin2, "email", "soc@acme.test")
    route = route_removal_propose(actor=admin, route=route, reason=REASON)
    assert route.status == "removal_proposed"
    assert security_contacts(acme.pk) == ["soc@acme.test"]  # still paged meanwhile
    refused(
        "sod.approver_is_requester",
        lambda: route_approve(actor=admin, route=route, step_up=step_up(admin)),
    )
    case = a_case(acme)
    raised(case)
    webhooks_derive(tenant_id=acme.pk)  # derived while the route still delivers ...

    route, _ = route_approve(actor=admin2, route=route, step_up=step_up(admin2))
    assert route.status == "removed" and security_contacts(acme.pk) == []
    mail.outbox.clear()
    webhook_outbox_sweep()  # ... and given up once it is removed
    assert not mail.outbox
    [row] = WebhookDelivery.objects.filter(route=route)
    assert (row.status, row.last_error) == (DeliveryStatus.DEAD, "The alert route was removed.")
    raised(case, "repeat_case")
    webhooks_derive(tenant_id=acme.pk)
    assert WebhookDelivery.objects.filter(route=route).count() == 1  # nothing new


def test_a_rejected_removal_leaves_the_route_active(acme, admin, admin2):
    route, _ = active_route(acme, admin, admin2, "email", "soc@acme.test")
    route = route_removal_propose(actor=admin2, route=route, reason=REASON)
    refused(
        "alert_route.reason_required", lambda: route_reject(actor=admin, route=route, reason="")
    )
    route = route_reject(actor=admin, route=route, reason="we still use this mailbox")
    assert route.status == "active" and route.removal_requested_by is None
    event = AuditEvent.objects.filter(tenant=acme, action="alert_route.rejected").get()
    assert event.data["step"] == "removal"


def test_only_the_proposer_withdraws(acme, admin, admin2):
    route = route_propose(actor=admin, tenant=acme, kind="email", target="soc@acme.test")
    refused("alert_route.not_requester", lambda: route_withdraw(actor=admin2, route=route))
    route = route_withdraw(actor=admin, route=route)
    assert route.status == "withdrawn"
    refused(
        "alert_route.not_pending",
        lambda: route_approve(actor=admin2, route=route, step_up=step_up(admin2)),
    )


def test_a_route_approved_later_does_not_receive_earlier_alerts(acme, admin, admin2):
    case = a_case(acme)
    raised(case)
    active_route(acme, admin, admin2, "email", "soc@acme.test")
    routed(acme)
    assert not WebhookDelivery.objects.filter(tenant=acme, kind=DeliveryKind.ROUTE).exists()


# --- formats at a real receiver ----------------------------------------------------------------


def test_a_signed_webhook_route_signs_with_the_key_shown_once(acme, admin, admin2, receiver, base):
    url = f"{base}/hooks/soc-token-123"
    route, secret = active_route(acme, admin, admin2, "webhook", url)
    assert secret and AlertRoute.objects.get(pk=route.pk).secret == secret
    case = a_case(acme)
    raised(case)
    assert routed(acme) == 1
    [request] = receiver.requests
    assert request.path == "/hooks/soc-token-123"
    assert verify(secret, request.headers["Vouchsafe-Signature"], request.body)
    body = json.loads(request.body)
    assert body["type"] == "alert.raised" and body["tenant"] == acme.slug
    assert body["data"]["type"] == "caller_reuse" and body["data"]["target_id"] == str(case.pk)
    assert "several subjects" in body["data"]["summary"]  # the rule's description
    # Events and the trail show the URL's origin only: its path is the receiver's credential.
    for event in AuditEvent.objects.filter(tenant=acme, action__startswith="alert_route."):
        assert "soc-token-123" not in json.dumps(event.data)


def test_slack_and_teams_routes_get_their_documented_shapes(acme, admin, admin2, receiver, base):
    active_route(acme, admin, admin2, "slack", f"{base}/slack/T0/B0/x")
    active_route(acme, admin, admin2, "teams", f"{base}/teams/workflow")
    case = a_case(acme)
    raised(case, "repudiation")
    assert routed(acme) == 2
    by_path = {r.path: json.loads(r.body) for r in receiver.requests}
    slack = by_path["/slack/T0/B0/x"]
    assert set(slack) == {"text"}
    assert slack["text"].startswith(f"*URGENT: Vouchsafe alert in {acme.name}: repudiation*")
    teams = by_path["/teams/workflow"]
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["actions"][0]["url"].endswith(f"/t/{acme.slug}/review/{case.pk}/")
    assert {"title": "On", "value": f"case {case.pk}"} in card["body"][2]["facts"]


def test_a_failing_chat_route_is_retried_not_lost(acme, admin, admin2, receiver, base):
    active_route(acme, admin, admin2, "slack", f"{base}/slack/hook")
    receiver.statuses.extend([500])
    raised(a_case(acme))
    routed(acme)
    [row] = WebhookDelivery.objects.filter(tenant=acme, kind=DeliveryKind.ROUTE)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    WebhookDelivery.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
    webhook_outbox_sweep()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 2)


# --- console and API ---------------------------------------------------------------------------


def test_the_console_proposes_and_a_second_admin_approves(acme, admin, admin2, receiver, base):
    first = signed_in_client(admin)
    page = first.get(f"/t/{acme.slug}/alert-routes/")
    assert page.status_code == 200 and b"No route" in page.content
    response = first.post(
        f"/t/{acme.slug}/alert-routes/propose/",
        {"kind": "webhook", "target": f"{base}/hook/secret-path", "label": "SOAR"},
    )
    assert response.status_code == 302
    route = AlertRoute.objects.get(tenant=acme)
    second = signed_in_client(admin2)
    page = second.get(f"/t/{acme.slug}/alert-routes/")
    assert b"secret-path" not in page.content and base.encode() in page.content
    response = second.post(
        f"/t/{acme.slug}/alert-routes/{route.pk}/approve/",
        {"token": totp_token(admin2)},
        follow=True,
    )
    route.refresh_from_db()
    assert route.status == "active"
    assert route.secret.encode() in response.content  # shown once, to the approver
    again = second.get(f"/t/{acme.slug}/alert-routes/")
    assert route.secret.encode() not in again.content


def test_the_console_page_is_refused_to_an_agent(acme):
    agent = signed_in_client(staff(Role.AGENT, tenant=acme))
    assert agent.get(f"/t/{acme.slug}/alert-routes/").status_code == 403


def test_the_api_proposes_lists_and_approves_with_the_secret_once(
    acme, admin, admin2, receiver, base
):
    first, second = staff_api_client(admin), staff_api_client(admin2)
    bad = first.post(api(acme, "alert-routes/"), {"kind": "email", "target": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "alert_route.invalid"
    made = first.post(
        api(acme, "alert-routes/"),
        {"kind": "webhook", "target": f"{base}/hook/secret-path"},
        format="json",
    )
    assert made.status_code == 201, made.content
    route_id = made.json()["id"]
    assert made.json()["target"] == base and made.json()["status"] == "proposed"
    own = first.post(
        api(acme, f"alert-routes/{route_id}/approve/"), {"otp": totp_token(admin)}, format="json"
    )
    assert own.status_code == 403 and own.json()["code"] == "sod.approver_is_requester"
    approved = second.post(
        api(acme, f"alert-routes/{route_id}/approve/"), {"otp": totp_token(admin2)}, format="json"
    )
    assert approved.status_code == 200, approved.content
    secret = approved.json()["secret"]
    assert secret == AlertRoute.objects.get(pk=route_id).secret
    listed = first.get(api(acme, "alert-routes/")).json()
    assert [row["status"] for row in listed["results"]] == ["active"]
    assert secret not in json.dumps(listed) and "secret-path" not in json.dumps(listed)


def test_an_api_key_cannot_change_routes(acme):
    client = key_client(acme)
    response = client.post(
        api(acme, "alert-routes/"), {"kind": "email", "target": "x@acme.test"}, format="json"
    )
    assert response.status_code == 403
    assert not AlertRoute.objects.filter(tenant=acme).exists()

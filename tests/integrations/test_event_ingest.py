"""Events in: validated per type, deduplicated, authorised, audited."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from integrations.models import IngestedEvent
from integrations.selectors import ingested_event_list
from integrations.services import event_ingest
from tenants.choices import Role, Scope
from tenants.exceptions import InvalidInput, PolicyDenied

from ..factories import make_account, staff
from .hooks import key_principal

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer(acme):
    return staff(Role.SECURITY_OFFICER, tenant=acme)


@pytest.fixture
def account(acme):
    return make_account(acme)


def ingest(actor, tenant, account, **overrides):
    arguments = {
        "event_type": "push_denied_burst",
        "account_external_id": account.external_id,
        "occurred_at": timezone.now() - timedelta(minutes=3),
        "source": "entra",
        "external_id": "",
        "data": {"count": 12, "window_seconds": 300},
    }
    return event_ingest(actor=actor, tenant=tenant, **{**arguments, **overrides})


def ingested_audit(tenant):
    return list(AuditEvent.objects.filter(tenant=tenant, action="event.ingested"))


def test_security_officer_ingests_an_event_and_it_is_audited(acme, officer, account):
    event, created = ingest(officer, acme, account, external_id="evt-1")
    assert created is True
    stored = IngestedEvent.objects.for_tenant(acme).get(pk=event.pk)
    assert stored.account == account and stored.received_by == officer
    assert stored.data == {"count": 12, "window_seconds": 300}
    assert (stored.source, stored.external_id) == ("entra", "evt-1")
    [audit] = ingested_audit(acme)
    assert audit.target_id == str(event.pk) and audit.actor_id == str(officer.pk)
    assert audit.data["event_type"] == "push_denied_burst"
    assert audit.data["account"] == account.external_id


@pytest.mark.parametrize(
    ("event_type", "data", "bad_fields"),
    [
        ("push_denied_burst", {"count": 0, "window_seconds": 60}, {"data.count"}),
        ("push_denied_burst", {"count": "12", "window_seconds": 60}, {"data.count"}),
        ("push_denied_burst", {"count": True, "window_seconds": 60}, {"data.count"}),
        ("push_denied_burst", {"count": 3}, {"data.window_seconds"}),
        ("push_denied_burst", {}, {"data.count", "data.window_seconds"}),
        ("mfa_device_added", {"device_id": "d-1"}, {"data.device_type"}),
        ("mfa_device_added", {"device_type": "   "}, {"data.device_type"}),
        ("mfa_device_added", {"device_type": "fido2", "colour": "red"}, {"data.colour"}),
        ("mailbox_rule_created", {"rule_name": "x", "forwards_to": "nope"}, {"data.forwards_to"}),
        ("mailbox_rule_created", {"forwards_to": "a@b.example"}, {"data.rule_name"}),
        ("sim_change", {"phone_last4": "12a4"}, {"data.phone_last4"}),
        ("sim_change", {"phone_last4": 1234}, {"data.phone_last4"}),
        ("admin_role_granted", {"role": "x" * 201}, {"data.role"}),
        ("admin_role_granted", {}, {"data.role"}),
        ("sign_in_new_asn", {"asn": "AS13335"}, {"data.asn"}),
        ("sign_in_new_asn", {"asn": 13335, "ip": "999.1.1.1"}, {"data.ip"}),
        ("sign_in_new_asn", {"asn": 13335, "country": "gbr"}, {"data.country"}),
    ],
)
def test_bad_or_missing_fields_are_named(acme, officer, account, event_type, data, bad_fields):
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, account, event_type=event_type, data=data)
    assert refused.value.code == "event.data_invalid"
    assert set(refused.value.field_errors) == bad_fields
    assert not IngestedEvent.objects.for_tenant(acme).exists()
    assert ingested_audit(acme) == []


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("mfa_device_added", {"device_type": "fido2"}),
        ("mfa_device_added", {"device_type": "totp", "device_id": "dev-9"}),
        ("mailbox_rule_created", {"rule_name": "hide", "forwards_to": "x@evil.example"}),
        ("push_denied_burst", {"count": 1, "window_seconds": 1}),
        ("sim_change", {}),
        ("sim_change", {"phone_last4": "0042"}),
        ("admin_role_granted", {"role": "Global Administrator"}),
        ("sign_in_new_asn", {"asn": 13335, "country": "GB", "ip": "2001:db8::1"}),
    ],
)
def test_every_event_type_accepts_valid_data(acme, officer, account, event_type, data):
    event, created = ingest(officer, acme, account, event_type=event_type, data=data)
    assert created and event.event_type == event_type and event.data == data


def test_unknown_event_type_is_refused(acme, officer, account):
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, account, event_type="printer_on_fire", data={})
    assert refused.value.code == "event.type_unknown"
    assert set(refused.value.field_errors) == {"event_type"}


def test_data_must_be_an_object(acme, officer, account):
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, account, data=["count", 3])
    assert set(refused.value.field_errors) == {"data"}


def test_unknown_account_is_refused(acme, officer):
    with pytest.raises(InvalidInput) as refused:
        event_ingest(
            actor=officer,
            tenant=acme,
            event_type="sim_change",
            account_external_id="nobody",
            occurred_at=timezone.now(),
            data={},
        )
    assert refused.value.code == "event.account_unknown"
    assert set(refused.value.field_errors) == {"account_external_id"}


def test_another_tenants_account_is_unknown_here(acme, globex, officer):
    theirs = make_account(globex)
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, theirs)
    assert refused.value.code == "event.account_unknown"


def test_future_occurred_at_beyond_five_minutes_is_refused(acme, officer, account):
    ingest(officer, acme, account, occurred_at=timezone.now() + timedelta(minutes=4))
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, account, occurred_at=timezone.now() + timedelta(minutes=6))
    assert refused.value.code == "event.occurred_in_future"
    assert set(refused.value.field_errors) == {"occurred_at"}


def test_naive_occurred_at_is_refused(acme, officer, account):
    with pytest.raises(InvalidInput) as refused:
        ingest(officer, acme, account, occurred_at=timezone.now().replace(tzinfo=None))
    assert refused.value.code == "event.occurred_at_invalid"


def test_a_repeat_of_source_and_external_id_returns_the_first_event(acme, officer, account):
    first, created = ingest(officer, acme, account, external_id="evt-7")
    again, created_again = ingest(
        officer, acme, account, external_id="evt-7", data={"count": 99, "window_seconds": 9}
    )
    assert created and not created_again
    assert again.pk == first.pk and again.data == {"count": 12, "window_seconds": 300}
    assert IngestedEvent.objects.for_tenant(acme).count() == 1
    assert len(ingested_audit(acme)) == 1


def test_dedupe_is_per_source_and_tenant_and_only_with_an_external_id(
    acme, globex, officer, account
):
    ingest(officer, acme, account, external_id="evt-1", source="entra")
    _, other_source = ingest(officer, acme, account, external_id="evt-1", source="okta")
    _, no_id_1 = ingest(officer, acme, account)
    _, no_id_2 = ingest(officer, acme, account)
    globex_officer = staff(Role.SECURITY_OFFICER, tenant=globex)
    _, other_tenant = ingest(
        globex_officer, globex, make_account(globex), external_id="evt-1", source="entra"
    )
    assert other_source and no_id_1 and no_id_2 and other_tenant
    assert IngestedEvent.objects.for_tenant(acme).count() == 4


def test_agent_cannot_ingest_events(acme, account):
    with pytest.raises(PolicyDenied) as refused:
        ingest(staff(Role.AGENT, tenant=acme), acme, account)
    assert refused.value.code == "role.required"
    assert not IngestedEvent.objects.for_tenant(acme).exists()


def test_tenant_admin_may_ingest_events(acme, account):
    _, created = ingest(staff(Role.TENANT_ADMIN, tenant=acme), acme, account)
    assert created


def test_key_without_events_scope_is_refused(acme, account):
    principal = key_principal(acme, [Scope.CASES_READ, Scope.WEBHOOKS_MANAGE])
    with pytest.raises(PolicyDenied) as refused:
        ingest(principal, acme, account)
    assert refused.value.code == "auth.scope_missing"


def test_key_with_events_scope_ingests_as_an_integration(acme, account):
    principal = key_principal(acme, [Scope.EVENTS_INGEST])
    event, created = ingest(principal, acme, account, external_id="k-1")
    assert created and event.received_by == principal
    [audit] = ingested_audit(acme)
    assert audit.actor_type == "integration"


def test_key_cannot_ingest_into_another_tenant(acme, globex):
    principal = key_principal(globex, [Scope.EVENTS_INGEST])
    with pytest.raises(PolicyDenied) as refused:
        ingest(principal, acme, make_account(acme))
    assert refused.value.code == "tenant.no_access"


def test_event_list_is_the_tenants_newest_first(
    acme, globex, officer, account, django_assert_num_queries
):
    now = timezone.now()
    old, _ = ingest(officer, acme, account, occurred_at=now - timedelta(hours=2))
    new, _ = ingest(officer, acme, account, occurred_at=now - timedelta(minutes=1))
    globex_officer = staff(Role.SECURITY_OFFICER, tenant=globex)
    ingest(globex_officer, globex, make_account(globex))
    with django_assert_num_queries(1):  # accounts come with the events
        listed = list(ingested_event_list(tenant=acme))
        assert [e.account.external_id for e in listed] == [account.external_id] * 2
    assert listed == [new, old]

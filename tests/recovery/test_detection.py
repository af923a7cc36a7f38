"""Detection rules at case open (issue 16 parts 1-2; R-52, R-55 d/e, R-56): each rule fires on
its pattern and stays silent on the nearest innocent one, links the cases by correlation id,
and caller identifiers are kept only as keyed hashes and masked hints. Real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from integrations.services import event_ingest
from recovery.cases.models import CaseExecution, RecoveryCase
from recovery.cases.services import case_cancel, case_open
from recovery.cases.services.base import alert_raise
from recovery.detection.alerts import alert_acknowledge, alert_resolve
from recovery.detection.identifiers import caller_value
from recovery.detection.models import Alert, CallerIdentifier, ReviewOpened, WatchedCaller
from recovery.detection.rules import RULES, findings_at_open
from recovery.detection.services import caller_flag_suspicious
from recovery.models import ProtectedAccount
from recovery.policy.selectors import policy_active
from tenants.choices import Role
from tenants.exceptions import DomainError

from ..api.conftest import api, key_client
from ..conftest import signed_in_client
from ..factories import execute, make_account, notices_sent, staff
from .casework import decide, submitted
from .execution.helpers import owner_email, ready_case

pytestmark = pytest.mark.django_db

NUMBER = "+1 (555) 010-4567"


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


def opened(agent, account: ProtectedAccount, **caller: str) -> RecoveryCase:
    return case_open(
        actor=agent, account=account, case_type="password_reset", channel="phone", caller=caller
    )


def alerts(case: RecoveryCase) -> dict[str, dict]:
    """The case's alerts by the rule that raised them."""
    events = AuditEvent.objects.filter(
        tenant=case.tenant, action="alert.raised", target_id=str(case.pk)
    )
    return {event.data["rule"]: event.data for event in events if "rule" in event.data}


def aged(case: RecoveryCase, **ago: timedelta) -> None:
    """Move the case's times into the past (as if opened or ended that long ago)."""
    now = timezone.now()
    RecoveryCase.objects.filter(pk=case.pk).update(**{name: now - d for name, d in ago.items()})


#


def test_a_second_case_on_the_account_fires_and_is_linked(acme, agent):
    account = make_account(acme)
    first = opened(agent, account)
    second = opened(staff(Role.AGENT, tenant=acme), account)  # another agent
    assert alerts(first) == {}
    alert = alerts(second)["repeat_case"]
    assert alert["linked_cases"] == [first.pk] and alert["requirement"] == "R-52"
    assert second.correlation_id == first.correlation_id
    assert (second.route, second.repeat_attempt) == ("security", True)


def test_cases_on_two_accounts_are_not_linked(acme, agent):
    first = opened(agent, make_account(acme))
    second = opened(agent, make_account(acme))
    assert alerts(second) == {}
    assert second.correlation_id != first.correlation_id
    assert (second.route, second.repeat_attempt) == ("standard", False)


def test_a_case_soon_after_a_cancelled_one_fires(acme, agent):
    account = make_account(acme)
    cancelled = case_cancel(actor=agent, case=opened(agent, account), reason="caller hung up")
    aged(cancelled, created_at=timedelta(days=2), ended_at=timedelta(days=2))
    case = opened(agent, account)
    assert set(alerts(case)) == {"after_denial"}
    assert alerts(case)["after_denial"]["facts"]["ended_cases"] == [
        {"case": cancelled.pk, "status": "cancelled"}
    ]


def test_a_case_long_after_a_cancelled_one_does_not(acme, agent):
    account = make_account(acme)
    cancelled = case_cancel(actor=agent, case=opened(agent, account), reason="caller hung up")
    aged(cancelled, created_at=timedelta(days=4), ended_at=timedelta(days=4))
    assert alerts(opened(agent, account)) == {}


# R-55 (e)


def ingest(acme, account, event_type: str, ago: timedelta, data: dict) -> None:
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    event_ingest(
        actor=officer,
        tenant=acme,
        event_type=event_type,
        account_external_id=account.external_id,
        occurred_at=timezone.now() - ago,
        source="entra",
        external_id="",
        data=data,
    )


BURST = {"count": 14, "window_seconds": 300}


def test_a_push_denial_burst_before_the_call_makes_it_t2_in_the_security_queue(acme, agent):
    account = make_account(acme)
    ingest(acme, account, "push_denied_burst", timedelta(hours=2), BURST)
    case = opened(agent, account)
    assert (case.tier, case.route) == ("T2", "security")
    assert "detection: push_denial_before_call" in case.tier_reasons
    assert alerts(case)["push_denial_before_call"]["facts"]["source"] == "entra"


def test_an_mfa_not_working_report_before_the_call_makes_it_t2(acme, agent):
    account = make_account(acme)
    ingest(acme, account, "mfa_trouble_reported", timedelta(hours=1), {"channel": "ticket"})
    case = opened(agent, account)
    assert (case.tier, case.route) == ("T2", "security")
    assert alerts(case)["push_denial_before_call"]["facts"]["reported"] == "mfa_trouble_reported"


def test_another_event_before_the_call_does_not(acme, agent):
    account = make_account(acme)
    ingest(acme, account, "sign_in_new_asn", timedelta(hours=1), {"asn": 64500})
    case = opened(agent, account)
    assert (case.tier, case.route, alerts(case)) == ("T0", "standard", {})


def test_a_burst_days_before_does_not(acme, agent):
    account = make_account(acme)
    ingest(acme, account, "push_denied_burst", timedelta(days=2), BURST)
    case = opened(agent, account)
    assert (case.tier, case.route, alerts(case)) == ("T0", "standard", {})


# R-55 (d)


def test_one_number_for_two_subjects_fires(acme, agent):
    first = opened(agent, make_account(acme), number=NUMBER)
    second = opened(staff(Role.AGENT, tenant=acme), make_account(acme), number="+15550104567")
    alert = alerts(second)["caller_reuse"]
    assert alert["facts"]["identifiers"] == [{"kind": "number", "hint": "•••567"}]
    assert alert["facts"]["subjects"] == 2 and alert["linked_cases"] == [first.pk]
    assert second.correlation_id == first.correlation_id and second.route == "security"


def test_one_number_for_one_subjects_two_cases_is_no_caller_reuse(acme, agent):
    account = make_account(acme)
    opened(agent, account, number=NUMBER)
    assert "caller_reuse" not in alerts(opened(agent, account, number=NUMBER))


def test_one_given_name_for_two_subjects_is_no_caller_reuse(acme, agent):
    opened(agent, make_account(acme), name="John Smith")
    assert alerts(opened(agent, make_account(acme), name="john smith")) == {}


def test_a_number_used_days_ago_for_another_subject_does_not_fire(acme, agent):
    earlier = opened(agent, make_account(acme), number=NUMBER)
    CallerIdentifier.objects.filter(case=earlier).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    assert alerts(opened(agent, make_account(acme), number=NUMBER)) == {}


#


def test_a_flagged_caller_raises_the_next_case_one_tier(acme, agent):
    flagged_on = opened(agent, make_account(acme), email="Mallory@Example.com")
    caller_flag_suspicious(actor=agent, case=flagged_on, reason="asked to skip the callback")
    watched = WatchedCaller.objects.get(tenant=acme)
    assert (watched.kind, watched.hint) == ("email", "m•••@example.com")
    CallerIdentifier.objects.filter(case=flagged_on).update(
        created_at=timezone.now() - timedelta(days=2)
    )  # so only the watch-list can fire
    case = opened(agent, make_account(acme), email="mallory@example.com ")
    assert case.tier == "T1" and "detection: watchlisted_caller" in case.tier_reasons
    assert alerts(case)["watchlisted_caller"]["facts"]["watched"][0]["flagged_on_case"] == (
        flagged_on.pk
    )


def test_another_address_is_not_on_the_watch_list(acme, agent):
    flagged_on = opened(agent, make_account(acme), email="mallory@example.com")
    caller_flag_suspicious(actor=agent, case=flagged_on, reason="asked to skip the callback")
    case = opened(agent, make_account(acme), email="alice@example.com")
    assert (case.tier, alerts(case)) == ("T0", {})


def test_flagging_needs_a_reason_and_an_identifier(acme, agent):
    case = opened(agent, make_account(acme))
    with pytest.raises(DomainError) as refused:
        caller_flag_suspicious(actor=agent, case=case, reason="suspicious caller")
    assert refused.value.code == "case.no_caller_identifier"
    case = opened(agent, make_account(acme), name="Bob")
    with pytest.raises(DomainError) as refused:
        caller_flag_suspicious(actor=agent, case=case, reason="odd")
    assert refused.value.code == "case.flag_reason_required"
    assert not WatchedCaller.objects.exists()


# the identifiers themselves


def test_identifiers_are_kept_as_keyed_hashes_and_masked_hints_only(acme, agent):
    case = opened(agent, make_account(acme), number=NUMBER, email="mallory@example.com")
    stored = CallerIdentifier.objects.filter(case=case).values_list("kind", "digest", "hint")
    assert sorted(stored) == sorted(
        [
            ("number", caller_value("number", NUMBER).digest, "•••567"),
            ("email", caller_value("email", "mallory@example.com").digest, "m•••@example.com"),
        ]
    )
    event = AuditEvent.objects.get(tenant=acme, action="case.opened", target_id=str(case.pk))
    assert event.data["caller"] == {"number": "•••567", "email": "m•••@example.com"}
    trail = str(list(AuditEvent.objects.filter(tenant=acme).values_list("data", flat=True)))
    assert "0104567" not in trail and "mallory" not in trail


def test_the_api_takes_caller_identifiers(acme):
    client = key_client(acme)
    account = make_account(acme)
    body = {"account_id": account.pk, "case_type": "password_reset", "caller": {"chat": "@mal"}}
    response = client.post(api(acme, "cases/"), body, format="json")
    assert response.status_code == 201, response.content
    assert CallerIdentifier.objects.get(case_id=response.json()["id"]).hint == "@•••"


# cost


def earlier_history(acme, count: int) -> ProtectedAccount:
    """`count` recent cases on other accounts, each with a caller number, written directly."""
    account, template = (
        make_account(acme),
        opened(staff(Role.AGENT, tenant=acme), make_account(acme), number="+15550000000"),
    )
    cases = RecoveryCase.objects.bulk_create(
        RecoveryCase(
            **{
                f.attname: getattr(template, f.attname)
                for f in RecoveryCase._meta.concrete_fields
                if f.attname not in ("id", "correlation_id")
            }
        )
        for _ in range(count)
    )
    CallerIdentifier.objects.bulk_create(
        CallerIdentifier(tenant=acme, case=case, kind="number", digest=f"{n:064x}", hint="•••000")
        for n, case in enumerate(cases)
    )
    return account


def test_rule_evaluation_costs_the_same_queries_with_10_or_10_000_earlier_cases(acme):
    counts = []
    for history in (10, 10_000):
        account = earlier_history(acme, history)
        req = policy_active(acme).requirements("T0", "password_reset")
        callers = [caller_value("number", "+15550000000"), caller_value("name", "Mallory")]
        with CaptureQueriesContext(connection) as queries:
            findings = findings_at_open(
                account=account, req=req, callers=callers, now=timezone.now()
            )
        counts.append(len(queries))
        assert [f.rule for f in findings] == ["caller_reuse"]
    assert counts[0] == counts[1] == 1  # repeat, push denial, watch-list, caller reuse: one


def test_every_rule_is_documented():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "detection.md").read_text()
    for rule in RULES.values():
        assert f"`{rule.name}`" in guide and rule.requirement in guide


#


def pending_t1(acme, agent) -> RecoveryCase:
    case = submitted(acme, agent, ("S2", "S3"), groups=["finance"])
    assert (case.tier, case.status) == ("T1", "pending_approval")
    return case


def test_a_decision_seconds_after_opening_the_review_page_fires(acme, agent):
    case, supervisor = pending_t1(acme, agent), staff(Role.SUPERVISOR, tenant=acme)
    assert signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{case.pk}/").status_code == 200
    decide(case, supervisor)
    facts = alerts(case)["fast_decision"]["facts"]
    assert facts["seconds"] < 30 and facts["min_review_seconds"] == 30


def test_a_decision_minutes_after_opening_the_review_page_does_not(acme, agent):
    case, supervisor = pending_t1(acme, agent), staff(Role.SUPERVISOR, tenant=acme)
    signed_in_client(supervisor).get(f"/t/{acme.slug}/review/{case.pk}/")
    ReviewOpened.objects.filter(case=case).update(
        first_opened_at=timezone.now() - timedelta(minutes=2)
    )
    decide(case, supervisor)
    assert "fast_decision" not in alerts(case)


def test_a_decision_with_no_opening_recorded_is_not_measured(acme, agent):
    case, supervisor = pending_t1(acme, agent), staff(Role.SUPERVISOR, tenant=acme)
    decide(case, supervisor)  # as over the API
    assert "fast_decision" not in alerts(case)


def test_only_an_approver_who_could_decide_leaves_a_first_opening(acme, agent):
    case = pending_t1(acme, agent)
    officer = staff(Role.AUDITOR, tenant=acme)
    signed_in_client(officer).get(f"/t/{acme.slug}/review/{case.pk}/")
    assert not ReviewOpened.objects.filter(case=case).exists()


# R-55 (c)


def recovered_t1(acme) -> RecoveryCase:
    agent = staff(Role.AGENT, tenant=acme)
    case = ready_case(acme, agent, case_type="password_reset", groups=["finance"])
    owner_email(case)
    notices_sent(acme)  # a T1 case waits for its owner notices
    case = execute(case, agent)
    case.account.refresh_from_db()
    assert case.tier == "T1" and case.account.restricted_until is not None
    return case


def test_a_sign_in_from_a_new_network_inside_the_window_fires(acme):
    case = recovered_t1(acme)
    ingest(acme, case.account, "sign_in_new_asn", timedelta(0), {"asn": 64500})
    alert = alerts(case)["new_network_after_recovery"]
    assert alert["requirement"] == "R-55 (c)" and alert["facts"]["network"] == {"asn": 64500}


def test_a_sign_in_from_a_new_network_after_the_window_does_not(acme):
    case = recovered_t1(acme)
    ProtectedAccount.objects.filter(pk=case.account_id).update(
        restricted_until=timezone.now() - timedelta(hours=1)
    )
    case.account.refresh_from_db()
    ingest(acme, case.account, "sign_in_new_asn", timedelta(0), {"asn": 64500})
    assert "new_network_after_recovery" not in alerts(case)


def test_a_sign_in_through_an_anonymizing_proxy_inside_the_window_fires(acme):
    case = recovered_t1(acme)
    ingest(acme, case.account, "sign_in_anonymized", timedelta(0), {"proxy": "residential_vpn"})
    alert = alerts(case)["new_network_after_recovery"]
    assert alert["facts"]["network"] == {"proxy": "residential_vpn"}
    assert alert["facts"]["event_type"] == "sign_in_anonymized"


# R-55 (a)


def recovered(acme, case_type: str) -> RecoveryCase:
    agent = staff(Role.AGENT, tenant=acme)
    case = ready_case(acme, agent, case_type=case_type, groups=["finance"])
    owner_email(case)
    notices_sent(acme)
    return execute(case, agent)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [("admin_console_access", {"console": "entra"}), ("admin_role_granted", {"role": "GA"})],
)
def test_admin_access_within_a_day_of_an_mfa_reset_fires(acme, event_type, data):
    case = recovered(acme, "mfa_reset")
    ingest(acme, case.account, event_type, timedelta(0), data)
    alert = alerts(case)["admin_access_after_mfa_reset"]
    assert alert["requirement"] == "R-55 (a)" and alert["facts"]["event_type"] == event_type


def test_admin_access_after_a_password_reset_or_a_day_later_does_not(acme):
    password = recovered(acme, "password_reset")
    ingest(acme, password.account, "admin_console_access", timedelta(0), {"console": "entra"})
    assert "admin_access_after_mfa_reset" not in alerts(password)  # not an MFA reset
    mfa = recovered(acme, "mfa_reset")
    CaseExecution.objects.filter(case=mfa).update(executed_at=timezone.now() - timedelta(hours=25))
    ingest(acme, mfa.account, "admin_console_access", timedelta(0), {"console": "entra"})
    assert "admin_access_after_mfa_reset" not in alerts(mfa)  # more than 24 h later


# R-55 (f)


def test_a_federation_change_by_a_recently_recovered_account_fires(acme):
    case = recovered_t1(acme)
    data = {"change": "federation_added", "domain": "acme.test"}
    ingest(acme, case.account, "federation_changed", timedelta(0), data)
    alert = alerts(case)["federation_change_after_recovery"]
    assert alert["requirement"] == "R-55 (f)" and alert["facts"]["details"] == data


def test_a_federation_change_after_the_window_does_not(acme):
    case = recovered_t1(acme)
    ProtectedAccount.objects.filter(pk=case.account_id).update(
        restricted_until=timezone.now() - timedelta(hours=1)
    )
    ingest(acme, case.account, "federation_changed", timedelta(0), {"change": "trust_added"})
    assert "federation_change_after_recovery" not in alerts(case)


# alerts people work


def test_each_alert_is_about_one_case_and_due_within_the_hour(acme, agent):
    account = make_account(acme)
    opened(agent, account)
    second, third = opened(agent, account), opened(agent, account)
    by_case = {
        alert.target_id: alert for alert in Alert.objects.filter(tenant=acme, kind="repeat_case")
    }
    assert set(by_case) == {str(second.pk), str(third.pk)}
    alert = by_case[str(second.pk)]
    assert (alert.status, alert.count) == ("open", 1)
    assert alert.due_at == alert.first_raised_at + timedelta(hours=1)


def test_the_same_rule_again_on_the_same_case_adds_to_its_count(acme, agent):
    case = opened(agent, make_account(acme))
    with transaction.atomic():
        for _ in range(3):
            alert_raise(case, "fast_decision", rule="fast_decision", facts={"seconds": 2})
    alert = Alert.objects.get(tenant=acme, kind="fast_decision")
    assert alert.count == 3 and alert.facts["facts"] == {"seconds": 2}


def test_a_security_officer_acknowledges_then_closes_an_alert_and_a_new_raise_opens_another(
    acme, agent
):
    case = opened(agent, make_account(acme))
    with transaction.atomic():
        alert_raise(case, "fast_decision", rule="fast_decision")
    alert = Alert.objects.get(tenant=acme)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    with pytest.raises(DomainError) as refused:
        alert_acknowledge(actor=agent, tenant=acme, alert_id=alert.pk)
    assert refused.value.code == "alert.security_officer_required"
    alert_acknowledge(actor=officer, tenant=acme, alert_id=alert.pk)
    with pytest.raises(DomainError) as refused:
        alert_resolve(
            actor=officer, tenant=acme, alert_id=alert.pk, outcome="false_positive", reason="no"
        )
    assert refused.value.code == "alert.reason_required"
    closed = alert_resolve(
        actor=officer,
        tenant=acme,
        alert_id=alert.pk,
        outcome="false_positive",
        reason="the approver read the file beforehand",
    )
    assert (closed.status, closed.resolved_by, closed.acknowledged_by) == (
        "false_positive",
        officer,
        officer,
    )
    actions = AuditEvent.objects.filter(tenant=acme, target_id=str(alert.pk)).values_list(
        "action", flat=True
    )
    assert list(actions) == ["alert.acknowledged", "alert.resolved"]
    with transaction.atomic():
        alert_raise(case, "fast_decision", rule="fast_decision")
    assert Alert.objects.filter(tenant=acme, status="open").count() == 1


def test_the_security_queue_shows_alerts_with_their_count_and_overdue(acme, agent):
    case = opened(agent, make_account(acme))
    with transaction.atomic():
        alert_raise(case, "fast_decision", rule="fast_decision")
        alert_raise(case, "fast_decision", rule="fast_decision")
    Alert.objects.filter(tenant=acme).update(due_at=timezone.now() - timedelta(minutes=5))
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    client = signed_in_client(officer)
    page = client.get(f"/t/{acme.slug}/review/security/").content.decode()
    assert 'data-count="2"' in page and "overdue" in page
    alert = Alert.objects.get(tenant=acme)
    response = client.post(f"/t/{acme.slug}/review/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "acknowledged"

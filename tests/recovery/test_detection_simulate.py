"""Simulating the detection rules over past cases (issue 16 part 3): the replay fires where the
rules fired and stays silent on the nearest innocent pattern, overrides move the result, weaker
than a floor is refused, the command and the console job report the same, and nothing is
written. Real PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

import recovery.detection.simulate
import tenants.jobs
from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_cancel, case_open
from recovery.detection.explain import SENTENCES
from recovery.detection.jobs import SIMULATE_KIND
from recovery.detection.models import Alert, CallerIdentifier
from recovery.detection.rules import RULES, RULESET_VERSION
from recovery.detection.services import caller_flag_suspicious
from recovery.detection.simulate import SIMULATED_RULES, detection_simulate
from recovery.models import ProtectedAccount
from recovery.policy.forms import DEFAULT_DAYS
from tenants.choices import Role
from tenants.exceptions import InvalidInput
from tenants.jobs import job_run
from tenants.models import BackgroundJob, JobStatus, Membership
from tenants.services import membership_change_role

from ..conftest import signed_in_client
from ..factories import active_grant, make_account, operator, staff
from .test_detection import BURST, ingest

pytestmark = pytest.mark.django_db

NUMBER = "+1 (555) 010-4567"
DAY = 86_400
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


def opened(agent, account: ProtectedAccount, **caller: str) -> RecoveryCase:
    return case_open(
        actor=agent, account=account, case_type="password_reset", channel="phone", caller=caller
    )


def aged(case: RecoveryCase, **ago: timedelta) -> None:
    """Move the case's times into the past (as if opened or ended that long ago)."""
    now = timezone.now()
    RecoveryCase.objects.filter(pk=case.pk).update(**{name: now - d for name, d in ago.items()})


def rules(tenant, days: int = 7, **overrides: int) -> dict[str, dict]:
    """The simulation's per-rule rows by rule name."""
    report = detection_simulate(tenant=tenant, days=days, overrides=overrides).as_dict()
    return {row["rule"]: row for row in report["rules"]}


def fired(tenant, days: int = 7, **overrides: int) -> dict[str, int]:
    """How many cases each rule would fire on (rules that fire on none left out)."""
    return {
        name: row["would_fire"]
        for name, row in rules(tenant, days, **overrides).items()
        if row["would_fire"]
    }


def recorded(tenant) -> dict[str, int]:
    """How many cases each replayed rule raised its alert on when they opened."""
    events = AuditEvent.objects.filter(tenant=tenant, action="alert.raised")
    counts: dict[str, int] = {}
    for event in events:
        if event.data.get("type") in SIMULATED_RULES:
            counts[event.data["type"]] = counts.get(event.data["type"], 0) + 1
    return counts


# --- the rules as they fired -------------------------------------------------------------------


def test_a_second_case_on_an_account_fires_and_the_first_does_not(acme, agent):
    account = make_account(acme)
    opened(agent, account)
    second = opened(agent, account)

    row = rules(acme)["repeat_case"]

    assert (row["would_fire"], row["raised_then"], row["would_fire_and_raised_then"]) == (1, 1, 1)
    example = [e for e in detection_simulate(tenant=acme, days=7).as_dict()["examples"]]
    assert [(e["case_id"], e["rule"]) for e in example] == [(second.pk, "repeat_case")]
    assert example[0]["facts"] == {"earlier_cases": 1, "window_seconds": DAY}


def test_cases_on_two_accounts_fire_nothing(acme, agent):
    opened(agent, make_account(acme))
    opened(agent, make_account(acme))
    assert fired(acme) == {}


def test_with_no_override_every_alert_raised_at_the_time_is_found_again(acme, agent):
    account = make_account(acme)
    cancelled = case_cancel(actor=agent, case=opened(agent, account), reason="caller hung up")
    opened(agent, account)  # repeat_case and after_denial
    pushed = make_account(acme)
    ingest(acme, pushed, "push_denied_burst", timedelta(hours=2), BURST)
    opened(agent, pushed)  # push_denial_before_call
    flagged_on = opened(agent, make_account(acme), number=NUMBER, email="mal@example.com")
    caller_flag_suspicious(actor=agent, case=flagged_on, reason="asked to skip the callback")
    opened(agent, make_account(acme), email="mal@example.com")  # watch-list and caller reuse
    assert cancelled.status == "cancelled"

    then = recorded(acme)
    assert set(then) == set(SIMULATED_RULES)  # every replayed rule fired at least once
    now = rules(acme)
    for name, count in then.items():
        row = now[name]
        assert (row["would_fire"], row["raised_then"], row["would_fire_and_raised_then"]) == (
            count,
            count,
            count,
        ), name


def test_a_case_is_judged_without_what_came_after_it(acme, agent):
    """The case a caller was flagged on, and the first of two cases on an account, did not
    fire when they opened; a replay must not make them fire on what was recorded later."""
    first = opened(agent, make_account(acme), email="mal@example.com")
    caller_flag_suspicious(actor=agent, case=first, reason="asked to skip the callback")
    account = make_account(acme)
    opened(agent, account)
    opened(agent, account)
    assert fired(acme) == {"repeat_case": 1}


def test_a_burst_reported_only_after_the_case_opened_does_not_count(acme, agent):
    account = make_account(acme)
    case = opened(agent, account)
    aged(case, created_at=timedelta(hours=1))
    ingest(acme, account, "push_denied_burst", timedelta(hours=2), BURST)  # sent just now
    assert fired(acme) == {}


def test_a_cancelled_case_days_before_is_silent_by_default_and_fires_with_a_wider_window(
    acme, agent
):
    account = make_account(acme)
    cancelled = case_cancel(actor=agent, case=opened(agent, account), reason="caller hung up")
    aged(cancelled, created_at=timedelta(days=4), ended_at=timedelta(days=4))
    case = opened(agent, account)

    assert fired(acme) == {}
    wider = rules(acme, repeat_after_denial_window_seconds=5 * DAY)["after_denial"]
    assert (wider["would_fire"], wider["raised_then"]) == (1, 0)
    assert wider["would_fire_not_raised_then"] == 1
    report = detection_simulate(
        tenant=acme, days=7, overrides={"repeat_after_denial_window_seconds": 5 * DAY}
    ).as_dict()
    assert report["overrides"] == {"repeat_after_denial_window_seconds": 5 * DAY}
    assert [(e["case_id"], e["rule"]) for e in report["examples"]] == [(case.pk, "after_denial")]
    assert report["examples"][0]["facts"]["ended_cases"] == [
        {"case": cancelled.pk, "status": "cancelled"}
    ]


def test_a_number_reused_two_days_apart_fires_only_with_a_wider_window(acme, agent):
    earlier = opened(agent, make_account(acme), number=NUMBER)
    aged(earlier, created_at=timedelta(days=2))
    CallerIdentifier.objects.filter(case=earlier).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    opened(agent, make_account(acme), number=NUMBER)
    assert fired(acme) == {}
    assert fired(acme, caller_reuse_window_seconds=3 * DAY) == {"caller_reuse": 1}


def test_the_per_day_counts_follow_the_days_the_cases_opened(acme, agent):
    account = make_account(acme)
    first, second = opened(agent, account), opened(agent, account)
    aged(first, created_at=timedelta(days=2, minutes=1))
    aged(second, created_at=timedelta(days=2))  # both two days ago, in the same order
    report = detection_simulate(tenant=acme, days=3).as_dict()
    days = report["days"]
    row = {r["rule"]: r for r in report["rules"]}["repeat_case"]
    assert len(days) == len(row["per_day"]) == len(row["raised_per_day"]) == 4
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    expected = [1 if d == day else 0 for d in days]
    assert row["per_day"] == row["raised_per_day"] == expected


def test_cases_outside_the_window_and_other_tenants_cases_are_not_replayed(acme, globex, agent):
    account = make_account(acme)
    old = opened(agent, account)
    aged(old, created_at=timedelta(days=10))
    other = make_account(globex)
    outsider = staff(Role.AGENT, tenant=globex)
    opened(outsider, other)
    opened(outsider, other)
    report = detection_simulate(tenant=acme, days=7).as_dict()
    assert report["cases_replayed"] == 0 and fired(acme) == {}


# --- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "code", "floor"),
    [
        ("repeat_case_window_seconds", 3600, "detection.threshold_below_floor", "R-52"),
        ("push_denial_lookback_seconds", DAY - 1, "detection.threshold_below_floor", "R-55"),
        ("caller_reuse_subjects", 3, "detection.threshold_below_floor", "R-55"),
        ("min_review_seconds", 60, "detection.threshold_unknown", ""),
        ("repeat_case_window_seconds", 0, "detection.threshold_invalid", ""),
    ],
)
def test_a_threshold_weaker_than_its_floor_or_unknown_is_refused(acme, name, value, code, floor):
    with pytest.raises(InvalidInput) as refused:
        detection_simulate(tenant=acme, days=7, overrides={name: value})
    assert refused.value.code == code
    assert name in refused.value.message and floor in refused.value.message


def test_a_threshold_at_its_floor_is_accepted(acme):
    report = detection_simulate(
        tenant=acme, days=7, overrides={"repeat_case_window_seconds": DAY}
    ).as_dict()
    assert report["overrides"] == {"repeat_case_window_seconds": DAY}


@pytest.mark.parametrize("days", [0, -1])
def test_the_window_must_be_positive(acme, days):
    with pytest.raises(InvalidInput) as refused:
        detection_simulate(tenant=acme, days=days)
    assert refused.value.code == "simulate.since_invalid"


# --- nothing written, bounded cost -------------------------------------------------------------


def test_a_simulation_writes_nothing(acme, agent):
    account = make_account(acme)
    opened(agent, account)
    opened(agent, account, number=NUMBER)
    before = (AuditEvent.objects.count(), Alert.objects.count(), RecoveryCase.objects.count())
    detection_simulate(tenant=acme, days=7, overrides={"repeat_case_window_seconds": 2 * DAY})
    after = (AuditEvent.objects.count(), Alert.objects.count(), RecoveryCase.objects.count())
    assert after == before


def many_cases(tenant, count: int) -> None:
    """`count` cases on a few accounts, each with a caller number: every rule's reads run."""
    agent = staff(Role.AGENT, tenant=tenant)
    accounts = [make_account(tenant) for _ in range(3)]
    for n in range(count):
        opened(agent, accounts[n % 3], number=f"+1555000{n % 5:04d}")


@pytest.mark.parametrize("count", [10, 100])
def test_the_query_count_does_not_grow_with_the_cases(acme, count, django_assert_num_queries):
    many_cases(acme, count)
    # case ids; then for the chunk: cases, their identifiers, earlier cases, bursts, watch-list,
    # identifiers seen, alerts raised (platform default policy: no version read)
    with django_assert_num_queries(8):
        report = detection_simulate(tenant=acme, days=7).as_dict()
    assert report["cases_replayed"] == count
    repeat = {r["rule"]: r for r in report["rules"]}["repeat_case"]
    assert repeat["would_fire"] == repeat["raised_then"] == count - 3


# --- manage.py detect_simulate -----------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("detect_simulate", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_json_is_one_object_with_the_rules(acme, agent):
    account = make_account(acme)
    opened(agent, account)
    second = opened(agent, account)

    result = json.loads(
        run("--tenant", acme.slug, "--since", "7", "--set", "caller_reuse_subjects=2", "--json")
    )

    assert result["cases_replayed"] == 2 and result["overrides"] == {"caller_reuse_subjects": 2}
    assert [row["rule"] for row in result["rules"]] == list(SIMULATED_RULES)
    repeat = result["rules"][0]
    assert (repeat["would_fire"], repeat["raised_then"], sum(repeat["per_day"])) == (1, 1, 1)
    assert result["examples"][0]["case_id"] == second.pk


def test_command_text_has_a_line_per_rule_and_the_examples(acme, agent):
    account = make_account(acme)
    opened(agent, account)
    second = opened(agent, account)
    out = run("--tenant", acme.slug, "--since", "7")
    assert "repeat_case (R-52): would fire on 1, raised then on 1" in out
    assert "caller_reuse (R-55 (d)): would fire on 0, raised then on 0" in out
    assert f"case {second.pk} · {account.external_id} · opened " in out
    assert "repeat_case: would fire, raised then — earlier_cases: 1; window: 1 day" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "repeat_case_window_seconds=3600"],
        ["--set", "no_such_threshold=5"],
    ],
)
def test_command_refuses_a_threshold_with_exit_code_1(acme, args):
    with pytest.raises(CommandError) as refused:
        run("--tenant", acme.slug, "--since", "7", *args)
    assert refused.value.returncode == 1
    assert "detection.threshold_" in str(refused.value)


@pytest.mark.parametrize(
    "args",
    [
        ["--tenant", "no-such-tenant", "--since", "7"],
        ["--since", "0"],
        ["--since", "-3"],
        ["--since", "7", "--set", "repeat_case_window_seconds"],
        ["--since", "7", "--set", "repeat_case_window_seconds=a day"],
    ],
)
def test_command_refuses_bad_arguments_with_exit_code_2(acme, args):
    if "--tenant" not in args:
        args = ["--tenant", acme.slug, *args]
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert refused.value.returncode == 2


# --- the console: a background job, its page, the alerts in words -----------------------------


def simulate_url(tenant) -> str:
    return f"/t/{tenant.slug}/detection/simulate/"


def started(client, tenant, **form) -> BackgroundJob:
    response = client.post(simulate_url(tenant), {"days": 7, **form}, **HTMX)
    assert response.status_code == 200, response.content
    return BackgroundJob.objects.filter(tenant=tenant).latest("pk")


@pytest.fixture
def repeated(acme, agent) -> RecoveryCase:
    """Three cases on one account, the two later ones repeats; returns the last."""
    account = make_account(acme)
    opened(agent, account)
    opened(agent, account)
    return opened(agent, account)


@pytest.mark.parametrize("role", [Role.SECURITY_OFFICER, Role.TENANT_ADMIN, Role.AUDITOR])
def test_the_tenants_own_readers_get_the_form(acme, role):
    page = signed_in_client(staff(role, tenant=acme)).get(simulate_url(acme))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="repeat_case_window_seconds"' in html and 'name="days"' in html
    assert "<code>repeat_case</code> (R-52)" in html


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
def test_an_agent_or_supervisor_is_refused_and_no_job_starts(acme, role):
    client = signed_in_client(staff(role, tenant=acme))
    assert client.get(simulate_url(acme)).status_code == 403
    assert client.post(simulate_url(acme), {"days": 7}, **HTMX).status_code == 403
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


def test_provider_staff_through_a_grant_are_refused(acme, deskco):
    active_grant(deskco, acme, roles=(Role.SECURITY_OFFICER,))
    msp = staff(Role.SECURITY_OFFICER, provider=deskco)
    assert signed_in_client(msp).get(simulate_url(acme)).status_code == 403


def test_the_job_runs_in_chunks_reports_progress_and_stores_the_report(acme, repeated, monkeypatch):
    monkeypatch.setattr(recovery.detection.simulate, "CHUNK_SIZE", 2)
    reports: list[tuple[int, int]] = []
    update = tenants.jobs._update

    def spy(job_id, tenant_id, **fields):
        if "done" in fields:
            reports.append((fields["done"], fields["total"]))
        return update(job_id, tenant_id, **fields)

    monkeypatch.setattr(tenants.jobs, "_update", spy)
    officer = staff(Role.SECURITY_OFFICER, tenant=acme)
    job = started(signed_in_client(officer), acme, repeat_case_window_seconds=2 * DAY)
    assert (job.kind, job.created_by) == (SIMULATE_KIND, officer)
    assert job.params == {"days": 7, "overrides": {"repeat_case_window_seconds": 2 * DAY}}

    job_run(job.pk, acme.pk)

    job.refresh_from_db()
    assert reports == [(0, 3), (2, 3), (3, 3)]
    assert (job.status, job.done, job.total, job.error) == (JobStatus.DONE, 3, 3, "")
    expected = detection_simulate(
        tenant=acme, days=7, overrides={"repeat_case_window_seconds": 2 * DAY}
    ).as_dict()
    assert job.result["rules"] == expected["rules"]
    assert job.result["examples"] == expected["examples"]
    assert job.result["overrides"] == {"repeat_case_window_seconds": 2 * DAY}
    repeat = {row["rule"]: row for row in job.result["rules"]}["repeat_case"]
    assert (repeat["would_fire"], repeat["raised_then"]) == (2, 2)


def test_the_finished_job_shows_a_table_a_chart_per_rule_and_the_facts_in_words(acme, repeated):
    client = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    job = started(client, acme)
    job_run(job.pk, acme.pk)
    html = client.get(f"/t/{acme.slug}/jobs/{job.pk}/", **HTMX).content.decode()
    assert "hx-trigger" not in html  # finished: polling stops
    assert "<dt>Cases replayed</dt><dd>3</dd>" in html
    row = re.search(r'<tr data-rule="repeat_case">.*?</tr>', html, re.S).group(0)
    assert re.findall(r"<td>(\d+)</td>", row) == ["2", "2", "2", "0", "0"]
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == len(SIMULATED_RULES)
    assert all('role="img"' in svg and "<title" in svg and "<desc" in svg for svg in svgs)
    # today's pair of bars for repeat_case: both full height (the busiest day of any rule)
    assert svgs[0].count('height="40.0"') == 2 and 'class="bar-then"' in svgs[0]
    assert "<rect" not in svgs[1]  # after_denial fired on nothing
    today = timezone.now().date().isoformat()
    assert f"<tr><td>{today}</td><td><code>repeat_case</code></td><td>2</td><td>2</td></tr>" in html
    assert "style=" not in html and "<script" not in html  # holds under the strict CSP
    assert f'href="/t/{acme.slug}/cases/{repeated.pk}/">#{repeated.pk}</a>' in html
    assert "2 earlier cases on this account in the 1 day before it opened." in html
    assert "{&#x27;earlier_cases&#x27;" not in html and "earlier_cases" not in html


def test_a_threshold_below_its_floor_is_shown_on_its_field_and_no_job_starts(acme):
    client = signed_in_client(staff(Role.SECURITY_OFFICER, tenant=acme))
    response = client.post(
        simulate_url(acme), {"days": 7, "repeat_case_window_seconds": 3600}, **HTMX
    )
    assert response.status_code == 200 and response["HX-Retarget"] == "#simulate-form"
    html = response.content.decode()
    assert "must be at least 86400" in html and "(detection.threshold_below_floor)" in html
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


def test_without_javascript_the_form_redirects_to_the_job_page(acme):
    client = signed_in_client(staff(Role.SECURITY_OFFICER, tenant=acme))
    response = client.post(simulate_url(acme), {"days": ""})
    job = BackgroundJob.objects.get(tenant=acme)
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/jobs/{job.pk}/"
    assert job.params == {"days": DEFAULT_DAYS, "overrides": {}}


def test_the_job_fails_if_its_author_may_no_longer_simulate(acme, repeated):
    auditor = staff(Role.AUDITOR, tenant=acme)
    job = started(signed_in_client(auditor), acme)
    membership = Membership.objects.get(user=auditor, tenant=acme)
    membership_change_role(actor=operator(), membership=membership, role=Role.AGENT)

    job_run(job.pk, acme.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.result == {}
    assert job.error.endswith("(detection.simulate_forbidden)")


def test_the_security_queue_explains_each_alert_in_words(acme, agent):
    account = make_account(acme)
    first = opened(agent, account)
    opened(agent, account)
    officer = signed_in_client(staff(Role.SECURITY_OFFICER, tenant=acme))
    html = officer.get(f"/t/{acme.slug}/review/security/").content.decode()
    section = re.search(r'<section id="section-alerts".*?</section>', html, re.S).group(0)
    assert f"Rule <code>repeat_case</code> (R-52) · rule set {RULESET_VERSION}" in section
    assert str(RULES["repeat_case"].description) in section
    assert "1 earlier case on this account in the 1 day before it opened." in section
    assert f'href="/t/{acme.slug}/review/{first.pk}/">case {first.pk}</a>' in section
    assert "window_seconds" not in section and "correlation_id" not in section
    assert f'href="{simulate_url(acme)}"' in section


def test_every_rule_is_explained_in_words():
    assert set(SENTENCES) == set(RULES)

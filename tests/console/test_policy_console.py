"""Client admin console: policy versions, editor with inline validation, diff, simulation as a
background job, and activation by a second admin with a fresh authenticator code."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import recovery.policy.jobs
import tenants.jobs
from audit.models import AuditEvent
from recovery.api.serializers import PolicySimulateInput, PolicyTextInput
from recovery.policy.choices import PolicyStatus
from recovery.policy.forms import DEFAULT_DAYS, MAX_DAYS, MAX_SOURCE_CHARS, MIN_DAYS
from recovery.policy.jobs import SIMULATE_KIND
from recovery.policy.models import PolicyVersion
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from recovery.policy.simulate import policy_simulate
from recovery.policy.validation import source_sha256
from tenants.choices import Role
from tenants.jobs import job_run
from tenants.models import BackgroundJob, JobStatus, Membership
from tenants.services import membership_change_role

from ..conftest import signed_in_client
from ..factories import operator, staff, step_up, totp_token
from ..pages import page
from ..recovery.casework import approved, submitted

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
T1_FLOOR = "    min_signal_classes: 2\n    s4_alone_suffices: true\n    approvals_required: 1\n"
T1_BELOW_FLOOR = DEFAULT.replace(T1_FLOOR, T1_FLOOR.replace("classes: 2", "classes: 1"), 1)
T0_NEEDS_TWO = DEFAULT.replace("  min_signal_classes: 1\n", "  min_signal_classes: 2\n", 1)
BELOW_FLOOR_LINE = T1_BELOW_FLOOR.splitlines().index("    min_signal_classes: 1") + 1
READERS = [Role.TENANT_ADMIN, Role.SECURITY_OFFICER, Role.AUDITOR]
NOT_READERS = [Role.AGENT, Role.SUPERVISOR]
HTMX = {"HTTP_HX_REQUEST": "true"}
MINUS = "\N{MINUS SIGN}"


def url(tenant, rest: str = "") -> str:
    return f"/t/{tenant.slug}/policy/{rest}"


def body(response) -> str:
    return response.content.decode()


def line_item(html: str, number: int) -> str:
    """The `<li>` of one line in a numbered source listing."""
    match = re.search(rf'<li id="line-{number}"[^>]*>(.*?)</li>', html, re.S)
    assert match, f"line {number} is not in the listing"
    return match.group(0)


@pytest.fixture
def admin(acme):
    return staff(Role.TENANT_ADMIN, tenant=acme)


@pytest.fixture
def second_admin(acme):
    return staff(Role.TENANT_ADMIN, tenant=acme)


def drafted(tenant, author, text: str = T0_NEEDS_TWO) -> PolicyVersion:
    return policy_draft_create(actor=author, tenant=tenant, text=text)


def activated(tenant, author, approver, text: str = DEFAULT) -> PolicyVersion:
    version = policy_activation_request(actor=author, version=drafted(tenant, author, text))
    return policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))


# --- who may use which page -------------------------------------------------------------------


@pytest.mark.parametrize("role", NOT_READERS)
@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("get", ""),
        ("get", "edit/"),
        ("get", "diff/"),
        ("get", "version"),
        ("post", "validate/"),
        ("post", "simulate/"),
    ],
)
def test_roles_without_policy_read_get_403(acme, admin, role, method, rest):
    version = drafted(acme, admin)
    rest = f"versions/{version.pk}/" if rest == "version" else rest
    client = signed_in_client(staff(role, tenant=acme))
    response = getattr(client, method)(url(acme, rest), {"text": DEFAULT, "days": 7})
    assert response.status_code == 403
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


@pytest.mark.parametrize("role", [Role.SECURITY_OFFICER, Role.AUDITOR])
def test_readers_may_read_validate_and_simulate_but_not_write(acme, admin, role):
    version = drafted(acme, admin)
    client = signed_in_client(staff(role, tenant=acme))
    assert T0_NEEDS_TWO.splitlines()[0] in body(client.get(url(acme, f"versions/{version.pk}/")))
    editor = body(client.get(url(acme, "edit/")))
    assert "Save as draft" not in editor and "Validate" in editor
    assert client.post(url(acme, "validate/"), {"text": DEFAULT}).status_code == 200
    assert client.post(url(acme, "simulate/"), {"text": DEFAULT}, **HTMX).status_code == 200

    assert client.post(url(acme, "drafts/"), {"text": DEFAULT}).status_code == 403
    assert client.post(url(acme, f"versions/{version.pk}/request/")).status_code == 403
    assert PolicyVersion.objects.filter(tenant=acme).count() == 1
    assert PolicyVersion.objects.get(pk=version.pk).status == PolicyStatus.DRAFT


def test_version_page_offers_activation_to_admins_only(acme, admin):
    version = drafted(acme, admin)
    as_admin = body(signed_in_client(admin).get(url(acme, f"versions/{version.pk}/")))
    as_auditor = body(
        signed_in_client(staff(Role.AUDITOR, tenant=acme)).get(url(acme, f"versions/{version.pk}/"))
    )
    assert "Request activation" in as_admin
    assert "Request activation" not in as_auditor


def test_foreign_tenant_policy_page_is_a_404_like_a_missing_tenant(acme, globex, admin):
    client = signed_in_client(admin)
    foreign, missing = client.get(url(globex)), client.get("/t/no-such-tenant/policy/")
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("get", "versions/{pk}/"),
        ("post", "versions/{pk}/request/"),
        ("post", "versions/{pk}/approve/"),
        ("get", "diff/?old={pk}"),
        ("get", "diff/?new={pk}"),
        ("get", "edit/?from={pk}"),
    ],
)
def test_another_tenants_version_is_a_404_like_a_missing_one(acme, globex, admin, method, rest):
    theirs = drafted(globex, staff(Role.TENANT_ADMIN, tenant=globex))
    client = signed_in_client(admin)
    data = {"token": "123456"} if method == "post" else None
    send = getattr(client, method)
    foreign = send(url(acme, rest.format(pk=theirs.pk)), data)
    missing = send(url(acme, rest.format(pk=theirs.pk + 10_000)), data)
    assert foreign.status_code == missing.status_code == 404
    assert page(foreign) == page(missing)
    assert PolicyVersion.objects.get(pk=theirs.pk).status == PolicyStatus.DRAFT
    denied = AuditEvent.objects.get(tenant=globex, action="tenant.cross_access_denied")
    assert denied.data["requested_in"] == acme.slug


# --- policy page: active version and the list of versions -------------------------------------


def test_policy_page_shows_the_active_version_and_every_version(acme, admin, second_admin):
    active = activated(acme, admin, second_admin)
    draft = drafted(acme, admin)
    html = body(signed_in_client(admin).get(url(acme)))
    assert active.sha256 in html
    assert second_admin.username in html  # who approved it
    assert f'href="/t/{acme.slug}/policy/versions/{active.pk}/"' in html
    assert f'href="/t/{acme.slug}/policy/versions/{draft.pk}/"' in html
    assert "Active" in html and "Draft" in html


def test_policy_page_without_a_version_names_the_platform_default(acme, admin):
    html = body(signed_in_client(admin).get(url(acme)))
    assert "platform default policy" in html
    assert source_sha256(DEFAULT) in html
    assert "No versions yet" in html


@pytest.mark.parametrize("versions", [10, 50])
def test_policy_page_query_count_does_not_grow_with_versions(
    acme, admin, second_admin, django_assert_num_queries, versions
):
    activated(acme, admin, second_admin)
    for _ in range(versions - 1):
        drafted(acme, admin)
    client = signed_in_client(admin)
    # session, user, OTP device, tenant, access, scope (savepoint, set_config, release),
    # then the versions: their count, one page with authors and approvers, the active one
    with django_assert_num_queries(11):
        response = client.get(url(acme))
    assert response.status_code == 200


def test_nav_shows_policy_grants_and_accounts_to_tenant_admins(acme, admin):
    html = body(signed_in_client(admin).get(url(acme)))
    assert f'<a href="/t/{acme.slug}/policy/" aria-current="page">Policy</a>' in html
    assert f'href="/t/{acme.slug}/grants/"' in html
    assert f'<a href="/t/{acme.slug}/">Accounts</a>' in html
    agent_home = body(signed_in_client(staff(Role.AGENT, tenant=acme)).get(f"/t/{acme.slug}/"))
    assert f'href="/t/{acme.slug}/policy/"' not in agent_home
    assert f'href="/t/{acme.slug}/grants/"' not in agent_home


# --- editor: validation at the right line, save as draft --------------------------------------


def test_editor_starts_from_the_active_version_or_a_chosen_one(acme, admin, second_admin):
    client = signed_in_client(admin)
    assert "Started from the platform default policy." in body(client.get(url(acme, "edit/")))
    active = activated(acme, admin, second_admin, T0_NEEDS_TWO)
    older = drafted(acme, admin, DEFAULT)
    assert "  min_signal_classes: 2\n" in body(client.get(url(acme, "edit/")))
    chosen = body(client.get(url(acme, f"edit/?from={older.pk}")))
    assert f"Started from version {older.number}." in chosen
    assert f"Started from version {active.number}." not in chosen


@pytest.mark.parametrize("htmx", [True, False])
def test_validation_shows_each_problem_under_its_line_and_keeps_the_text(acme, admin, htmx):
    client = signed_in_client(admin)
    response = client.post(
        url(acme, "validate/"), {"text": T1_BELOW_FLOOR}, **(HTMX if htmx else {})
    )
    html = body(response)
    assert response.status_code == 200
    assert "The policy has 1 problem" in html
    assert f'<a href="#line-{BELOW_FLOOR_LINE}">Line {BELOW_FLOOR_LINE}</a>' in html
    item = line_item(html, BELOW_FLOOR_LINE)
    assert "has-problem" in item and "min_signal_classes is 1, must be at least 2" in item
    assert "R-16.T1.min_signal_classes" in item
    assert "has-problem" not in line_item(html, BELOW_FLOOR_LINE - 1)
    if not htmx:  # the full page keeps the text in the editor
        assert "min_signal_classes: 1\n    s4_alone_suffices" in html
        assert "<textarea" in html
    assert not PolicyVersion.objects.filter(tenant=acme).exists()


def test_a_problem_past_the_last_line_gets_a_line_of_its_own(acme, admin):
    html = body(signed_in_client(admin).post(url(acme, "validate/"), {"text": "a: [1,\n"}, **HTMX))
    assert "syntax.yaml" in line_item(html, 2)
    assert "syntax.yaml" not in line_item(html, 1)


def test_a_valid_document_validates_with_its_hash(acme, admin):
    text = T0_NEEDS_TWO.replace("\n", "\r\n")  # as a browser sends a textarea
    html = body(signed_in_client(admin).post(url(acme, "validate/"), {"text": text}, **HTMX))
    assert "The policy is valid" in html
    assert source_sha256(T0_NEEDS_TWO) in html


def test_save_as_draft_stores_the_next_version_and_audits_it(acme, admin):
    drafted(acme, admin, DEFAULT)
    client = signed_in_client(admin)
    response = client.post(
        url(acme, "drafts/"), {"text": T0_NEEDS_TWO.replace("\n", "\r\n"), "days": ""}
    )
    version = PolicyVersion.objects.get(tenant=acme, number=2)
    assert response.status_code == 302
    assert response.url == url(acme, f"versions/{version.pk}/")
    assert (version.status, version.source, version.created_by) == (
        PolicyStatus.DRAFT,
        T0_NEEDS_TWO,
        admin,
    )
    assert version.sha256 == source_sha256(T0_NEEDS_TWO)
    assert AuditEvent.objects.filter(tenant=acme, action="policy.drafted").count() == 2
    assert "Saved as draft version 2." in body(client.get(response.url))


def test_an_invalid_draft_is_not_stored_and_its_problems_are_shown_inline(acme, admin):
    response = signed_in_client(admin).post(url(acme, "drafts/"), {"text": T1_BELOW_FLOOR})
    html = body(response)
    assert response.status_code == 200
    assert "has-problem" in line_item(html, BELOW_FLOOR_LINE)
    assert "min_signal_classes: 1\n    s4_alone_suffices" in html  # kept in the editor
    assert not PolicyVersion.objects.filter(tenant=acme).exists()
    rejected = AuditEvent.objects.get(tenant=acme, action="policy.rejected")
    assert rejected.data["code"] == "policy.invalid"


@pytest.mark.parametrize("text", ["", "x" * (MAX_SOURCE_CHARS + 1)], ids=["empty", "too-long"])
def test_a_missing_or_oversized_document_is_a_form_error(acme, admin, text):
    client = signed_in_client(admin)
    for rest in ("drafts/", "validate/", "simulate/"):
        response = client.post(url(acme, rest), {"text": text})
        assert response.status_code == 200
        assert 'class="error" role="alert"' in body(response)
    assert not PolicyVersion.objects.filter(tenant=acme).exists()
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


# --- diff -------------------------------------------------------------------------------------


def test_diff_defaults_to_the_newest_draft_against_the_active_version(acme, admin, second_admin):
    active = activated(acme, admin, second_admin, DEFAULT)
    draft = drafted(acme, admin, T0_NEEDS_TWO)
    html = body(signed_in_client(admin).get(url(acme, "diff/")))
    line = DEFAULT.splitlines().index("  min_signal_classes: 1") + 1
    assert f"Changes from version {active.number} to version {draft.number}" in html
    assert "1 line added (+)." in html and "1 line removed (\N{MINUS SIGN})." in html
    removed = re.search(r'<tr class="diff-removed">(.*?)</tr>', html, re.S).group(1)
    added = re.search(r'<tr class="diff-added">(.*?)</tr>', html, re.S).group(1)
    assert f'<td class="ln">{line}</td>' in removed and "Removed" in removed and MINUS in removed
    assert "<del><code>  min_signal_classes: 1</code></del>" in removed
    assert "Added" in added and "<ins><code>  min_signal_classes: 2</code></ins>" in added
    assert html.count('<tr class="diff-same">') == 6  # three lines of context each side


def test_diff_compares_any_two_versions_and_the_platform_default(acme, admin):
    first = drafted(acme, admin, DEFAULT)
    second = drafted(acme, admin, T0_NEEDS_TWO)
    client = signed_in_client(admin)
    same = body(client.get(url(acme, f"diff/?old=0&new={first.pk}")))
    assert "Changes from the platform default to version 1" in same
    assert "The two versions are identical." in same
    reverse = body(client.get(url(acme, f"diff/?old={second.pk}&new={first.pk}")))
    assert "<ins><code>  min_signal_classes: 1</code></ins>" in reverse
    bad = client.get(url(acme, "diff/?old=abc"))
    assert bad.status_code == 200 and "Enter a whole number." in body(bad)


# --- simulation as a background job -----------------------------------------------------------


def test_the_replay_window_is_bounded_as_the_api_bounds_it():
    days = PolicySimulateInput().fields["days"]
    text = PolicyTextInput().fields["text"]
    assert (days.min_value, days.max_value, days.default) == (MIN_DAYS, MAX_DAYS, DEFAULT_DAYS)
    assert text.max_length == MAX_SOURCE_CHARS


def test_simulate_starts_a_job_and_the_page_polls_it(acme, admin):
    client = signed_in_client(admin)
    response = client.post(url(acme, "simulate/"), {"text": T0_NEEDS_TWO, "days": 7}, **HTMX)
    job = BackgroundJob.objects.get(tenant=acme)
    assert (job.kind, job.status, job.created_by) == (SIMULATE_KIND, JobStatus.QUEUED, admin)
    assert job.params == {"text": T0_NEEDS_TWO, "days": 7}
    job_url = f"/t/{acme.slug}/jobs/{job.pk}/"
    assert f'hx-get="{job_url}"' in body(response) and 'hx-trigger="load"' in body(response)
    assert '<div id="validation" hx-swap-oob="true">' in body(response)  # stale problems go
    polled = body(client.get(job_url, **HTMX))
    assert 'hx-trigger="every 1s"' in polled and "Waiting for a worker" in polled


def test_simulate_without_javascript_redirects_to_the_job_page(acme, admin):
    response = signed_in_client(admin).post(url(acme, "simulate/"), {"text": DEFAULT})
    job = BackgroundJob.objects.get(tenant=acme)
    assert response.status_code == 302 and response.url == f"/t/{acme.slug}/jobs/{job.pk}/"
    assert job.params["days"] == DEFAULT_DAYS


@pytest.mark.parametrize("days", ["0", "366", "-3", "soon"])
def test_a_window_out_of_bounds_is_refused_and_no_job_starts(acme, admin, days):
    response = signed_in_client(admin).post(
        url(acme, "simulate/"), {"text": DEFAULT, "days": days}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#validation"
    assert "Days of past cases to replay:" in body(response)
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


def test_an_invalid_draft_is_not_simulated_and_its_problems_are_shown(acme, admin):
    response = signed_in_client(admin).post(
        url(acme, "simulate/"), {"text": T1_BELOW_FLOOR, "days": 7}, **HTMX
    )
    assert response["HX-Retarget"] == "#validation"
    assert "has-problem" in line_item(body(response), BELOW_FLOOR_LINE)
    assert not BackgroundJob.objects.filter(tenant=acme).exists()


@pytest.fixture
def past_cases(acme):
    """Five cases: three T0 cases passed on one class (the stricter draft would refuse them)."""
    agent = staff(Role.AGENT, tenant=acme)
    one_class = [submitted(acme, agent, ("S2",)) for _ in range(3)]
    submitted(acme, agent, ("S2", "S3"))
    approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    return one_class


def started(client, tenant, text: str = T0_NEEDS_TWO, days: int = 7) -> BackgroundJob:
    client.post(url(tenant, "simulate/"), {"text": text, "days": days}, **HTMX)
    return BackgroundJob.objects.filter(tenant=tenant).latest("pk")


def test_the_simulation_runs_in_chunks_reports_progress_and_stores_the_report(
    acme, admin, past_cases, monkeypatch
):
    monkeypatch.setattr(recovery.policy.jobs, "CHUNK_SIZE", 2)
    reports: list[tuple[int, int]] = []
    update = tenants.jobs._update

    def spy(job_id, tenant_id, **fields):
        if "done" in fields:
            reports.append((fields["done"], fields["total"]))
        return update(job_id, tenant_id, **fields)

    monkeypatch.setattr(tenants.jobs, "_update", spy)
    job = started(signed_in_client(admin), acme)

    job_run(job.pk, acme.pk)

    job.refresh_from_db()
    assert reports == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert (job.status, job.done, job.total, job.error) == (JobStatus.DONE, 5, 5, "")
    expected = policy_simulate(tenant=acme, draft_text=T0_NEEDS_TWO, since=timedelta(days=7))
    expected = expected.as_dict()
    assert job.result["totals"] == expected["totals"]
    assert job.result["totals"]["by_kind"]["evidence"] == 3
    assert job.result["cases"] == expected["cases"]
    assert [case["case_id"] for case in job.result["cases"]] == [c.pk for c in past_cases]
    assert job.result["draft_sha256"] == source_sha256(T0_NEEDS_TWO)


def test_the_finished_job_shows_a_table_and_an_accessible_chart(acme, admin, past_cases):
    client = signed_in_client(admin)
    job = started(client, acme)
    job_run(job.pk, acme.pk)
    html = body(client.get(f"/t/{acme.slug}/jobs/{job.pk}/", **HTMX))
    assert "hx-trigger" not in html  # finished: polling stops
    assert "<dt>Cases replayed</dt><dd>5</dd>" in html
    assert "<dt>Decisions that would change</dt><dd>3</dd>" in html
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "Evidence (3)" in svg and "Tier (0)" in svg
    assert 'width="65%"' in svg  # evidence holds every change: the full bar
    assert '<tr><th scope="row">Evidence</th><td>3</td></tr>' in html
    for case in past_cases:
        assert f'href="/t/{acme.slug}/cases/{case.pk}/">#{case.pk}</a>' in html
        assert f"<td>{case.account.external_id}</td>" in html
    assert html.count("evidence: would be refused — needs 2 classes, had 1 (S2)") == 3


def test_a_simulation_with_no_cases_reports_nothing_changed(acme, admin):
    client = signed_in_client(admin)
    job = started(client, acme, DEFAULT)
    job_run(job.pk, acme.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (JobStatus.DONE, 0, 0)
    html = body(client.get(f"/t/{acme.slug}/jobs/{job.pk}/"))
    assert "No decision would change." in html and "Evidence (0)" in html


def test_the_job_fails_if_its_author_may_no_longer_read_the_policy(acme, admin, past_cases):
    auditor = staff(Role.AUDITOR, tenant=acme)
    job = started(signed_in_client(auditor), acme)
    membership = Membership.objects.get(user=auditor, tenant=acme)
    membership_change_role(actor=operator(), membership=membership, role=Role.AGENT)

    job_run(job.pk, acme.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.endswith("(policy.read_forbidden)")
    assert job.result == {}


def test_another_users_or_another_tenants_job_is_a_404(acme, globex, admin):
    job = started(signed_in_client(admin), acme, DEFAULT)
    colleague = signed_in_client(staff(Role.TENANT_ADMIN, tenant=acme))
    mine, missing = f"/t/{acme.slug}/jobs/{job.pk}/", f"/t/{acme.slug}/jobs/{job.pk + 10_000}/"
    assert colleague.get(mine).status_code == colleague.get(missing).status_code == 404
    assert page(colleague.get(mine)) == page(colleague.get(missing))
    outsider = signed_in_client(staff(Role.TENANT_ADMIN, tenant=globex))
    foreign = outsider.get(f"/t/{globex.slug}/jobs/{job.pk}/")
    absent = outsider.get(f"/t/{globex.slug}/jobs/{job.pk + 10_000}/")
    assert foreign.status_code == absent.status_code == 404
    assert page(foreign) == page(absent)


# --- activation: request, then a second admin with a fresh code -------------------------------


def test_request_then_a_second_admin_activates_with_a_fresh_code(acme, admin, second_admin):
    previous = activated(acme, admin, second_admin, DEFAULT)
    version = drafted(acme, admin)
    requester = signed_in_client(admin)
    response = requester.post(url(acme, f"versions/{version.pk}/request/"))
    assert response.status_code == 302 and response.url == url(acme, f"versions/{version.pk}/")
    version.refresh_from_db()
    assert (version.status, version.requested_by) == (PolicyStatus.PENDING_ACTIVATION, admin)
    assert "Another tenant admin must now approve it." in body(requester.get(response.url))

    approver = signed_in_client(second_admin)
    response = approver.post(
        url(acme, f"versions/{version.pk}/approve/"), {"token": totp_token(second_admin)}
    )
    assert response.status_code == 302
    version.refresh_from_db()
    previous.refresh_from_db()
    assert (version.status, version.approved_by) == (PolicyStatus.ACTIVE, second_admin)
    assert previous.status == PolicyStatus.SUPERSEDED
    event = AuditEvent.objects.filter(tenant=acme, action="policy.activated").latest("pk")
    assert event.data["number"] == version.number and event.data["step_up"]["device"]
    assert f"Version {version.number} is now the active policy." in body(approver.get(response.url))


def test_the_requester_cannot_approve_their_own_request(acme, admin):
    version = policy_activation_request(actor=admin, version=drafted(acme, admin))
    client = signed_in_client(admin)
    response = client.post(
        url(acme, f"versions/{version.pk}/approve/"), {"token": totp_token(admin)}, follow=True
    )
    assert "Whoever requested activation cannot approve it. (sod.approver_is_requester)" in body(
        response
    )
    version.refresh_from_db()
    assert version.status == PolicyStatus.PENDING_ACTIVATION
    assert AuditEvent.objects.filter(tenant=acme, action="policy.rejected").exists()


@pytest.mark.parametrize("token", ["", "000000"], ids=["missing", "wrong"])
def test_approval_without_a_valid_fresh_code_activates_nothing(acme, admin, second_admin, token):
    version = policy_activation_request(actor=admin, version=drafted(acme, admin))
    response = signed_in_client(second_admin).post(
        url(acme, f"versions/{version.pk}/approve/"), {"token": token}, follow=True
    )
    assert "(stepup." in body(response)
    version.refresh_from_db()
    assert version.status == PolicyStatus.PENDING_ACTIVATION
    assert not AuditEvent.objects.filter(tenant=acme, action="policy.activated").exists()


def test_requesting_a_version_that_is_not_a_draft_shows_the_refusal(acme, admin, second_admin):
    active = activated(acme, admin, second_admin)
    response = signed_in_client(admin).post(
        url(acme, f"versions/{active.pk}/request/"), follow=True
    )
    assert "(policy.not_draft)" in body(response)
    active.refresh_from_db()
    assert active.status == PolicyStatus.ACTIVE


@pytest.mark.parametrize("role", [Role.SECURITY_OFFICER, Role.AUDITOR, Role.SUPERVISOR])
def test_only_tenant_admins_may_approve(acme, admin, role):
    version = policy_activation_request(actor=admin, version=drafted(acme, admin))
    other = staff(role, tenant=acme)
    response = signed_in_client(other).post(
        url(acme, f"versions/{version.pk}/approve/"), {"token": totp_token(other)}
    )
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.status == PolicyStatus.PENDING_ACTIVATION

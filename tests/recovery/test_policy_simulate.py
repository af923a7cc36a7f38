"""policy_simulate and its command: past cases replayed under a draft, changed decisions named."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from recovery.cases.choices import CaseStatus
from recovery.cases.models import RecoveryCase
from recovery.cases.services import case_open
from recovery.policy.errors import PolicyInvalid
from recovery.policy.models import PolicyVersion
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from recovery.policy.simulate import KINDS, policy_simulate
from recovery.policy.validation import validate
from tenants.choices import Role
from tenants.exceptions import InvalidInput

from ..factories import make_account_with, staff, step_up
from .casework import approved, signal, submitted

pytestmark = pytest.mark.django_db

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
WEEK = timedelta(days=7)
GROUPS = (
    "    T2: [helpdesk, service-desk, msp-staff, security, it-admins]\n"
    "    T1: [executives, finance, payments, payroll]\n"
)


def edited(old: str, new: str, text: str = DEFAULT) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the document"
    return text.replace(old, new)


T0_NEEDS_TWO = edited("  min_signal_classes: 1\n", "  min_signal_classes: 2\n")
FINANCE_IS_T2 = edited(
    GROUPS,
    "    T2: [helpdesk, service-desk, msp-staff, security, it-admins, finance]\n"
    "    T1: [executives, payments, payroll]\n",
)
T1_BELOW_FLOOR = edited(  # T1 asks for one signal class: below R-16
    "    min_signal_classes: 2\n    s4_alone_suffices: true\n    approvals_required: 1\n",
    "    min_signal_classes: 1\n    s4_alone_suffices: true\n    approvals_required: 1\n",
)


@pytest.fixture
def agent(acme):
    return staff(Role.AGENT, tenant=acme)


def changes_by_case(report) -> dict[int, list[str]]:
    return {case.case_id: [c.detail for c in case.changes] for case in report.changed}


def test_stricter_t0_evidence_flags_only_t0_cases_with_one_class(acme, agent):
    one_class = submitted(acme, agent, ("S3",))
    two_classes = submitted(acme, agent, ("S2", "S3"))
    t1 = approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    no_evidence = case_open(
        actor=agent, account=make_account_with(acme), case_type="unlock", channel="phone"
    )
    assert (one_class.status, two_classes.status, t1.status, no_evidence.status) == (
        CaseStatus.READY,
        CaseStatus.READY,
        CaseStatus.COOLING_OFF,
        CaseStatus.COLLECTING_EVIDENCE,
    )
    trail = AuditEvent.objects.filter(tenant=acme).count()

    report = policy_simulate(tenant=acme, draft_text=T0_NEEDS_TWO, since=WEEK)

    assert changes_by_case(report) == {
        one_class.pk: ["evidence: would be refused — needs 2 classes, had 1 (S3)"]
    }
    assert report.cases_replayed == 4
    assert report.decisions_changed == 1
    assert report.by_kind == {**dict.fromkeys(KINDS, 0), "evidence": 1}
    assert report.changed[0].account == one_class.account.external_id
    # A simulation changes nothing: no audit event, no stored draft, no case touched.
    assert AuditEvent.objects.filter(tenant=acme).count() == trail
    assert not PolicyVersion.objects.filter(tenant=acme).exists()
    assert RecoveryCase.objects.get(pk=one_class.pk).status == CaseStatus.READY


def test_finance_moved_to_t2_flags_the_finance_case_and_not_the_others(acme, agent):
    finance = approved(
        submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"])
    )
    executive = submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["executives"])
    submitted(acme, agent, ("S3",))

    report = policy_simulate(tenant=acme, draft_text=FINANCE_IS_T2, since=WEEK)

    assert changes_by_case(report) == {
        finance.pk: [
            "tier: T1 → T2 (groups.T2: member of finance)",
            "route: standard → security",
            "approval: would need 2 approvals incl. 1 security_officer, "
            "had 1 incl. 0 security_officer (0 by approvers the draft allows)",
        ]
    }
    assert executive.status == CaseStatus.PENDING_APPROVAL
    assert report.by_kind == {**dict.fromkeys(KINDS, 0), "tier": 1, "route": 1, "approval": 1}


def test_the_unchanged_policy_changes_nothing(acme, agent):
    approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    submitted(acme, agent, ("S3",))
    report = policy_simulate(tenant=acme, draft_text=DEFAULT, since=WEEK)
    assert (report.cases_replayed, report.changed, report.decisions_changed) == (2, (), 0)


def test_looser_draft_names_decisions_that_would_now_go_through(acme, agent):
    pending = submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"])
    short = case_open(
        actor=agent,
        account=make_account_with(acme, groups=["Finance"]),
        case_type="mfa_reset",
        channel="phone",
    )
    signal(short, agent, "S3")
    no_finance = edited(GROUPS, GROUPS.replace("finance, ", ""))

    report = policy_simulate(tenant=acme, draft_text=no_finance, since=WEEK)

    assert changes_by_case(report) == {
        pending.pk: [
            "tier: T1 → T0 (default: every account is at least T0)",
            "approval: would be complete — needs 0 approvals, has 0",
        ],
        short.pk: [
            "tier: T1 → T0 (default: every account is at least T0)",
            "evidence: would now be enough — needs 1 class, had 1 (S3)",
        ],
    }


def test_longer_cooling_off_is_reported_against_the_version_the_case_was_decided_under(acme, agent):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    two_hours = edited("    cooling_off_seconds: 3600\n", "    cooling_off_seconds: 7200\n")
    version = policy_draft_create(actor=author, tenant=acme, text=two_hours)
    version = policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))
    case = approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    assert case.policy_version == 1 and case.status == CaseStatus.COOLING_OFF

    report = policy_simulate(tenant=acme, draft_text=DEFAULT, since=WEEK)

    assert changes_by_case(report) == {case.pk: ["cooling-off: 2 hours → 1 hour"]}
    assert report.changed[0].decided_under == 1


def test_draft_below_a_floor_is_refused_as_a_draft_would_be(acme, agent):
    submitted(acme, agent, ("S3",))
    with pytest.raises(PolicyInvalid) as simulated:
        policy_simulate(tenant=acme, draft_text=T1_BELOW_FLOOR, since=WEEK)
    with pytest.raises(PolicyInvalid) as validated:
        validate(T1_BELOW_FLOOR)
    with pytest.raises(PolicyInvalid) as drafted:
        policy_draft_create(
            actor=staff(Role.TENANT_ADMIN, tenant=acme), tenant=acme, text=T1_BELOW_FLOOR
        )
    assert simulated.value.errors == validated.value.errors == drafted.value.errors
    error = next(e for e in simulated.value.errors if e.rule == "R-16.T1.min_signal_classes")
    line = T1_BELOW_FLOOR.splitlines().index("    min_signal_classes: 1") + 1
    assert (error.path, error.line) == ("$.tiers.T1.min_signal_classes", line)


def test_cases_older_than_the_window_and_other_tenants_cases_are_ignored(acme, globex, agent):
    recent = submitted(acme, agent, ("S3",))
    old = submitted(acme, agent, ("S3",))
    RecoveryCase.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    submitted(globex, staff(Role.AGENT, tenant=globex), ("S3",))

    report = policy_simulate(tenant=acme, draft_text=T0_NEEDS_TWO, since=WEEK)

    assert report.cases_replayed == 1
    assert list(changes_by_case(report)) == [recent.pk]


def test_window_must_be_positive(acme):
    with pytest.raises(InvalidInput):
        policy_simulate(tenant=acme, draft_text=DEFAULT, since=timedelta(0))


@pytest.mark.parametrize("cases", [1, 10])
def test_query_count_does_not_grow_with_the_cases(acme, agent, django_assert_num_queries, cases):
    approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    for _ in range(cases - 1):
        submitted(acme, agent, ("S2", "S3"))
    # cases with their accounts, accepted evidence, live approvals (platform default: no versions)
    with django_assert_num_queries(3):
        report = policy_simulate(tenant=acme, draft_text=FINANCE_IS_T2, since=WEEK)
    assert report.cases_replayed == cases


# --- manage.py policy_simulate ---------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("policy_simulate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_json_is_one_object_with_the_totals(acme, agent, tmp_path):
    case = submitted(acme, agent, ("S3",))
    submitted(acme, agent, ("S2", "S3"))
    draft = tmp_path / "draft.yaml"
    draft.write_text(T0_NEEDS_TWO, encoding="utf-8")

    out, _ = run("--tenant", acme.slug, str(draft), "--since", "7", "--json")

    result = json.loads(out)
    assert result["totals"] == {
        "cases_replayed": 2,
        "cases_changed": 1,
        "decisions_changed": 1,
        "by_kind": {**dict.fromkeys(KINDS, 0), "evidence": 1},
    }
    assert result["cases"][0]["case_id"] == case.pk
    assert result["cases"][0]["account"] == case.account.external_id
    assert any("as they are now" in note for note in result["notes"])


def test_command_text_has_a_header_and_a_block_per_changed_case(acme, agent, tmp_path):
    case = approved(submitted(acme, agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]))
    draft = tmp_path / "draft.yaml"
    draft.write_text(FINANCE_IS_T2, encoding="utf-8")

    out, _ = run("--tenant", acme.slug, str(draft), "--since", "30")

    assert "cases replayed: 1; cases that would change: 1; decisions that would change: 3" in out
    assert f"case {case.pk} · {case.account.external_id} · mfa_reset · cooling_off" in out
    assert "  - route: standard → security" in out


def test_command_prints_each_draft_error_with_file_and_line_and_exits_1(acme, tmp_path):
    draft = tmp_path / "loose.yaml"
    draft.write_text(T1_BELOW_FLOOR, encoding="utf-8")
    err = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "policy_simulate", "--tenant", acme.slug, str(draft), "--since", "7", stderr=err
        )
    assert refused.value.returncode == 1
    line = T1_BELOW_FLOOR.splitlines().index("    min_signal_classes: 1") + 1
    start = f"{draft}:{line}: $.tiers.T1.min_signal_classes: "
    assert any(
        row.startswith(start) and row.endswith(" [R-16.T1.min_signal_classes]")
        for row in err.getvalue().splitlines()
    ), err.getvalue()


@pytest.mark.parametrize("wrong", ["tenant", "file", "days", "zero_days"])
def test_command_refuses_bad_arguments_with_exit_code_2(acme, tmp_path, wrong):
    draft = tmp_path / "draft.yaml"
    draft.write_text(DEFAULT, encoding="utf-8")
    args = {"tenant": acme.slug, "file": str(draft), "days": "7"}
    if wrong == "zero_days":
        args["days"] = "0"
    else:
        args[wrong] = {"tenant": "no-such-tenant", "file": str(tmp_path / "nope"), "days": "-3"}[
            wrong
        ]
    with pytest.raises(CommandError) as refused:
        run("--tenant", args["tenant"], args["file"], "--since", args["days"])
    assert refused.value.returncode == 2

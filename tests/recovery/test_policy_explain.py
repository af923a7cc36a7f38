"""policy_explain and its management command: what a case needs, as data and in words."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from recovery.policy.explain import policy_explain
from recovery.policy.rules import DEFAULT_POLICY_FILE
from recovery.policy.services import (
    policy_activation_approve,
    policy_activation_request,
    policy_draft_create,
)
from tenants.choices import Role
from tenants.exceptions import InvalidInput

from ..factories import make_account_with, staff, step_up

pytestmark = pytest.mark.django_db

REQUIRED_KEYS = {
    "tier",
    "route",
    "min_signal_classes",
    "accepted_classes",
    "approvals_required",
    "approver_roles",
    "cooling_off_seconds",
    "policy_version",
}


def run(*args: str) -> str:
    out = StringIO()
    call_command("policy_explain", *args, stdout=out)
    return out.getvalue()


def test_t0_account(acme):
    result = policy_explain(make_account_with(acme), "password_reset")
    assert set(result) >= REQUIRED_KEYS
    assert (result["tier"], result["route"]) == ("T0", "standard")
    assert result["min_signal_classes"] == 1
    assert result["accepted_classes"] == ["S1", "S2", "S3", "S5"]
    assert (result["approvals_required"], result["cooling_off_seconds"]) == (0, 0)
    assert (result["policy_version"], result["policy_source"]) == (0, "platform_default")
    assert result["summary"][0].startswith("Tier T0")
    assert any("Knowledge answers never count" in line for line in result["summary"])


def test_t1_account(acme):
    result = policy_explain(make_account_with(acme, groups=["Finance"]), "mfa_reset")
    assert (result["tier"], result["route"]) == ("T1", "standard")
    assert result["tier_reasons"] == ["tier_rules.groups.T1: member of finance -> T1"]
    assert (result["min_signal_classes"], result["s4_alone_suffices"]) == (2, True)
    assert result["approvals_required"] == 1
    assert result["approver_roles"] == ["supervisor", "security_officer"]
    assert result["cooling_off_seconds"] == 3600
    assert result["tenant_approver_required_when_msp"] is True
    assert any("1 hour" in line for line in result["summary"])


def test_t2_account_goes_to_the_security_queue(acme):
    subject = make_account_with(acme, admin_roles=["Global Administrator"])
    result = policy_explain(subject, "password_reset")
    assert (result["tier"], result["route"]) == ("T2", "security")
    assert (result["approvals_required"], result["min_security_officer_approvals"]) == (2, 1)
    assert result["security_officer_required"] is True
    assert result["cooling_off_seconds"] == 86400
    assert result["artifact_lifetimes"]["sms"] == 600


def test_staff_subject_is_t2(acme):
    result = policy_explain(make_account_with(acme, person_id=uuid.uuid4()), "unlock")
    assert result["tier"] == "T2"


def test_no_helpdesk_reset_routes_to_security_without_raising_the_tier(acme):
    result = policy_explain(make_account_with(acme, no_helpdesk_reset=True), "unlock")
    assert (result["tier"], result["route"]) == ("T0", "security")
    assert "no help-desk reset" in result["route_reasons"][0]


def test_exception_needs_two_security_officers_and_goes_to_security(acme):
    result = policy_explain(make_account_with(acme), "exception")
    assert result["route"] == "security"
    assert result["approver_roles"] == ["security_officer"]
    assert result["min_security_officer_approvals"] == 2
    assert result["s5_waives_cooling_off"] is False


def test_unknown_case_type_is_refused(acme):
    with pytest.raises(InvalidInput):
        policy_explain(make_account_with(acme), "make_coffee")


def test_explain_uses_the_tenants_active_version(acme):
    author, approver = staff(Role.TENANT_ADMIN, tenant=acme), staff(Role.TENANT_ADMIN, tenant=acme)
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        "    T1: [executives, finance, payments, payroll]\n", "    T1: [board]\n"
    )
    version = policy_draft_create(actor=author, tenant=acme, text=text)
    version = policy_activation_request(actor=author, version=version)
    policy_activation_approve(actor=approver, version=version, step_up=step_up(approver))
    assert policy_explain(make_account_with(acme, groups=["finance"]), "unlock")["tier"] == "T0"
    result = policy_explain(make_account_with(acme, groups=["board"]), "unlock")
    assert (result["tier"], result["policy_version"], result["policy_source"]) == (
        "T1",
        1,
        "tenant",
    )
    assert result["policy_sha256"] == version.sha256


def test_command_json_prints_one_object(acme):
    subject = make_account_with(acme, mailbox_type="shared")
    output = run(
        "--tenant",
        acme.slug,
        "--account",
        subject.external_id,
        "--case-type",
        "mfa_reset",
        "--json",
    )
    result = json.loads(output)
    assert set(result) >= REQUIRED_KEYS
    assert (result["tier"], result["route"], result["policy_version"]) == ("T1", "standard", 0)
    assert result["approvals_required"] == 1


def test_command_text_is_readable(acme):
    subject = make_account_with(acme, admin_roles=["Exchange Administrator"])
    output = run("--tenant", acme.slug, "--account", subject.external_id, "--case-type", "unlock")
    assert "tier T2, route security" in output
    assert "Approvals: 2" in output


@pytest.mark.parametrize("wrong", ["tenant", "account", "case_type"])
def test_command_refuses_unknown_input_with_exit_code_2(acme, globex, wrong):
    subject = make_account_with(acme)
    args = {"tenant": acme.slug, "account": subject.external_id, "case_type": "unlock"}
    args[wrong] = {"tenant": "no-such-tenant", "account": "nobody", "case_type": "nap"}[wrong]
    with pytest.raises(CommandError) as refused:
        run(
            "--tenant",
            args["tenant"],
            "--account",
            args["account"],
            "--case-type",
            args["case_type"],
        )
    assert refused.value.returncode == 2


def test_command_does_not_find_another_tenants_account(acme, globex):
    theirs = make_account_with(globex)
    with pytest.raises(CommandError) as refused:
        run("--tenant", acme.slug, "--account", theirs.external_id, "--case-type", "unlock")
    assert refused.value.returncode == 2

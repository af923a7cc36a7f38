"""Policy documents: parsing with lines, schema, platform floors, requirements and tiers.

Pure tests: no database. Every floor has a case below that breaks it and expects its rule id at
the path and line of the weak value, so removing a floor fails its case.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
import yaml
from jsonschema import Draft202012Validator

from recovery.cases.methods import METHODS
from recovery.models import ProtectedAccount
from recovery.policy.errors import PolicyInvalid
from recovery.policy.floors import FLOORS
from recovery.policy.rules import DEFAULT_POLICY_FILE, platform_default, policy_from_source
from recovery.policy.schema import SCHEMA
from recovery.policy.validation import validate
from tenants.choices import CaseType, Tier

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def line_of(text: str, needle: str, after: str = "") -> int:
    """1-based line of the first line containing `needle` (after the line starting `after`)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after)) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def edited(old: str, new: str, text: str = DEFAULT) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the document"
    return text.replace(old, new)


def rejection(text: str) -> PolicyInvalid:
    with pytest.raises(PolicyInvalid) as caught:
        validate(text)
    return caught.value


def assert_error(text: str, rule: str, path: str, line: int) -> None:
    errors = rejection(text).errors
    matching = [e for e in errors if e.rule == rule and e.path == path]
    assert matching, f"no {rule} at {path}; got {[str(e) for e in errors]}"
    assert matching[0].line == line, str(matching[0])


# --- the platform default ------------------------------------------------------------------


def test_schema_is_a_valid_json_schema():
    Draft202012Validator.check_schema(SCHEMA)


def test_platform_default_passes_schema_and_every_floor():
    doc = validate(DEFAULT)
    assert doc.format == "yaml"
    policy = platform_default()
    assert policy.number == 0 and policy.source == "platform_default"
    for tier in Tier.values:
        for case_type in CaseType.values:
            assert policy.requirements(tier, case_type).min_signal_classes >= 1


# --- floors: each one broken, named, located -------------------------------------------------

T1_BLOCK = "  T1:\n    accepted_classes: [S1, S2, S3, S4, S5]\n    min_signal_classes: 2\n"
T2_BLOCK = "  T2:\n    accepted_classes: [S1, S2, S3, S4, S5]\n    min_signal_classes: 2\n"
EXC = "  exception:                              # R-24: its own case type, never an override\n"
T2_STEP_UP = (
    "    step_up: [passkey]                    # floor: phishing-resistant for T2 approvals\n"
)

# (rule, old, new, path, needle for the line, line search starts after)
FLOOR_CASES = [
    (
        "R-16.T0.min_signal_classes",
        "  min_signal_classes: 1\n",
        "  min_signal_classes: 0\n",
        "$.defaults.min_signal_classes",
        "min_signal_classes: 0",
        "",
    ),
    (
        "R-16.T0.accepted_classes",
        "  accepted_classes: [S1, S2, S3, S5]\n",
        "  accepted_classes: [S4]\n",
        "$.defaults.accepted_classes",
        "accepted_classes: [S4]",
        "",
    ),
    (
        "R-16.T1.min_signal_classes",
        T1_BLOCK,
        T1_BLOCK.replace("min_signal_classes: 2", "min_signal_classes: 1"),
        "$.tiers.T1.min_signal_classes",
        "min_signal_classes: 1",
        "  T1:",
    ),
    (
        "R-16.T1.approvals_required",
        "    approvals_required: 1\n",
        "    approvals_required: 0\n",
        "$.tiers.T1.approvals_required",
        "approvals_required: 0",
        "  T1:",
    ),
    (
        "R-36.T1.cooling_off_seconds",
        "    cooling_off_seconds: 3600\n",
        "    cooling_off_seconds: 0\n",
        "$.tiers.T1.cooling_off_seconds",
        "cooling_off_seconds: 0",
        "  T1:",
    ),
    (
        "R-16.T2.min_signal_classes",
        T2_BLOCK,
        T2_BLOCK.replace("min_signal_classes: 2", "min_signal_classes: 1"),
        "$.tiers.T2.min_signal_classes",
        "min_signal_classes: 1",
        "  T2:",
    ),
    (
        "R-16.T2.approvals_required",
        "    approvals_required: 2\n    min_security_officer_approvals: 1\n",
        "    approvals_required: 1\n    min_security_officer_approvals: 1\n",
        "$.tiers.T2.approvals_required",
        "approvals_required: 1",
        "  T2:",
    ),
    (
        "R-16.T2.security_officer",
        "    min_security_officer_approvals: 1\n",
        "    min_security_officer_approvals: 0\n",
        "$.tiers.T2.min_security_officer_approvals",
        "min_security_officer_approvals: 0",
        "  T2:",
    ),
    (
        "R-16.T2.cooling_off_seconds",
        "    cooling_off_seconds: 86400\n\ncase_types:",
        "    cooling_off_seconds: 0\n\ncase_types:",
        "$.tiers.T2.cooling_off_seconds",
        "cooling_off_seconds: 0",
        "  T2:",
    ),
    (
        "R-24.exception.approvals_required",
        EXC + "    approvals_required: 2\n",
        EXC + "    approvals_required: 1\n",
        "$.case_types.exception.approvals_required",
        "approvals_required: 1",
        "  exception:",
    ),
    (
        "R-24.exception.security_officers",
        "    min_security_officer_approvals: 2\n",
        "    min_security_officer_approvals: 1\n",
        "$.case_types.exception.min_security_officer_approvals",
        "min_security_officer_approvals: 1",
        "  exception:",
    ),
    (
        "R-24.exception.cooling_off_seconds",
        "    cooling_off_seconds: 86400\n    s5_waives_cooling_off: false\n",
        "    cooling_off_seconds: 0\n    s5_waives_cooling_off: false\n",
        "$.case_types.exception.cooling_off_seconds",
        "cooling_off_seconds: 0",
        "  exception:",
    ),
    (
        "R-24.exception.s5_waives_cooling_off",
        "    s5_waives_cooling_off: false\n",
        "    s5_waives_cooling_off: true\n",
        "$.case_types.exception.s5_waives_cooling_off",
        "s5_waives_cooling_off: true",
        "  exception:",
    ),
    (
        "R-31.sms",
        "    sms: 600\n",
        "    sms: 601\n",
        "$.defaults.artifact_lifetimes.sms",
        "sms: 601",
        "",
    ),
    (
        "R-31.voice",
        "    voice: 600\n",
        "    voice: 601\n",
        "$.defaults.artifact_lifetimes.voice",
        "voice: 601",
        "",
    ),
    (
        "R-31.email",
        "    email: 86400\n",
        "    email: 86401\n",
        "$.defaults.artifact_lifetimes.email",
        "email: 86401",
        "",
    ),
    (
        "R-31.temporary_access_pass",
        "    temporary_access_pass: 3600\n",
        "    temporary_access_pass: 28801\n",
        "$.defaults.artifact_lifetimes.temporary_access_pass",
        "temporary_access_pass: 28801",
        "",
    ),
    (
        "R-53.max_failed_attempts",
        "  max_failed_attempts: 5 ",
        "  max_failed_attempts: 6 ",
        "$.defaults.max_failed_attempts",
        "max_failed_attempts: 6",
        "",
    ),
    (
        "R-52.repeat_case_window_seconds",
        "  repeat_case_window_seconds: 86400 ",
        "  repeat_case_window_seconds: 86399 ",
        "$.defaults.repeat_case_window_seconds",
        "repeat_case_window_seconds: 86399",
        "",
    ),
    (
        "R-52.repeat_after_denial_window_seconds",
        "  repeat_after_denial_window_seconds: 259200 ",
        "  repeat_after_denial_window_seconds: 259199 ",
        "$.defaults.repeat_after_denial_window_seconds",
        "repeat_after_denial_window_seconds: 259199",
        "",
    ),
    (
        "R-26.min_review_seconds",
        "  min_review_seconds: 30 ",
        "  min_review_seconds: 5 ",
        "$.defaults.min_review_seconds",
        "min_review_seconds: 5",
        "",
    ),
    (
        "R-55.push_denial_lookback_seconds",
        "  push_denial_lookback_seconds: 86400 ",
        "  push_denial_lookback_seconds: 3600 ",
        "$.defaults.push_denial_lookback_seconds",
        "push_denial_lookback_seconds: 3600",
        "",
    ),
    (
        "R-55.caller_reuse_window_seconds",
        "  caller_reuse_window_seconds: 86400 ",
        "  caller_reuse_window_seconds: 86399 ",
        "$.defaults.caller_reuse_window_seconds",
        "caller_reuse_window_seconds: 86399",
        "",
    ),
    (
        "R-55.caller_reuse_subjects",
        "  caller_reuse_subjects: 2 ",
        "  caller_reuse_subjects: 3 ",
        "$.defaults.caller_reuse_subjects",
        "caller_reuse_subjects: 3",
        "",
    ),
    (
        "R-04.quarantine_seconds",
        "  quarantine_seconds: 1209600 ",
        "  quarantine_seconds: 3600 ",
        "$.defaults.quarantine_seconds",
        "quarantine_seconds: 3600",
        "",
    ),
    (
        "R-15.admin_roles",
        "  admin_roles: T2 ",
        "  admin_roles: T1 ",
        "$.tier_rules.admin_roles",
        "admin_roles: T1",
        "",
    ),
    (
        "R-15.staff_subject",
        "  staff_subject: T2 ",
        "  staff_subject: T1 ",
        "$.tier_rules.staff_subject",
        "staff_subject: T1",
        "",
    ),
    (
        "R-15.delegations",
        "  delegations: T1 ",
        "  delegations: T0 ",
        "$.tier_rules.delegations",
        "delegations: T0",
        "",
    ),
    (
        "R-15.mailbox_types",
        "    shared: T1\n",
        "    shared: T0\n",
        "$.tier_rules.mailbox_types.shared",
        "shared: T0",
        "",
    ),
    (
        "R-15.helpdesk_groups",
        "    T2: [helpdesk, service-desk, msp-staff, security, it-admins]\n",
        "",
        "$.tier_rules.groups",
        "  groups:",
        "",
    ),
    (
        "R-20.approver_roles",
        "    approvals_required: 1\n",
        "    approvals_required: 1\n    approver_roles: [supervisor, agent]\n",
        "$.tiers.T1.approver_roles",
        "approver_roles: [supervisor, agent]",
        "",
    ),
    (
        "R-20.security_officer_eligible",
        "    min_security_officer_approvals: 1\n",
        "    min_security_officer_approvals: 1\n    approver_roles: [supervisor]\n",
        "$.tiers.T2.approver_roles",
        "approver_roles: [supervisor]",
        "",
    ),
    (
        "R-20.approvals_consistent",
        "    min_security_officer_approvals: 1\n",
        "    min_security_officer_approvals: 3\n",
        "$.tiers.T2.min_security_officer_approvals",
        "min_security_officer_approvals: 3",
        "",
    ),
    (
        "R-01.s4_alone_needs_s4",
        T1_BLOCK,
        T1_BLOCK.replace("S3, S4, S5", "S3, S5"),
        "$.tiers.T1.s4_alone_suffices",
        "s4_alone_suffices: true",
        "  T1:",
    ),
    (
        "R-01.min_signal_classes_satisfiable",
        T1_BLOCK + "    s4_alone_suffices: true\n",
        T1_BLOCK.replace("S1, S2, S3, S4, S5", "S1") + "    s4_alone_suffices: false\n",
        "$.tiers.T1.min_signal_classes",
        "min_signal_classes: 2",
        "  T1:",
    ),
    (
        "R-01.signal_class",
        "  accepted_classes: [S1, S2, S3, S5]\n",
        "  accepted_classes: [S1, S2, S3, S5, S6]\n",
        "$.defaults.accepted_classes[4]",
        "accepted_classes: [S1, S2, S3, S5, S6]",
        "",
    ),
    (
        "R-02.not_a_signal",
        "  accepted_classes: [S1, S2, S3, S5]\n",
        "  accepted_classes: [S1, S2, S3, S5, kba]\n",
        "$.defaults.accepted_classes[4]",
        "kba",
        "",
    ),
    (
        "R-01.method_not_class",
        "  accepted_classes: [S1, S2, S3, S5]\n",
        "  accepted_classes: [S1, S2, S3, S5, sms_code]\n",
        "$.defaults.accepted_classes[4]",
        "sms_code",
        "",
    ),
    (
        "R-02.method_not_in_catalogue",
        T1_BLOCK,
        T1_BLOCK + "    accepted_methods: [sms_code, mothers_maiden_name]\n",
        "$.tiers.T1.accepted_methods[1]",
        "mothers_maiden_name",
        "  T1:",
    ),
    (
        "R-01.method_class_accepted",
        T1_BLOCK,
        T1_BLOCK.replace("S1, S2, S3, S4, S5", "S2, S4")
        + "    accepted_methods: [email_code, manager_attestation, identity_proofing]\n",
        "$.tiers.T1.accepted_methods",
        "accepted_methods:",
        "  T1:",
    ),
    (
        "R-36.T2.s5_waives_cooling_off",
        "    s5_waives_cooling_off: false          # R-36: nothing waives a T2 wait\n",
        "",
        "$.defaults.s5_waives_cooling_off",
        "s5_waives_cooling_off: true",
        "",
    ),
    (
        "R-23.T2.step_up",
        T2_STEP_UP,
        "    step_up: [passkey, totp]\n",
        "$.tiers.T2.step_up",
        "step_up: [passkey, totp]",
        "  T2:",
    ),
    (
        "R-35.T1.reestablishment_window_seconds",
        "    reestablishment_window_seconds: 259200  # R-35: 72 h after a recovery; floor 24 h\n"
        "    cooling_off_seconds: 3600\n",
        "    reestablishment_window_seconds: 86399\n    cooling_off_seconds: 3600\n",
        "$.tiers.T1.reestablishment_window_seconds",
        "reestablishment_window_seconds: 86399",
        "  T1:",
    ),
    (
        "R-35.T2.reestablishment_window_seconds",
        T2_STEP_UP,
        T2_STEP_UP
        + "    case_types:\n      mfa_reset:\n        reestablishment_window_seconds: 0\n",
        "$.tiers.T2.case_types.mfa_reset.reestablishment_window_seconds",
        "reestablishment_window_seconds: 0",
        "  T2:",
    ),
    (
        "R-22.approval_lifetime_max",
        T2_STEP_UP,
        T2_STEP_UP + "    approval_lifetime_seconds: 259201\n",
        "$.tiers.T2.approval_lifetime_seconds",
        "approval_lifetime_seconds: 259201",
        "  T2:",
    ),
    (
        "R-22.approval_lifetime_after_cooling_off",
        EXC,
        EXC + "    approval_lifetime_seconds: 86400\n",
        "$.case_types.exception.approval_lifetime_seconds",
        "approval_lifetime_seconds: 86400",
        "  exception:",
    ),
    (
        "R-19.role_regrant_max_seconds",
        "  role_regrant_max_seconds: 604800        "
        "# R-19: re-grants last at most 7 days; ceiling 90\n",
        "  role_regrant_max_seconds: 7776001\n",
        "$.defaults.role_regrant_max_seconds",
        "role_regrant_max_seconds: 7776001",
        "",
    ),
]


@pytest.mark.parametrize(
    ("rule", "old", "new", "path", "needle", "after"),
    FLOOR_CASES,
    ids=[case[0] for case in FLOOR_CASES],
)
def test_document_below_a_floor_is_rejected_naming_rule_path_and_line(
    rule, old, new, path, needle, after
):
    text = edited(old, new)
    assert_error(text, rule, path, line_of(text, needle, after))


def test_every_floor_has_a_breaking_case():
    assert {case[0] for case in FLOOR_CASES} == set(FLOORS)


def test_inherited_weak_value_points_at_where_it_comes_from():
    # T1 no longer overrides min_signal_classes: it inherits 1 from defaults, below its floor.
    text = edited(T1_BLOCK, "  T1:\n    accepted_classes: [S1, S2, S3, S4, S5]\n")
    assert_error(
        text,
        "R-16.T1.min_signal_classes",
        "$.defaults.min_signal_classes",
        line_of(text, "  min_signal_classes: 1"),
    )


def test_case_type_override_cannot_lower_its_tier():
    text = edited(
        "    cooling_off_seconds: 86400\n\ncase_types:",
        "    cooling_off_seconds: 86400\n    case_types:\n      mfa_reset:\n"
        "        min_signal_classes: 1\n\ncase_types:",
    )
    error = next(e for e in rejection(text).errors if e.rule == "R-16.T2.min_signal_classes")
    assert error.path == "$.tiers.T2.case_types.mfa_reset.min_signal_classes"
    assert error.line == line_of(text, "        min_signal_classes: 1")
    assert "T2 mfa_reset" in error.message


def test_exception_floor_applies_even_when_a_tier_overrides_it():
    text = edited(
        "    cooling_off_seconds: 3600\n",
        "    cooling_off_seconds: 3600\n    case_types:\n      exception:\n"
        "        min_security_officer_approvals: 0\n",
    )
    assert_error(
        text,
        "R-24.exception.security_officers",
        "$.tiers.T1.case_types.exception.min_security_officer_approvals",
        line_of(text, "        min_security_officer_approvals: 0"),
    )


NOT_SIGNALS = [
    "kba",
    "knowledge",
    "security_question",
    "date_of_birth",
    "employee_id",
    "Mothers Maiden",
    "passphrase",
    "staff_number",
    "mothers_first_name",
    "callerid",
    "caller_id",
    "face_check",
    "voice_match",
    "context",
]


@pytest.mark.parametrize("entry", NOT_SIGNALS)
def test_anything_but_s1_to_s5_as_a_class_is_refused_as_context_only(entry):
    """No substring guessing: every entry that is not S1-S5 is refused, whatever its words."""
    text = edited(T1_BLOCK, T1_BLOCK.replace("S4, S5]", f"S4, S5, {entry}]"))
    path = "$.tiers.T1.accepted_classes[5]"
    assert_error(text, "R-02.not_a_signal", path, line_of(text, entry, "  T1:"))
    error = next(e for e in rejection(text).errors if e.path == path)
    assert "context only" in error.message


@pytest.mark.parametrize("entry", NOT_SIGNALS)
def test_anything_outside_the_catalogue_as_a_method_is_refused_as_r02(entry):
    text = edited(T1_BLOCK, T1_BLOCK + f"    accepted_methods: [email_code, {entry}]\n")
    path = "$.tiers.T1.accepted_methods[1]"
    assert_error(text, "R-02.method_not_in_catalogue", path, line_of(text, "accepted_methods"))
    error = next(e for e in rejection(text).errors if e.path == path)
    assert "context only" in error.message and "sms_code" in error.message


def test_an_unknown_class_is_named_as_one():
    text = edited(T1_BLOCK, T1_BLOCK.replace("S4, S5]", "S4, S5, S6]"))
    assert_error(
        text, "R-01.signal_class", "$.tiers.T1.accepted_classes[5]", line_of(text, "S6", "  T1:")
    )


def _unbuilt(monkeypatch, *names: str) -> None:
    """Pretend these methods' verifier is not built (`available=False`), as S1 and S5 were
    before the owner portal: their class then cannot be reached."""
    for name in names:
        monkeypatch.setitem(METHODS, name, dataclasses.replace(METHODS[name], available=False))


def test_evidence_rule_must_be_reachable_with_methods_verifiable_today(monkeypatch):
    """A class whose verifiers are not built cannot be reached: a T1 rule that needs it cannot
    be met, so it is refused."""
    _unbuilt(monkeypatch, "recovery_code", "passkey", "idp_sign_in")
    text = edited(
        T1_BLOCK + "    s4_alone_suffices: true\n",
        T1_BLOCK.replace("S1, S2, S3, S4, S5", "S1, S2, S5") + "    s4_alone_suffices: false\n",
    )
    error = next(
        e for e in rejection(text).errors if e.rule == "R-01.min_signal_classes_satisfiable"
    )
    assert error.path == "$.tiers.T1.min_signal_classes"
    assert "give 1 class(es) (S2)" in error.message


def test_accepted_methods_narrow_what_is_reachable(monkeypatch):
    # Only email codes and proofing are accepted at T1: two classes, S2 and S4, still suffice.
    validate(edited(T1_BLOCK, T1_BLOCK + "    accepted_methods: [email_code, identity_proofing]\n"))
    # Only email codes, and S4 alone is then unreachable too: refused.
    text = edited(T1_BLOCK, T1_BLOCK + "    accepted_methods: [email_code, sms_code]\n")
    assert "R-01.min_signal_classes_satisfiable" in rejection(text).rules
    # A passkey confirmed in the owner portal reaches S5: with email codes, two classes.
    validate(edited(T1_BLOCK, T1_BLOCK + "    accepted_methods: [email_code, passkey]\n"))
    # An unavailable method does not make its class reachable.
    _unbuilt(monkeypatch, "passkey")
    text = edited(T1_BLOCK, T1_BLOCK + "    accepted_methods: [email_code, passkey]\n")
    assert "R-01.min_signal_classes_satisfiable" in rejection(text).rules


WAITS = [
    ("R-36.T1.cooling_off_seconds", "    cooling_off_seconds: {}\n", 3600, 900),
    ("R-16.T2.cooling_off_seconds", "    cooling_off_seconds: {}\n\ncase_types:", 86400, 14400),
    (
        "R-24.exception.cooling_off_seconds",
        "    cooling_off_seconds: {}\n    s5_waives_cooling_off: false\n",
        86400,
        86400,
    ),
    ("R-04.quarantine_seconds", "  quarantine_seconds: {} ", 1209600, 604800),
]


@pytest.mark.parametrize(("rule", "template", "current", "floor"), WAITS, ids=[w[0] for w in WAITS])
def test_waits_one_second_below_the_floor_are_refused_and_the_floor_passes(
    rule, template, current, floor
):
    """R-36 / R-04 floors of issue 11: T1 15 min, T2 4 h, exception 24 h, quarantine 7 days."""
    old = template.format(current)
    assert rule in rejection(edited(old, template.format(floor - 1))).rules
    validate(edited(old, template.format(floor)))


def test_raising_a_floor_is_accepted():
    text = edited("  max_failed_attempts: 5 ", "  max_failed_attempts: 3 ")
    text = edited("    cooling_off_seconds: 3600\n", "    cooling_off_seconds: 7200\n", text)
    validate(text)


# --- syntax and schema errors point at the right line and path -------------------------------


def test_malformed_yaml_reports_its_line():
    text = edited("  min_signal_classes: 1\n", "  min_signal_classes: [1\n")
    error = rejection(text).errors[0]
    assert error.rule == "syntax.yaml"
    assert error.line >= line_of(text, "min_signal_classes: [1")


def test_bad_indentation_reports_its_line():
    text = "schema_version: 1\ntier_rules:\n  default: T0\n   admin_roles: T2\n"
    error = rejection(text).errors[0]
    assert (error.rule, error.line) == ("syntax.yaml", 4)


def test_wrong_type_points_at_the_value():
    text = edited("    approvals_required: 1\n", "    approvals_required: one\n")
    assert_error(
        text,
        "schema.type",
        "$.tiers.T1.approvals_required",
        line_of(text, "approvals_required: one"),
    )


def test_unknown_key_points_at_the_key():
    text = edited("    approvals_required: 1\n", "    approvals_required: 1\n    approvals: 3\n")
    assert_error(
        text, "schema.additionalProperties", "$.tiers.T1.approvals", line_of(text, "approvals: 3")
    )


def test_unknown_tier_and_case_type_point_at_the_key():
    text = edited("tiers:\n", "tiers:\n  T3:\n    min_signal_classes: 3\n")
    assert_error(text, "schema.enum", "$.tiers.T3", line_of(text, "  T3:"))
    text = edited("case_types:\n", "case_types:\n  pizza_order:\n    min_signal_classes: 3\n")
    assert_error(text, "schema.enum", "$.case_types.pizza_order", line_of(text, "pizza_order"))


def test_missing_required_field_in_defaults():
    text = edited("  s5_waives_cooling_off: true\n", "")
    errors = rejection(text).errors
    assert any(
        e.rule == "schema.required"
        and e.path == "$.defaults"
        and "s5_waives_cooling_off" in e.message
        for e in errors
    )


def test_unknown_role_is_a_schema_error():
    text = edited(
        "    approver_roles: [security_officer]\n", "    approver_roles: [security_officr]\n"
    )
    assert_error(
        text,
        "schema.enum",
        "$.case_types.exception.approver_roles[0]",
        line_of(text, "security_officr"),
    )


def test_duplicate_key_is_refused_at_the_second_occurrence():
    text = edited(
        "    approvals_required: 1\n", "    approvals_required: 1\n    approvals_required: 0\n"
    )
    assert_error(
        text,
        "syntax.duplicate_key",
        "$.tiers.T1.approvals_required",
        line_of(text, "approvals_required: 0", after="  T1:"),
    )


def test_merge_keys_and_custom_tags_are_refused():
    text = "schema_version: 1\nbase: &b {x: 1}\nother:\n  <<: *b\n"
    assert rejection(text).errors[0].rule == "syntax.key"
    text = "schema_version: !!python/name:os.system 1\n"
    assert rejection(text).errors[0].rule == "syntax.value"


def test_alias_bomb_is_refused():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name in "bcdefgh":
        previous = chr(ord(name) - 1)
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    assert rejection(text).errors[0].rule == "syntax.too_large"


def test_empty_and_non_mapping_documents_are_refused():
    assert rejection("   \n").errors[0].rule == "syntax.empty"
    assert rejection("- just\n- a list\n").errors[0].rule == "schema.type"


def test_json_document_is_accepted_and_errors_carry_lines():
    data = yaml.safe_load(DEFAULT)
    text = json.dumps(data, indent=2)
    assert validate(text).format == "json"
    data["tiers"]["T2"]["approvals_required"] = 1
    text = json.dumps(data, indent="\t")
    assert_error(
        text,
        "R-16.T2.approvals_required",
        "$.tiers.T2.approvals_required",
        line_of(text, '"approvals_required": 1', after='\t\t"T2"'),
    )


def test_malformed_json_reports_its_line():
    text = '{\n  "schema_version": 1,\n  "tier_rules": {,\n}\n'
    error = rejection(text).errors[0]
    assert (error.rule, error.line) == ("syntax.json", 3)


def test_duplicate_key_in_json_is_refused_with_its_line():
    text = '{\n  "schema_version": 1,\n  "schema_version": 2\n}\n'
    assert_error(text, "syntax.duplicate_key", "$.schema_version", 3)


# --- requirements --------------------------------------------------------------------------


def test_requirements_follow_the_tier_matrix():
    policy = platform_default()
    t0 = policy.requirements("T0", "password_reset")
    assert (t0.min_signal_classes, t0.accepted_classes) == (1, ("S1", "S2", "S3", "S5"))
    assert (t0.approvals_required, t0.cooling_off_seconds) == (0, 0)
    t1 = policy.requirements("T1", "mfa_reset")
    assert (t1.min_signal_classes, t1.s4_alone_suffices, t1.approvals_required) == (2, True, 1)
    assert "supervisor" in t1.approver_roles and t1.tenant_approver_required_when_msp
    assert t1.cooling_off_seconds > 0 and not t1.security_officer_required
    t2 = policy.requirements("T2", "password_reset")
    assert (t2.approvals_required, t2.min_security_officer_approvals) == (2, 1)
    assert t2.security_officer_required and t2.cooling_off_seconds > 0
    exception = policy.requirements("T0", "exception")
    assert exception.approver_roles == ("security_officer",)
    assert exception.min_security_officer_approvals == 2 and not exception.s5_waives_cooling_off
    assert t0.lifetimes.sms == 600 and t0.lifetimes.temporary_access_pass == 3600
    assert (t0.max_failed_attempts, t0.repeat_case_window_seconds) == (5, 86400)


def test_most_specific_layer_wins():
    text = edited(
        "    cooling_off_seconds: 3600\n",
        "    cooling_off_seconds: 3600\n    case_types:\n      mfa_reset:\n"
        "        cooling_off_seconds: 7200\n        artifact_lifetimes: {sms: 300}\n",
    )
    text = edited(
        "\ncase_types:\n", "\ncase_types:\n  mfa_reset:\n    cooling_off_seconds: 18000\n", text
    )
    policy = policy_from_source(text, number=1, version_id=None)
    assert policy.requirements("T1", "mfa_reset").cooling_off_seconds == 7200
    assert policy.requirements("T1", "mfa_reset").lifetimes.sms == 300
    assert policy.requirements("T1", "mfa_reset").lifetimes.email == 86400
    assert policy.requirements("T2", "mfa_reset").cooling_off_seconds == 18000
    assert policy.requirements("T1", "unlock").cooling_off_seconds == 3600


def test_requirements_refuse_unknown_tier_or_case_type():
    from tenants.exceptions import InvalidInput

    with pytest.raises(InvalidInput, match="tier"):
        platform_default().requirements("T9", "unlock")
    with pytest.raises(InvalidInput, match="case type"):
        platform_default().requirements("T0", "coffee")


def test_evidence_counts_distinct_accepted_classes_or_s4_alone():
    t1 = platform_default().requirements("T1", "password_reset")
    assert not t1.evidence_met(["S2", "S2"])
    assert t1.evidence_met(["S2", "S5"])
    assert t1.evidence_met(["S4"])
    assert not t1.evidence_met(["S2", "kba"])
    t0 = platform_default().requirements("T0", "password_reset")
    assert t0.evidence_met(["S1"]) and not t0.evidence_met(["S4"])


# --- tiers from authoritative attributes ----------------------------------------------------


def account(**attributes) -> ProtectedAccount:
    return ProtectedAccount(external_id="x", username="x", display_name="x", **attributes)


@pytest.mark.parametrize(
    ("attributes", "tier", "rule"),
    [
        ({}, "T0", "tier_rules.default"),
        ({"admin_roles": ["Global Administrator"]}, "T2", "tier_rules.admin_roles"),
        ({"groups": ["HelpDesk"]}, "T2", "tier_rules.groups.T2"),
        ({"groups": ["msp-staff"]}, "T2", "tier_rules.groups.T2"),
        ({"groups": ["security"]}, "T2", "tier_rules.groups.T2"),
        ({"person_id": uuid.uuid4()}, "T2", "tier_rules.staff_subject"),
        ({"groups": ["Executives"]}, "T1", "tier_rules.groups.T1"),
        ({"groups": ["finance"]}, "T1", "tier_rules.groups.T1"),
        ({"mailbox_type": "shared"}, "T1", "tier_rules.mailbox_types.shared"),
        ({"mailbox_type": "functional"}, "T1", "tier_rules.mailbox_types.functional"),
        ({"delegations": ["boss-1"]}, "T1", "tier_rules.delegations"),
        ({"groups": ["sales", "marketing"]}, "T0", "tier_rules.default"),
    ],
)
def test_compute_tier_rule(attributes, tier, rule):
    computed, reasons = platform_default().compute_tier(account(**attributes))
    assert computed == tier
    assert reasons[0].startswith(rule), reasons


def test_highest_matching_tier_wins_and_every_match_is_listed():
    subject = account(groups=["executives"], mailbox_type="shared", admin_roles=["User Admin"])
    tier, reasons = platform_default().compute_tier(subject)
    assert tier == "T2"
    assert reasons[0].startswith("tier_rules.admin_roles") and reasons[0].endswith("-> T2")
    assert any(r.startswith("tier_rules.groups.T1") for r in reasons)
    assert any(r.startswith("tier_rules.mailbox_types.shared") for r in reasons)


def test_tier_rules_come_from_the_document():
    text = edited("    T1: [executives, finance, payments, payroll]\n", "    T1: [board]\n")
    text = edited("  default: T0\n", "  default: T1\n", text)
    policy = policy_from_source(text, number=2, version_id=None)
    assert policy.compute_tier(account(groups=["finance"])) == (
        "T1",
        ["tier_rules.default: every account is at least T1"],
    )
    tier, reasons = policy.compute_tier(account(groups=["Board"]))
    assert tier == "T1" and reasons[0].startswith("tier_rules.groups.T1: member of board")
    assert policy.compute_tier(account(groups=["helpdesk"]))[0] == "T2"

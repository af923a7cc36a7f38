"""The shape of a policy document, as a JSON Schema (draft 2020-12).

The schema checks structure and types only. What a value may be *at least* (the platform
floors) lives in `floors.py`, so that a weak value is refused naming the rule it breaks, and a
knowledge question listed as a method is refused as R-02 rather than as an unknown word.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from recovery.cases.methods import METHOD_NAMES
from recovery.choices import MailboxType
from tenants.choices import CaseType, Role, StepUpKind, Tier

from .document import ParsedDocument, Path
from .errors import PolicyError

SCHEMA_VERSION = 1
LIFETIME_KEYS = ("sms", "voice", "email", "temporary_access_pass")
DAY = 86_400

_TIER = {"enum": Tier.values}
_SECONDS = {"type": "integer", "minimum": 0, "maximum": 366 * DAY}
_COUNT = {"type": "integer", "minimum": 0, "maximum": 10}
_BOOL = {"type": "boolean"}
_UNIQUE_TEXTS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 256},
    "uniqueItems": True,
}


def _lifetimes(*, complete: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {key: {"type": "integer", "minimum": 1} for key in LIFETIME_KEYS},
        "additionalProperties": False,
    }
    if complete:
        schema["required"] = list(LIFETIME_KEYS)
    return schema


# Optional: absent, rules.py derives them (floors.approval_lifetime_default, step_up_default,
# floors.REESTABLISHMENT_WINDOW_DEFAULT, floors.ROLE_REGRANT_MAX_DEFAULT).
OPTIONAL_FIELDS = frozenset(
    {
        "accepted_methods",
        "approval_lifetime_seconds",
        "step_up",
        "case_idle_limit_seconds",
        "reestablishment_window_seconds",
        "role_regrant_max_seconds",
        "push_denial_lookback_seconds",
        "caller_reuse_window_seconds",
        "caller_reuse_subjects",
        "min_review_seconds",
    }
)
# An open case idle this long expires (the `expire` sweep); absent, the default applies.
CASE_IDLE_LIMIT_DEFAULT = 14 * DAY
# Detection (recovery.detection) when a policy does not say: R-55 (e) looks 24 h back for an MFA
# push-denial burst; R-55 (d) fires when one caller identifier reaches 2 subjects in 24 h.
PUSH_DENIAL_LOOKBACK_DEFAULT = DAY
CALLER_REUSE_WINDOW_DEFAULT = DAY
CALLER_REUSE_SUBJECTS_DEFAULT = 2
# a decision made this soon after the approver first opened the review page alerts.
MIN_REVIEW_SECONDS_DEFAULT = 30
CASE_IDLE_LIMIT = {"type": "integer", "minimum": 3600, "maximum": 90 * DAY}

# WebAuthn attestation statement formats (W3C WebAuthn Level 3, section 8).
ATTESTATION_FORMATS = (
    "none",
    "packed",
    "tpm",
    "android-key",
    "android-safetynet",
    "fido-u2f",
    "apple",
)
# Optional; rules.OwnerPortalRules holds the defaults. The minimums are platform floors.
OWNER_PORTAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "allowed_attestation_formats": {
            "type": "array",
            "items": {"enum": list(ATTESTATION_FORMATS)},
            "uniqueItems": True,
            "minItems": 1,
        },
        "password_min_length": {"type": "integer", "minimum": 12, "maximum": 128},
        "confirmation_lifetime_seconds": {"type": "integer", "minimum": 60, "maximum": 900},
        "enrolment_link_lifetime_seconds": {"type": "integer", "minimum": 300, "maximum": DAY},
    },
}


# Time-bound mailbox delegation (issue 14): how long a delegation lasts when the request names
# no length, and the longest a tenant allows; both under the platform ceiling (our choice).
DELEGATION_LIFETIME_CEILING = 30 * DAY
MAILBOX_DELEGATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "default_lifetime_seconds": {
            "type": "integer",
            "minimum": 3600,
            "maximum": DELEGATION_LIFETIME_CEILING,
        },
        "max_lifetime_seconds": {
            "type": "integer",
            "minimum": 3600,
            "maximum": DELEGATION_LIFETIME_CEILING,
        },
    },
}


def _requirements(*, complete: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        # Items are any text here: floors.py refuses anything but S1-S5 naming the rule (R-01,
        # or R-02 for what is not a signal at all), so the author learns why, not "not an enum".
        "accepted_classes": {**_UNIQUE_TEXTS, "minItems": 1},
        # Optional (all of the catalogue by default). The same: floors.py refuses a name outside
        # the closed catalogue (recovery/cases/methods.py) as R-02, and `examples` lists it.
        "accepted_methods": {**_UNIQUE_TEXTS, "minItems": 1, "examples": [list(METHOD_NAMES)]},
        "min_signal_classes": _COUNT,
        "s4_alone_suffices": _BOOL,
        "approvals_required": _COUNT,
        "approver_roles": {"type": "array", "items": {"enum": Role.values}, "uniqueItems": True},
        "min_security_officer_approvals": _COUNT,
        "tenant_approver_required_when_msp": _BOOL,
        "cooling_off_seconds": _SECONDS,
        "s5_waives_cooling_off": _BOOL,
        "quarantine_seconds": _SECONDS,
        "artifact_lifetimes": _lifetimes(complete=complete),
        "max_failed_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "repeat_case_window_seconds": _SECONDS,
        "repeat_after_denial_window_seconds": _SECONDS,
        # Detection thresholds (optional; floors.py keeps them at least as strict as R-55).
        "push_denial_lookback_seconds": _SECONDS,
        "caller_reuse_window_seconds": _SECONDS,
        "caller_reuse_subjects": {"type": "integer", "minimum": 2, "maximum": 100},
        "min_review_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "case_idle_limit_seconds": CASE_IDLE_LIMIT,
        # How long after a recovery changes are undone and freeze the account; 0 is
        # none. floors.py keeps T1 and T2 at 24 h or more.
        "reestablishment_window_seconds": _SECONDS,
        # The longest a privileged_role_restore case grants suspended roles back: the
        # restore asks for a length up to it. floors.py keeps it at 90 days or less.
        "role_regrant_max_seconds": {"type": "integer", "minimum": 3600, "maximum": 366 * DAY},
        # How long an approval counts; floors.py bounds it by the platform maximum and
        # the cooling-off, naming the rule.
        "approval_lifetime_seconds": {"type": "integer", "minimum": 60, "maximum": 366 * DAY},
        # The step-up kinds an approver may use; floors.py keeps T2 to passkeys.
        "step_up": {
            "type": "array",
            "items": {"enum": StepUpKind.values},
            "uniqueItems": True,
            "minItems": 1,
        },
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if complete:
        schema["required"] = [name for name in properties if name not in OPTIONAL_FIELDS]
    return schema


REQUIREMENT_FIELDS = tuple(_requirements(complete=True)["properties"])
_PARTIAL = _requirements(complete=False)
_BY_CASE_TYPE = {
    "type": "object",
    "propertyNames": {"enum": CaseType.values},
    "additionalProperties": _PARTIAL,
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Vouchsafe tenant recovery policy",
    "type": "object",
    "required": ["schema_version", "tier_rules", "defaults"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "description": {"type": "string", "maxLength": 2000},
        "tier_rules": {
            "type": "object",
            "required": [
                "default",
                "admin_roles",
                "staff_subject",
                "delegations",
                "mailbox_types",
                "groups",
            ],
            "additionalProperties": False,
            "properties": {
                "default": _TIER,
                "admin_roles": _TIER,
                "staff_subject": _TIER,
                "delegations": _TIER,
                "mailbox_types": {
                    "type": "object",
                    "required": [MailboxType.SHARED.value, MailboxType.FUNCTIONAL.value],
                    "propertyNames": {"enum": MailboxType.values},
                    "additionalProperties": _TIER,
                },
                "groups": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"T1": _UNIQUE_TEXTS, "T2": _UNIQUE_TEXTS},
                },
            },
        },
        "defaults": _requirements(complete=True),
        "tiers": {
            "type": "object",
            "propertyNames": {"enum": Tier.values},
            "additionalProperties": {
                **_PARTIAL,
                "properties": {**_PARTIAL["properties"], "case_types": _BY_CASE_TYPE},
            },
        },
        "case_types": _BY_CASE_TYPE,
        "owner_portal": OWNER_PORTAL_SCHEMA,
        "mailbox_delegation": MAILBOX_DELEGATION_SCHEMA,
    },
}

_VALIDATOR = Draft202012Validator(SCHEMA)


def _located(error: ValidationError) -> tuple[Path, str]:
    """The path an error is best reported at, and its message."""
    path: Path = tuple(error.absolute_path)
    if "propertyNames" in error.schema_path:
        return (*path, str(error.instance)), f"Key {error.message}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(key for key in error.instance if key not in allowed)
        if extra:
            return (
                *path,
                extra[0],
            ), f"Unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}."
    return path, error.message


def schema_errors(doc: ParsedDocument) -> list[PolicyError]:
    """Every schema violation in `doc`, in document order."""
    found: dict[tuple[str, str], PolicyError] = {}
    for error in _VALIDATOR.iter_errors(doc.data):
        path, message = _located(error)
        problem = doc.error(path, message, f"schema.{error.validator}")
        found.setdefault((problem.path, problem.message), problem)
    return sorted(found.values(), key=lambda e: (e.line, e.path))

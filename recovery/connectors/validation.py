"""Connector settings, checked per kind and per field, returned with every default filled in.

A problem is reported against the setting's name (`field_errors={"server_uri": [...]}`) and
nothing is stored. No setting holds a secret: passwords and signing keys are named environment
variables (`bind_password_env`, `secret_env`) read when they are used.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from tenants.choices import CaseType
from tenants.exceptions import InvalidInput

from .choices import ConnectorKind, Directory, ManualConsole, PasswordMode

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]{0,63}|\d+(?:\.\d+)+)$")
USER_PLACEHOLDERS = frozenset({"username", "external_id"})
STEP_PLACEHOLDERS = frozenset({"username", "external_id", "display_name"})
MAX_URL_LENGTH = 2000
MAX_STEPS, MAX_STEP_LENGTH = 10, 300
MANUAL_OPERATIONS = frozenset({*CaseType.values, "revert", "revoke_temporary_access"})
UF_DONT_EXPIRE_PASSWD = 0x10000  # userAccountControl: "password never expires" defeats must-change

# Per directory, what an LDAP connector writes unless the tenant says otherwise.
LDAP_DEFAULTS: dict[str, dict[str, Any]] = {
    Directory.OPENLDAP: {
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "password_mode": PasswordMode.LOCK.value,
        "password_attribute": "userPassword",
        "must_change_attribute": "shadowLastChange",
        "must_change_value": "0",
        "must_change_object_class": "shadowAccount",
        "uac_clear_bits": 0,
        "unlock_attribute": "",
        "unlock_value": "",
    },
    Directory.ACTIVE_DIRECTORY: {
        "user_filter": "(&(objectClass=user)(userPrincipalName={username}))",
        "password_mode": PasswordMode.RANDOM.value,
        "password_attribute": "unicodePwd",
        "must_change_attribute": "pwdLastSet",
        "must_change_value": "0",
        "must_change_object_class": "",
        "uac_clear_bits": UF_DONT_EXPIRE_PASSWD,
        "unlock_attribute": "lockoutTime",
        "unlock_value": "0",
    },
}
LDAP_COMMON_DEFAULTS: dict[str, Any] = {
    "directory": Directory.OPENLDAP.value,
    "start_tls": False,
    "tls_ca_file": "",
    "allow_unencrypted": False,
    "timeout_seconds": 10,
    "temporary_access_group_dn": "",
    "group_member_attribute": "member",
    "temporary_access_attribute": "",
    "temporary_access_value": "",
    # the groups whose membership is a standing admin role, separated by ";"
    "admin_group_dns": "",
}
LDAP_REQUIRED = ("server_uri", "bind_dn", "bind_password_env", "base_dn")


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(self.fields.items()))
            raise InvalidInput(
                f"The connector settings are not valid ({summary}).",
                code="connector.settings_invalid",
                field_errors=self.fields,
            )


def _placeholders(template: str) -> set[str] | None:
    """The `{name}` fields of a template, or None when it does not parse as one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    names = set()
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            return None
        names.add(name)
    return names


def _text(value: Any, limit: int = 500) -> str | None:
    if not isinstance(value, str) or len(value) > limit:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    return value.strip()


def _check_dn(errors: _Errors, name: str, value: str, *, required: bool) -> None:
    if not value:
        if required:
            errors.add(name, "Give a distinguished name (e.g. dc=example,dc=com).")
        return
    try:
        parse_dn(value)
    except (LDAPInvalidDnError, ValueError, IndexError):
        errors.add(name, "Not a valid distinguished name.")


def _check_attribute(errors: _Errors, name: str, value: str) -> None:
    if value and not ATTRIBUTE.match(value):
        errors.add(name, "Give an attribute name (letters, digits, '-') or an OID.")


def _check_filter(errors: _Errors, value: str) -> None:
    names = _placeholders(value)
    if names is None or not names or not names <= USER_PLACEHOLDERS:
        errors.add(
            "user_filter",
            "Use {username} and/or {external_id} (nothing else in braces); "
            "the account's value is escaped when it is put in.",
        )
        return
    depth = 0
    for ch in value:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
    if not (value.startswith("(") and value.endswith(")")) or depth != 0:
        errors.add("user_filter", "Give one LDAP filter in balanced parentheses.")


def _check_server_uri(errors: _Errors, value: str) -> str:
    """The scheme of a valid ldap(s):// URI, or "" after recording the problem."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        errors.add("server_uri", "The URI cannot be parsed.")
        return ""
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        errors.add("server_uri", "Give ldap://host[:port] or ldaps://host[:port].")
        return ""
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        errors.add("server_uri", "Only a scheme, a host and a port; nothing else.")
        return ""
    return parts.scheme


def _typed(errors: _Errors, data: dict[str, Any], name: str, kind: type) -> Any:
    value = data[name]
    if kind is bool and not isinstance(value, bool):
        errors.add(name, "Give true or false.")
    elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        errors.add(name, "Give a whole number.")
    elif kind is str:
        cleaned = _text(value)
        if cleaned is None:
            errors.add(name, "Give text of at most 500 characters, without control characters.")
            return ""
        return cleaned
    return value


def _validate_ldap(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    directory = raw.get("directory", LDAP_COMMON_DEFAULTS["directory"])
    if directory not in Directory.values:
        errors.add("directory", f"One of {', '.join(Directory.values)}.")
        directory = Directory.OPENLDAP
    known = {*LDAP_REQUIRED, *LDAP_COMMON_DEFAULTS, *LDAP_DEFAULTS[Directory.OPENLDAP]}
    for name in sorted(set(raw) - known):
        errors.add(name, "Unknown setting.")
    data = {**LDAP_COMMON_DEFAULTS, **LDAP_DEFAULTS[directory], **raw, "directory": directory}
    for name in LDAP_REQUIRED:
        if name not in raw:
            errors.add(name, "This setting is required.")
            data[name] = ""
    for name in sorted(known - {"directory"}):
        default = LDAP_COMMON_DEFAULTS.get(name, LDAP_DEFAULTS[Directory.OPENLDAP].get(name, ""))
        data[name] = _typed(errors, data, name, type(default))

    scheme = _check_server_uri(errors, data["server_uri"]) if data["server_uri"] else ""
    if not data["server_uri"] and "server_uri" in raw:
        errors.add("server_uri", "Give ldap://host[:port] or ldaps://host[:port].")
    _check_dn(errors, "bind_dn", data["bind_dn"], required="bind_dn" in raw)
    _check_dn(errors, "base_dn", data["base_dn"], required="base_dn" in raw)
    _check_dn(
        errors, "temporary_access_group_dn", data["temporary_access_group_dn"], required=False
    )
    for group in data["admin_group_dns"].split(";") if data["admin_group_dns"] else []:
        _check_dn(errors, "admin_group_dns", group.strip(), required=True)
    if "bind_password_env" in raw and not ENV_NAME.match(data["bind_password_env"]):
        errors.add(
            "bind_password_env",
            "Name the environment variable that holds the bind password (A-Z, 0-9, _); "
            "never the password itself.",
        )
    _check_filter(errors, data["user_filter"])
    for name in (
        "password_attribute",
        "must_change_attribute",
        "must_change_object_class",
        "unlock_attribute",
        "group_member_attribute",
        "temporary_access_attribute",
    ):
        _check_attribute(errors, name, data[name])

    encrypted = scheme == "ldaps" or data["start_tls"] is True
    if scheme == "ldaps" and data["start_tls"] is True:
        errors.add("start_tls", "ldaps:// is already encrypted; StartTLS is for ldap://.")
    if scheme == "ldap" and not encrypted and data["allow_unencrypted"] is not True:
        errors.add(
            "server_uri",
            "The bind password would cross the network in clear: use ldaps:// or start_tls "
            "(or set allow_unencrypted for a directory on the same host).",
        )
    if data["tls_ca_file"] and not data["tls_ca_file"].startswith("/"):
        errors.add("tls_ca_file", "Give an absolute path to a PEM file of CA certificates.")
    if isinstance(data["timeout_seconds"], int) and not 1 <= data["timeout_seconds"] <= 60:
        errors.add("timeout_seconds", "Between 1 and 60 seconds.")
    if isinstance(data["uac_clear_bits"], int) and not 0 <= data["uac_clear_bits"] < 2**31:
        errors.add("uac_clear_bits", "A userAccountControl bit mask (0 to 2^31-1).")

    mode = data["password_mode"]
    if mode not in PasswordMode.values:
        errors.add("password_mode", f"One of {', '.join(PasswordMode.values)}.")
    elif mode != PasswordMode.NONE and not data["password_attribute"]:
        errors.add("password_attribute", "Name the password attribute, or use password_mode none.")
    elif data["password_attribute"].lower() == "unicodepwd":
        if mode == PasswordMode.LOCK:
            errors.add(
                "password_mode",
                "Active Directory stores only real passwords in unicodePwd: use random.",
            )
        elif mode == PasswordMode.RANDOM and not encrypted:
            errors.add(
                "password_mode",
                "Active Directory accepts a password only over an encrypted connection: "
                "use ldaps:// or start_tls.",
            )
    for attribute, value in (
        ("must_change_attribute", "must_change_value"),
        ("unlock_attribute", "unlock_value"),
        ("temporary_access_attribute", "temporary_access_value"),
    ):
        if data[attribute] and not data[value]:
            errors.add(value, f"Give the value to write into {data[attribute]}.")
        if not data[attribute]:
            data[value] = ""
    if data["temporary_access_group_dn"] and data["temporary_access_attribute"]:
        errors.add(
            "temporary_access_attribute",
            "Give a temporary-access group or an attribute, not both.",
        )
    return data


def _validate_webhook(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    for name in sorted(set(raw) - {"url", "secret_env"}):
        errors.add(name, "Unknown setting.")
    url, secret_env = raw.get("url"), raw.get("secret_env")
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        errors.add("url", f"Give an http(s) URL of at most {MAX_URL_LENGTH} characters.")
        url = ""
    elif any(ch.isspace() or ord(ch) < 32 for ch in url):
        errors.add("url", "The URL may not contain spaces or control characters.")
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018
        except ValueError:
            errors.add("url", "The URL cannot be parsed.")
        else:
            private_ok = bool(getattr(django_settings, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False))
            allowed = ("https", "http") if private_ok else ("https",)
            if parts.scheme not in allowed or not parts.hostname:
                errors.add("url", "Give an https URL with a host.")
            elif parts.username is not None or parts.password is not None:
                errors.add("url", "No credentials in the URL; the request is signed instead.")
            elif parts.fragment:
                errors.add("url", "The URL may not have a #fragment.")
    if not isinstance(secret_env, str) or not ENV_NAME.match(secret_env):
        errors.add(
            "secret_env",
            "Name the environment variable that holds the signing key (A-Z, 0-9, _).",
        )
    return {"url": url, "secret_env": secret_env if isinstance(secret_env, str) else ""}


def _validate_manual(raw: dict[str, Any], errors: _Errors) -> dict[str, Any]:
    for name in sorted(set(raw) - {"console", "steps"}):
        errors.add(name, "Unknown setting.")
    console = raw.get("console", ManualConsole.GENERIC.value)
    if console not in ManualConsole.values:
        errors.add("console", f"One of {', '.join(ManualConsole.values)}.")
    steps = raw.get("steps", {})
    cleaned: dict[str, list[str]] = {}
    if not isinstance(steps, dict):
        errors.add("steps", "Give an object: case type → list of steps.")
        steps = {}
    for case_type, items in steps.items():
        name = f"steps.{case_type}"
        if case_type not in MANUAL_OPERATIONS:
            errors.add(name, "Not a case type (or revert, revoke_temporary_access).")
            continue
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_STEPS:
            errors.add(name, f"Give 1 to {MAX_STEPS} steps.")
            continue
        cleaned[case_type] = []
        for item in items:
            text = _text(item, MAX_STEP_LENGTH)
            names = _placeholders(text) if text else None
            if not text or names is None or not names <= STEP_PLACEHOLDERS:
                errors.add(
                    name,
                    f"Each step is text of at most {MAX_STEP_LENGTH} characters; it may use "
                    "{username}, {external_id} and {display_name}.",
                )
                break
            cleaned[case_type].append(text)
    return {"console": console, "steps": cleaned}


VALIDATORS: dict[str, Callable[[dict[str, Any], _Errors], dict[str, Any]]] = {
    ConnectorKind.MANUAL: _validate_manual,
    ConnectorKind.LDAP: _validate_ldap,
    ConnectorKind.WEBHOOK: _validate_webhook,
}


def _cloud_validators() -> dict[str, Callable[[dict[str, Any], _Errors], dict[str, Any]]]:
    """The cloud connectors' validators, each next to its connector (which imports this
    module's helpers, hence the late import)."""
    from .entra import validate_entra_settings
    from .google_workspace import validate_google_settings
    from .okta import validate_okta_settings

    return {
        ConnectorKind.ENTRA: validate_entra_settings,
        ConnectorKind.OKTA: validate_okta_settings,
        ConnectorKind.GOOGLE: validate_google_settings,
    }


def validate_settings(kind: str, raw: Any) -> dict[str, Any]:
    """`raw` checked for `kind`, with defaults filled in; InvalidInput lists every problem."""
    if kind not in ConnectorKind.values:
        raise InvalidInput(
            f"The connector kind must be one of {', '.join(ConnectorKind.values)}.",
            code="connector.kind_invalid",
            field_errors={"kind": ["Unknown connector kind."]},
        )
    if not isinstance(raw, dict):
        raise InvalidInput(
            "The connector settings must be an object.",
            code="connector.settings_invalid",
            field_errors={"settings": ["Give an object."]},
        )
    errors = _Errors()
    data = {**VALIDATORS, **_cloud_validators()}[kind](raw, errors)
    errors.raise_if_any()
    return data

"""What of a connector configuration may be shown on a page, over the API and in an audit event.

A configuration holds no secret (passwords, keys and tokens are named environment variables or
files), but a URL's path or query may be the receiver's own credential (a webhook URL with a
token in it). So each setting is shown by a declared rule, per kind:

- `plain`: the value as stored;
- `origin`: the URL's origin and a SHA-256 of the whole URL, never its path;
- anything not declared (a new kind, a new setting) shows only a SHA-256 of its value, so a
  change is still visible in a diff without the value ever leaving the database.

Pure functions: no database, no network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..addresses import url_origin

PLAIN, ORIGIN = "plain", "origin"

# kind -> setting -> how it is shown. Extend it with each new kind's settings.
SHOWN: dict[str, dict[str, str]] = {
    "manual": {"console": PLAIN, "steps": PLAIN},
    "ldap": {
        name: PLAIN
        for name in (
            "directory",
            "server_uri",  # validation keeps it to scheme://host[:port]
            "start_tls",
            "tls_ca_file",
            "allow_unencrypted",
            "timeout_seconds",
            "base_dn",
            "bind_dn",
            "bind_password_env",
            "user_filter",
            "password_mode",
            "password_attribute",
            "must_change_attribute",
            "must_change_value",
            "must_change_object_class",
            "uac_clear_bits",
            "unlock_attribute",
            "unlock_value",
            "temporary_access_group_dn",
            "admin_group_dns",
            "group_member_attribute",
            "temporary_access_attribute",
            "temporary_access_value",
        )
    },
    "webhook": {"url": ORIGIN, "secret_env": PLAIN},
    "entra": {
        "tenant_id": PLAIN,
        "client_id": PLAIN,
        "client_secret_env": PLAIN,
        "authority_host": ORIGIN,
        "graph_url": ORIGIN,
        "ca_bundle": PLAIN,
        "tap_lifetime_minutes": PLAIN,
        "privileged_roles": PLAIN,
    },
    "okta": {
        "org_url": ORIGIN,
        "client_id": PLAIN,
        "key_id": PLAIN,
        "private_key_env": PLAIN,
        "private_key_file": PLAIN,
        "api_token_env": PLAIN,
        "manage_roles": PLAIN,
    },
    "google_workspace": {
        "customer_id": PLAIN,
        "admin_email": PLAIN,
        "service_account_key_file": PLAIN,
        "service_account_key_env": PLAIN,
        "token_uri": ORIGIN,
        "api_endpoint": ORIGIN,
        "manage_roles": PLAIN,
        "manage_delegates": PLAIN,
        "gmail_endpoint": ORIGIN,
    },
}


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def settings_sha256(settings: dict[str, Any]) -> str:
    """A fingerprint of validated settings (the same settings always give the same one)."""
    return _sha256(settings)


def configuration_sha256(kind: str, settings: dict[str, Any], is_active: bool) -> str:
    """A fingerprint of a whole configuration: kind, settings and whether it is active."""
    return _sha256({"kind": kind, "settings": settings, "is_active": is_active})


def _shown(rule: str, value: Any) -> Any:
    if rule == PLAIN:
        return value
    if rule == ORIGIN and isinstance(value, str):
        if not value:
            return ""
        return {"origin": url_origin(value), "sha256": hashlib.sha256(value.encode()).hexdigest()}
    return {"sha256": _sha256(value)}


def shown_in_full(kind: str, name: str, value: Any) -> bool:
    """Whether the summary of `kind` shows this setting's value whole: a plain setting, or a URL
    that is nothing but its origin (a vendor endpoint, which validation keeps to one). Only such
    a value may be put back into a form, since it reveals nothing the summary does not."""
    rule = SHOWN.get(kind, {}).get(name)
    if rule == ORIGIN:
        return isinstance(value, str) and bool(value) and url_origin(value) == value
    return rule == PLAIN


def settings_summary(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting of `kind`, each shown by its rule: no secret and no URL path."""
    rules = SHOWN.get(kind, {})
    return {name: _shown(rules.get(name, ""), settings[name]) for name in sorted(settings)}


def shown_text(value: Any) -> str:
    """One summary value as a line of text for a page."""
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) <= {"origin", "sha256"}:
        digest = f"sha256:{value['sha256'][:16]}"
        return f"{value['origin']} ({digest})" if value.get("origin") else digest
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class DiffRow:
    """One setting (or `kind` / `is_active`) as configured now and as proposed."""

    name: str
    current: Any
    proposed: Any

    @property
    def changed(self) -> bool:
        return self.current != self.proposed

    def as_dict(self) -> dict[str, Any]:
        return {
            "setting": self.name,
            "current": self.current,
            "proposed": self.proposed,
            "changed": self.changed,
        }


def summary_diff(
    current: tuple[str, dict[str, Any], bool] | None,
    proposed: tuple[str, dict[str, Any], bool],
) -> list[DiffRow]:
    """The proposed configuration (kind, settings, is_active) beside the current one (None
    when there is none), setting by setting, both sides shown by `settings_summary`."""
    kind, settings, is_active = proposed
    before = settings_summary(current[0], current[1]) if current else {}
    after = settings_summary(kind, settings)
    rows = [
        DiffRow("kind", current[0] if current else None, kind),
        DiffRow("is_active", current[2] if current else None, is_active),
    ]
    rows += [
        DiffRow(name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
    ]
    return rows

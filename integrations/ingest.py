"""The shape of each ingested event's `data`: one small schema per type, checked field by field.

A refusal names every bad field as `data.<field>` (or `data` / `event_type`), so a sender can
fix them all at once. Unknown fields are refused rather than stored unchecked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenants.exceptions import InvalidInput

from .choices import IngestEventType

MAX_TEXT = 200


@dataclass(frozen=True)
class Field:
    kind: type  # str or int
    required: bool = True
    min_value: int | None = None
    max_value: int | None = None
    check: Callable[[Any], str | None] | None = None


def _last4(value: str) -> str | None:
    return None if re.fullmatch(r"\d{4}", value) else "Exactly four digits."


def _country(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{2}", value) else "An ISO 3166-1 alpha-2 code, e.g. GB."


def _ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "An IPv4 or IPv6 address."
    return None


def _email(value: str) -> str | None:
    return None if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) else "An email address."


NETWORK_KINDS = ("anonymizing_proxy", "tor", "residential_vpn", "hosting_vpn")


def _network_kind(value: str) -> str | None:
    return None if value in NETWORK_KINDS else f"One of {', '.join(NETWORK_KINDS)}."


SCHEMAS: dict[str, dict[str, Field]] = {
    IngestEventType.MFA_DEVICE_ADDED: {
        "device_type": Field(str),
        "device_id": Field(str, required=False),
    },
    IngestEventType.MAILBOX_RULE_CREATED: {
        "rule_name": Field(str),
        "forwards_to": Field(str, required=False, check=_email),
    },
    IngestEventType.PUSH_DENIED_BURST: {
        "count": Field(int, min_value=1, max_value=1_000_000),
        "window_seconds": Field(int, min_value=1, max_value=7 * 24 * 3600),
    },
    IngestEventType.SIM_CHANGE: {
        "phone_last4": Field(str, required=False, check=_last4),
    },
    IngestEventType.PORT_OUT: {
        "phone_last4": Field(str, required=False, check=_last4),
    },
    IngestEventType.ADMIN_ROLE_GRANTED: {
        "role": Field(str),
        "role_id": Field(str, required=False),
    },
    IngestEventType.RECOVERY_ADDRESS_CHANGED: {
        "address_type": Field(str),
    },
    IngestEventType.DELEGATE_GRANTED: {
        "delegate": Field(str),
        "permission": Field(str, required=False),
    },
    IngestEventType.OAUTH_CONSENT_GRANTED: {
        "app_id": Field(str),
        "app_name": Field(str, required=False),
    },
    IngestEventType.SIGN_IN_NEW_ASN: {
        "asn": Field(int, min_value=1, max_value=4_294_967_295),
        "country": Field(str, required=False, check=_country),
        "ip": Field(str, required=False, check=_ip),
    },
    IngestEventType.SIGN_IN_ANONYMIZED: {
        "proxy": Field(str, check=_network_kind),
        "asn": Field(int, required=False, min_value=1, max_value=4_294_967_295),
        "country": Field(str, required=False, check=_country),
        "ip": Field(str, required=False, check=_ip),
    },
    IngestEventType.ADMIN_CONSOLE_ACCESS: {
        "console": Field(str),
    },
    IngestEventType.FEDERATION_CHANGED: {
        "change": Field(str),
        "domain": Field(str, required=False),
    },
    IngestEventType.MFA_TROUBLE_REPORTED: {
        "channel": Field(str),
        "ticket": Field(str, required=False),
    },
}


def _field_problem(spec: Field, value: Any) -> str | None:
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "A whole number."
        if spec.min_value is not None and value < spec.min_value:
            return f"At least {spec.min_value}."
        if spec.max_value is not None and value > spec.max_value:
            return f"At most {spec.max_value}."
    else:
        if not isinstance(value, str) or not value.strip():
            return "A non-empty string."
        if len(value) > MAX_TEXT or "\x00" in value:
            return f"At most {MAX_TEXT} characters, no NUL."
    return spec.check(value) if spec.check else None


def event_data_clean(event_type: str, data: Any) -> dict[str, Any]:
    """`data` checked against the schema of `event_type`; raises InvalidInput naming fields."""
    schema = SCHEMAS.get(event_type)
    if schema is None:
        raise InvalidInput(
            f"Unknown event type {event_type!r}.",
            code="event.type_unknown",
            field_errors={"event_type": [f"One of {', '.join(IngestEventType.values)}."]},
        )
    if not isinstance(data, dict):
        raise InvalidInput(
            "The event's data must be an object.",
            code="event.data_invalid",
            field_errors={"data": ["An object."]},
        )
    errors: dict[str, list[str]] = {}
    for name in sorted(set(data) - set(schema), key=str):
        errors[f"data.{name}"] = [f"Not a field of {event_type} events."]
    cleaned: dict[str, Any] = {}
    for name, spec in schema.items():
        value = data.get(name)
        if value is None:
            if spec.required:
                errors[f"data.{name}"] = ["This field is required."]
            continue
        problem = _field_problem(spec, value)
        if problem:
            errors[f"data.{name}"] = [problem]
        else:
            cleaned[name] = value.strip() if isinstance(value, str) else value
    if errors:
        raise InvalidInput(
            f"The data of this {event_type} event is not valid.",
            code="event.data_invalid",
            field_errors=errors,
        )
    return cleaned

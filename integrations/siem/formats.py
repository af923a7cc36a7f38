"""An audit event as the bytes a SIEM collector receives: pure functions, no I/O, no settings.

One event is one RFC 5424 syslog message, framed by octet counting (RFC 6587 3.4.1, as RFC 5425
requires over TLS): `<length> <message>`. Its header carries the event's UTC time with
microseconds, APP-NAME `vouchsafe` and MSGID the action; one structured-data element names the
tenant, the chain seq and the event's hash (a collector de-duplicates on tenant and seq: a
resend carries the same seq and hash). MSG is UTF-8 text without a BOM (RFC 5424 MSG-ANY: CEF
and JSON parsers expect it to start with `CEF:` or `{`), either CEF or OCSF JSON.

Text that callers supplied (actor labels, target names, event data) cannot add a field, a
header or a record (R-49): CEF escapes what its grammar gives meaning to and replaces other
control characters; OCSF is JSON with every non-ASCII character escaped; and no line break
ever reaches the wire unescaped. docs/audit.md ("Streaming to a SIEM") shows both formats.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from audit.models import AuditEvent
from audit.registry import ACTIONS

APP_NAME = "vouchsafe"
VENDOR = PRODUCT = "Vouchsafe"
FACILITY_LOG_AUDIT = 13  # RFC 5424 facility "log audit"
MSGID_MAX = 32  # RFC 5424: MSGID is at most 32 printable ASCII characters
CEF_NAME_MAX = 128
DATA_MAX_CHARS = 4000  # CEF's limit for a custom string; the same cut for OCSF
OCSF_VERSION = "1.1.0"

_OWASP_NAME = re.compile(r"OWASP ([a-z]+(?:_[a-z]+)+)")
_NOT_OK = re.compile(r"fail|refus|denied|reject|violation|blocked|locked|dead|mismatch|expired_")
_HIGH = frozenset(
    {
        "audit.integrity_violation",
        "auth.passkey_suspended",
        "case.fraud_flagged",
        "case.repudiated",
        "evidence.attachment_integrity_failed",
        "owner.account_repudiated",
        "owner.confirmation_repudiated",
        "owner.passkey_clone_detected",
        "token.reuse_attempt",
        "window.account_frozen",
    }
)
# C0 and C1 controls, DEL and the Unicode line and paragraph separators: shown as U+FFFD.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Origin:
    """What every message of this deployment says about its sender."""

    hostname: str  # syslog HOSTNAME
    product_version: str
    sd_id: str  # the structured-data element's id, e.g. "vouchsafe@32473"


class Severity(enum.Enum):
    """(CEF 0-10, syslog severity, OCSF severity_id, OCSF severity)."""

    LOW = (3, 6, 1, "Informational")
    MEDIUM = (6, 4, 3, "Medium")
    HIGH = (9, 2, 4, "High")

    @property
    def cef(self) -> int:
        return self.value[0]

    @property
    def syslog(self) -> int:
        return self.value[1]

    @property
    def ocsf_id(self) -> int:
        return self.value[2]

    @property
    def ocsf_name(self) -> str:
        return self.value[3]


def severity_of(action: str) -> Severity:
    """High for tampering, fraud and repudiation; medium for refusals and failures."""
    if action in _HIGH:
        return Severity.HIGH
    if action == "alert.raised" or _NOT_OK.search(action.partition(".")[2]):
        return Severity.MEDIUM
    return Severity.LOW


def refused(action: str) -> bool:
    """Whether the action records something refused or failed (its outcome for OCSF)."""
    return bool(_NOT_OK.search(action.partition(".")[2]))


def owasp_name(action: str) -> str:
    """The OWASP Logging Vocabulary name the registry gives the action, or ""."""
    found = _OWASP_NAME.search(ACTIONS.get(action, ""))
    return found.group(1) if found else ""


def compact_json(value: Any) -> str:
    """Sorted keys, no spaces, every non-ASCII character escaped: one safe line."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def streamed_data(data: dict[str, Any]) -> dict[str, Any]:
    """The event's data, or, beyond DATA_MAX_CHARS of JSON, a stub with its size and hash
    (the full event stays in the trail, found by tenant and seq)."""
    text = compact_json(data)
    if len(text) <= DATA_MAX_CHARS:
        return data
    return {
        "truncated": True,
        "chars": len(text),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def epoch_ms(event: AuditEvent) -> int:
    return int(event.created_at.timestamp() * 1000)


# --- CEF ------------------------------------------------------------------------------------


def cef_header_field(text: str) -> str:
    """A header field: `\\` and `|` escaped; line breaks and other controls become spaces."""
    return _CONTROL.sub(" ", text.replace("\\", "\\\\").replace("|", "\\|"))


def cef_value(text: str) -> str:
    """An extension value: `\\`, `=` and line breaks escaped, other controls replaced."""
    escaped = text.replace("\\", "\\\\").replace("=", "\\=")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return _CONTROL.sub("\ufffd", escaped)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cef_extension(event: AuditEvent, tenant_slug: str) -> list[tuple[str, str]]:
    """The extension's (key, value) pairs, in a fixed order; empty optional ones left out."""
    pairs = [
        ("rt", str(epoch_ms(event))),
        ("cat", event.action.partition(".")[0]),
        ("externalId", str(event.seq)),
        ("suser", event.actor_label),
        ("suid", event.actor_id),
        ("cs1Label", "tenant"),
        ("cs1", tenant_slug),
        ("cs2Label", "eventHash"),
        ("cs2", event.hash),
        ("cs3Label", "actorType"),
        ("cs3", event.actor_type),
        ("cs4Label", "actorOrganisation"),
        ("cs4", event.actor_org),
    ]
    owasp = owasp_name(event.action)
    if owasp:
        pairs += [("cs5Label", "owaspEvent"), ("cs5", owasp)]
    pairs += [
        ("cs6Label", "data"),
        ("cs6", compact_json(streamed_data(event.data))),
        ("flexString1Label", "target"),
        ("flexString1", f"{event.target_type}#{event.target_id}" if event.target_type else ""),
        ("flexString2Label", "targetName"),
        ("flexString2", event.target_repr),
    ]
    optional = [
        ("src", event.ip),
        ("requestClientApplication", event.user_agent),
        ("vouchsafeRequestId", event.request_id),
    ]
    return pairs + [(key, value) for key, value in optional if value]


def cef_message(event: AuditEvent, *, tenant_slug: str, origin: Origin) -> str:
    """`CEF:0|Vouchsafe|Vouchsafe|<version>|<action>|<name>|<severity>|<extension>`."""
    header = [
        VENDOR,
        PRODUCT,
        origin.product_version,
        event.action,
        _cut(ACTIONS.get(event.action, event.action), CEF_NAME_MAX),
        str(severity_of(event.action).cef),
    ]
    extension = " ".join(
        f"{key}={cef_value(value)}" for key, value in cef_extension(event, tenant_slug)
    )
    return "CEF:0|" + "|".join(cef_header_field(field) for field in header) + "|" + extension


# --- OCSF -----------------------------------------------------------------------------------

_AUTHENTICATION = {"class_uid": 3002, "class_name": "Authentication"}
_AUTHENTICATION_CATEGORY = {"category_uid": 3, "category_name": "Identity & Access Management"}
_BASE_EVENT = {"class_uid": 0, "class_name": "Base Event"}
_BASE_CATEGORY = {"category_uid": 0, "category_name": "Uncategorized"}
_LOGON = (1, "Logon")
_OTHER = (99, "Other")
_LOGON_ACTIONS = frozenset({"auth.login_succeeded", "auth.login_failed"})


def ocsf_class(action: str) -> dict[str, Any]:
    """Authentication (3002) for `auth.*`, the generic Base Event (0) for everything else."""
    if action.startswith("auth."):
        activity_id, activity = _LOGON if action in _LOGON_ACTIONS else _OTHER
        failed = refused(action) or action == "auth.passkey_suspended"
        return {
            **_AUTHENTICATION,
            **_AUTHENTICATION_CATEGORY,
            "activity_id": activity_id,
            "activity_name": activity,
            "type_uid": 3002 * 100 + activity_id,
            "type_name": f"Authentication: {activity}",
            "status_id": 2 if failed else 1,
            "status": "Failure" if failed else "Success",
        }
    activity_id, activity = _OTHER
    return {
        **_BASE_EVENT,
        **_BASE_CATEGORY,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": activity_id,
        "type_name": f"Base Event: {activity}",
    }


def _actor_user(event: AuditEvent) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": event.actor_id, "name": event.actor_label}
    if event.actor_org:
        user["org"] = {"name": event.actor_org}
    return user


def ocsf_event(event: AuditEvent, *, tenant_slug: str, origin: Origin) -> dict[str, Any]:
    """The event as an OCSF object (schema 1.1)."""
    severity = severity_of(event.action)
    owasp = owasp_name(event.action)
    body: dict[str, Any] = {
        **ocsf_class(event.action),
        "time": epoch_ms(event),
        "severity_id": severity.ocsf_id,
        "severity": severity.ocsf_name,
        "message": ACTIONS.get(event.action, event.action),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": str(event.seq),
            "sequence": event.seq,
            "event_code": event.action,
            "tenant_uid": tenant_slug,
            "log_name": "audit",
            "product": {
                "name": PRODUCT,
                "vendor_name": VENDOR,
                "version": origin.product_version,
            },
            "labels": [f"owasp:{owasp}"] if owasp else [],
        },
        "actor": {"user": _actor_user(event)},
        "unmapped": {
            "action": event.action,
            "actor_type": event.actor_type,
            "target": {
                "type": event.target_type,
                "uid": event.target_id,
                "name": event.target_repr,
            },
            "hash": event.hash,
            "prev_hash": event.prev_hash,
            "data": streamed_data(event.data),
        },
    }
    if body["class_uid"] == _AUTHENTICATION["class_uid"]:
        body["user"] = _actor_user(event)  # required by the Authentication class
    if event.ip:
        body["src_endpoint"] = {"ip": event.ip}
    request = {"uid": event.request_id, "user_agent": event.user_agent}
    if any(request.values()):
        body["http_request"] = {key: value for key, value in request.items() if value}
    return body


def ocsf_message(event: AuditEvent, *, tenant_slug: str, origin: Origin) -> str:
    return compact_json(ocsf_event(event, tenant_slug=tenant_slug, origin=origin))


# --- syslog ---------------------------------------------------------------------------------


def _printable_ascii(text: str, limit: int) -> str:
    """A header field of RFC 5424: printable US-ASCII without spaces, or the NILVALUE."""
    kept = "".join(ch for ch in text if "!" <= ch <= "~")[:limit]
    return kept or "-"


def _sd_name(text: str) -> str:
    """An SD-ID: printable US-ASCII except `=`, space, `]` and `"`, at most 32 characters."""
    return "".join(ch for ch in text if "!" <= ch <= "~" and ch not in '="]')[:32] or APP_NAME


def sd_value(text: str) -> str:
    """A structured-data PARAM-VALUE: `"`, `\\` and `]` escaped (RFC 5424 6.3.3)."""
    return re.sub(r'(["\\\]])', r"\\\1", text)


def syslog_timestamp(event: AuditEvent) -> str:
    return event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def syslog_message(event: AuditEvent, *, tenant_slug: str, origin: Origin, msg: str) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG` (RFC 5424)."""
    pri = FACILITY_LOG_AUDIT * 8 + severity_of(event.action).syslog
    params = {
        "tenant": tenant_slug,
        "seq": str(event.seq),
        "hash": event.hash,
        "prev": event.prev_hash,
        "action": event.action,
    }
    element = " ".join(f'{name}="{sd_value(value)}"' for name, value in params.items())
    header = " ".join(
        [
            f"<{pri}>1",
            syslog_timestamp(event),
            _printable_ascii(origin.hostname, 255),
            APP_NAME,
            "-",
            _printable_ascii(event.action, MSGID_MAX),
            f"[{_sd_name(origin.sd_id)} {element}]",
        ]
    )
    return f"{header} {msg}".encode()


def octet_frame(message: bytes) -> bytes:
    """Octet-counting framing: the message's length in bytes, a space, the message."""
    return b"%d %s" % (len(message), message)


MESSAGE_BUILDERS = {"cef": cef_message, "ocsf": ocsf_message}


def frame(event: AuditEvent, *, tenant_slug: str, format: str, origin: Origin) -> bytes:
    """One event, ready for the wire, in the destination's `format` (`cef` or `ocsf`)."""
    msg = MESSAGE_BUILDERS[format](event, tenant_slug=tenant_slug, origin=origin)
    return octet_frame(syslog_message(event, tenant_slug=tenant_slug, origin=origin, msg=msg))

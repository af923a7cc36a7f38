"""Reading account files from a system of record (CSV or JSON) into validated records.

Every problem is reported with its line (CSV) or item number (JSON) and a reason; the caller
applies nothing unless the whole file is valid.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from .choices import ContactKind, MailboxType, ProofingLevel

LIST_SEPARATOR = ";"
CSV_CONTACT_COLUMNS = {
    "mobile": ContactKind.MOBILE,
    "desk_phone": ContactKind.DESK_PHONE,
    "notification_email": ContactKind.EMAIL,
}
REQUIRED = ("external_id", "username", "display_name")
LIST_FIELDS = ("groups", "admin_roles", "delegations")
MAX_FIELD = 254
MAX_ENROLMENT_REFERENCE = 128  # ProtectedAccount.enrolment_reference


@dataclass(frozen=True)
class ContactRecord:
    kind: str
    value: str
    registered_at: datetime | None = None
    sim_changed_at: datetime | None = None
    is_notification: bool = True


@dataclass(frozen=True)
class AccountRecord:
    line: int
    external_id: str
    username: str
    display_name: str
    email: str = ""
    manager_external_id: str = ""
    groups: tuple[str, ...] = ()
    admin_roles: tuple[str, ...] = ()
    delegations: tuple[str, ...] = ()
    mailbox_type: str = MailboxType.USER
    mailbox_owner_external_id: str = ""  # a shared/functional mailbox's registered owner
    no_helpdesk_reset: bool = False
    proofing_level: str = ProofingLevel.NONE
    enrolment_reference: str = ""
    idp_subject: str = ""
    person_id: uuid.UUID | None = None
    contacts: tuple[ContactRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class _Row:
    """Validates one raw row, collecting errors instead of stopping at the first."""

    def __init__(self, line: int, raw: dict[str, Any], errors: list[RowError]) -> None:
        self.line, self.raw, self.errors = line, raw, errors

    def error(self, name: str, message: str) -> None:
        self.errors.append(RowError(self.line, name, message))

    def text(self, name: str, *, required: bool = False) -> str:
        value = self.raw.get(name)
        value = "" if value is None else value
        if not isinstance(value, str):
            self.error(name, "must be text")
            return ""
        value = value.strip()
        if required and not value:
            self.error(name, "is required")
        if len(value) > MAX_FIELD or "\x00" in value:
            self.error(name, f"must be at most {MAX_FIELD} characters of text")
        return value

    def items(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name) or []
        if isinstance(value, str):
            value = value.split(LIST_SEPARATOR)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(name, "must be a list of text values")
            return ()
        return tuple(sorted({v.strip() for v in value if v.strip()}))

    def choice(self, name: str, choices: type, default: str) -> str:
        value = self.text(name) or default
        if value not in choices.values:
            self.error(name, f"must be one of {', '.join(choices.values)}")
        return value

    def flag(self, name: str) -> bool:
        value = self.raw.get(name, False)
        if isinstance(value, bool):
            return value
        text = str(value or "").strip().lower()
        if text in {"", "false", "0", "no"}:
            return False
        if text in {"true", "1", "yes"}:
            return True
        self.error(name, "must be true or false")
        return False

    def moment(self, name: str, value: Any) -> datetime | None:
        if value in (None, ""):
            return None
        parsed = parse_datetime(str(value)) if isinstance(value, str) else None
        if parsed is None or parsed.tzinfo is None:
            self.error(name, "must be an ISO-8601 date-time with a time zone")
            return None
        return parsed

    def reference(self, name: str, limit: int) -> str:
        """An opaque identifier from the system of record (kept verbatim, never interpreted)."""
        value = self.text(name)
        if len(value) > limit:
            self.error(name, f"must be at most {limit} characters")
        return value

    def person(self) -> uuid.UUID | None:
        value = self.text("person_id")
        if not value:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self.error("person_id", "must be a UUID")
            return None

    def contact(self, kind: str, raw: Any, prefix: str) -> ContactRecord | None:
        if not isinstance(raw, dict):
            self.error(prefix.rstrip("."), "must be an object with kind and value")
            return None
        value = str(raw.get("value") or "").strip()
        if not value:
            return None
        if kind not in ContactKind.values:
            self.error(f"{prefix}kind", f"must be one of {', '.join(ContactKind.values)}")
            return None
        if len(value) > MAX_FIELD:
            self.error(f"{prefix}value", f"must be at most {MAX_FIELD} characters")
        if kind == ContactKind.EMAIL and "@" not in value:
            self.error(f"{prefix}value", "is not an email address")
        return ContactRecord(
            kind=kind,
            value=value,
            registered_at=self.moment(f"{prefix}registered_at", raw.get("registered_at")),
            sim_changed_at=self.moment(f"{prefix}sim_changed_at", raw.get("sim_changed_at")),
            is_notification=raw.get("is_notification", True) is not False,
        )

    def record(self, contacts: list[ContactRecord]) -> AccountRecord:
        return AccountRecord(
            line=self.line,
            external_id=self.text("external_id", required=True),
            username=self.text("username", required=True),
            display_name=self.text("display_name", required=True),
            email=self.text("email"),
            manager_external_id=self.text("manager_external_id"),
            groups=self.items("groups"),
            admin_roles=self.items("admin_roles"),
            delegations=self.items("delegations"),
            mailbox_type=self.choice("mailbox_type", MailboxType, MailboxType.USER),
            mailbox_owner_external_id=self.text("mailbox_owner_external_id"),
            no_helpdesk_reset=self.flag("no_helpdesk_reset"),
            proofing_level=self.choice("proofing_level", ProofingLevel, ProofingLevel.NONE),
            enrolment_reference=self.reference("enrolment_reference", MAX_ENROLMENT_REFERENCE),
            idp_subject=self.text("idp_subject"),  # opaque, kept verbatim (at most MAX_FIELD)
            person_id=self.person(),
            contacts=tuple(contacts),
        )


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any], list[tuple[str, Any, str]]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"line 1: the header lacks column(s): {', '.join(missing)}")
    rows = []
    for raw in reader:
        contacts = [
            (
                kind,
                {
                    "value": raw.get(column),
                    "registered_at": raw.get(f"{column}_registered_at"),
                    "sim_changed_at": raw.get(f"{column}_sim_changed_at"),
                },
                f"{column}_",
            )
            for column, kind in CSV_CONTACT_COLUMNS.items()
        ]
        rows.append((reader.line_num, raw, contacts))
    return rows


def _json_contacts(item: dict[str, Any]) -> list[tuple[str, Any, str]]:
    contacts = item.get("contacts") or []
    if not isinstance(contacts, list):
        return [("", None, "contacts.")]
    return [
        (c.get("kind", "") if isinstance(c, dict) else "", c, f"contacts[{i}].")
        for i, c in enumerate(contacts)
    ]


def _json_rows(text: str) -> list[tuple[int, dict[str, Any], list[tuple[str, Any, str]]]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as bad:
        raise ValueError(f"line {bad.lineno}: not valid JSON ({bad.msg})") from None
    if not isinstance(items, list):
        raise ValueError("line 1: the file must hold a JSON array of account objects")
    return _rows_of_items(items)


def _rows_of_items(
    items: list[Any],
) -> list[tuple[int, dict[str, Any], list[tuple[str, Any, str]]]]:
    return [
        (number, item, _json_contacts(item)) if isinstance(item, dict) else (number, {}, [])
        for number, item in enumerate(items, start=1)
    ]


def _records_of(
    rows: list[tuple[int, dict[str, Any], list[tuple[str, Any, str]]]],
) -> tuple[list[AccountRecord], list[RowError]]:
    errors: list[RowError] = []
    records, seen = [], {}
    for line, raw, raw_contacts in rows:
        row = _Row(line, raw, errors)
        if not raw:
            row.error("", "must be an object with the account's fields")
            continue
        contacts = [c for kind, c_raw, p in raw_contacts if (c := row.contact(kind, c_raw, p))]
        account = row.record(contacts)
        if account.external_id in seen:
            row.error("external_id", f"repeats line {seen[account.external_id]}")
        seen.setdefault(account.external_id, line)
        records.append(account)
    return records, errors


def parse_accounts(text: str, fmt: str) -> tuple[list[AccountRecord], list[RowError]]:
    """Parse a CSV or JSON account file; returns the records and every error found.

    For JSON the `line` of a record is its position in the array (1-based).
    """
    try:
        rows = _csv_rows(text) if fmt == "csv" else _json_rows(text)
    except ValueError as bad:
        return [], [RowError(1, "", str(bad).split(": ", 1)[1])]
    return _records_of(rows)


def parse_account_items(items: list[Any]) -> tuple[list[AccountRecord], list[RowError]]:
    """Validate already-decoded account objects (an API sync); `line` is the 1-based index."""
    return _records_of(_rows_of_items(items))

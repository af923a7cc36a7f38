"""The LDAP / Active Directory connector (ldap3): a recovery really changes the directory entry.

Per case type it converges the account's entry to a recovery state and changes only what
differs, so a second call changes nothing more:

- `password_reset`: the password becomes a value nobody knows (OpenLDAP: the locked value
  `{CRYPT}!vouchsafe-case-<id>`, which no password matches; AD: a long random password,
  discarded at once) and the account must change it (`shadowLastChange: 0`, adding the
  `shadowAccount` class if missing / `pwdLastSet: 0`, with "password never expires" cleared
  from `userAccountControl`);
- `unlock`: `unlock_attribute` <- `unlock_value` (AD: `lockoutTime: 0`; OpenLDAP: none);
- `mfa_reset`, `temporary_access`: a temporary access state, membership of
  `temporary_access_group_dn` or `temporary_access_attribute` <- `temporary_access_value`,
  which `revoke_temporary_access` ends.

Before it writes, it reads what it will change into a `Snapshot` (R-37); `revert` writes that
back (an AD `pwdLastSet` can only be put back as "set now", and an AD password cannot be read, so
it cannot be restored). The user entry's changes go in one LDAP modify, which the server applies
atomically; a group change follows. Every failure is an `ExecutionResult(ok=False)` whose error
never contains the bind password, which is read from the environment variable the settings name.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    NONE,
    SIMPLE,
    SUBTREE,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from tenants.choices import CaseType

from ..models import ProtectedAccount
from .base import Capability, ExecutionResult, Health, Snapshot, capability_missing
from .choices import Directory, PasswordMode

logger = logging.getLogger(__name__)

LOCK_PREFIX = b"{CRYPT}!vouchsafe-case-"
TEMPORARY_ACCESS_TYPES = frozenset({CaseType.MFA_RESET, CaseType.TEMPORARY_ACCESS})
SUPPORTED = frozenset({CaseType.PASSWORD_RESET, CaseType.UNLOCK, *TEMPORARY_ACCESS_TYPES})
UAC = "userAccountControl"


def admin_groups(setting: str) -> list[str]:
    """The admin group DNs of the `admin_group_dns` setting (separated by `;`)."""
    return [dn.strip() for dn in setting.split(";") if dn.strip()]


class _Failure(Exception):
    """A refusal or error of the directory, with a message safe to show and to audit."""


def _encode(value: bytes) -> str | dict[str, str]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return text
    return {"b64": base64.b64encode(value).decode()}


def _decode(value: str | dict[str, str]) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value.encode("utf-8")


def _same_dn(a: str, b: str) -> bool:
    def norm(dn: str) -> list[tuple[str, str]]:
        return [(attr.lower(), value.lower()) for attr, value, _sep in parse_dn(dn)]

    try:
        return norm(a) == norm(b)
    except (LDAPException, ValueError, IndexError):
        return a.lower() == b.lower()


def _group_role(group: str) -> dict[str, Any]:
    """An admin group as a snapshot's role (the shape the cloud connectors' roles have)."""
    try:
        name = parse_dn(group)[0][1]
    except (LDAPException, ValueError, IndexError):
        name = group
    return {"id": group, "role_id": group, "role_name": name, "scope": "/"}


@dataclass
class _Entry:
    dn: str
    raw: dict[str, list[bytes]]  # names lower-cased

    def values(self, name: str) -> list[bytes]:
        return list(self.raw.get(name.lower(), []))

    def has_class(self, object_class: str) -> bool:
        return object_class.lower() in {
            v.decode(errors="replace").lower() for v in self.values("objectClass")
        }


@dataclass
class _Plan:
    """What execute will write: attribute → desired values, classes to add, groups to join."""

    replace: dict[str, list[bytes]] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)  # names in `replace` whose old values are secret
    unreadable: set[str] = field(default_factory=set)  # names whose old values cannot be read
    add_classes: list[str] = field(default_factory=list)
    join_groups: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.replace or self.add_classes or self.join_groups)


class LdapConnector:
    kind = "ldap"
    capabilities: frozenset[Capability] = frozenset(
        {Capability.EXECUTE, Capability.REVERT, Capability.PASSWORD_SET}
    )

    def __init__(self, *, settings: dict[str, Any]) -> None:
        self.s = settings
        self.directory = settings["directory"]
        # with admin groups configured, a T2 recovery takes the account out of them.
        self.admin_groups = admin_groups(settings.get("admin_group_dns", ""))
        if self.admin_groups:
            self.capabilities = LdapConnector.capabilities | {Capability.ROLES_SUSPEND}

    # --- connection ----------------------------------------------------------------------

    def _password(self) -> str:
        name = self.s["bind_password_env"]
        password = os.environ.get(name, "")
        if not password:
            raise _Failure(f"The bind password is not set: environment variable {name} is empty.")
        return password

    @contextmanager
    def _session(self) -> Iterator[Connection]:
        """A bound connection (TLS as configured), unbound at the end, whatever happens."""
        password = self._password()
        parts = urlsplit(self.s["server_uri"])
        use_ssl = parts.scheme == "ldaps"
        timeout = self.s["timeout_seconds"]
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.s["tls_ca_file"] or None,
            sni=parts.hostname,
        )
        server = Server(
            parts.hostname,
            port=parts.port or (636 if use_ssl else 389),
            use_ssl=use_ssl,
            tls=tls,
            get_info=NONE,
            connect_timeout=timeout,
        )
        conn = Connection(
            server,
            user=self.s["bind_dn"],
            password=password,
            authentication=SIMPLE,
            raise_exceptions=False,
            receive_timeout=timeout,
            auto_referrals=False,
            read_only=False,
        )
        try:
            conn.open()
            if self.s["start_tls"] and not conn.start_tls():
                raise _Failure(f"StartTLS was refused: {self._why(conn)}")
            if not conn.bind():
                raise _Failure(
                    f"The directory refused the bind as {self.s['bind_dn']}: {self._why(conn)}"
                )
            yield conn
        except LDAPException as exc:
            raise _Failure(self._scrub(f"{type(exc).__name__}: {exc}", password)) from None
        finally:
            with suppress(LDAPException):
                conn.unbind()

    @staticmethod
    def _why(conn: Connection) -> str:
        result = conn.result or {}
        text = str(result.get("description") or "no answer")
        if result.get("message"):
            text += f" ({result['message']})"
        return text

    @staticmethod
    def _scrub(text: str, password: str) -> str:
        return text.replace(password, "***") if password else text

    def _run(self, operation: str, work: Any) -> ExecutionResult:
        """Run `work()` (which returns an ExecutionResult) and turn any failure into ok=False."""
        try:
            return work()
        except _Failure as failure:
            message = str(failure)
        except (LDAPException, OSError, ValueError) as exc:  # never their text: it may quote input
            message = (
                f"The directory could not be reached or answered oddly ({type(exc).__name__})."
            )
        logger.warning("ldap connector: %s failed: %s", operation, message)
        return ExecutionResult(ok=False, connector=self.kind, path=self._path(), error=message)

    def _path(self, dn: str = "") -> str:
        uri = self.s["server_uri"].rstrip("/")
        return f"{uri}/{dn}" if dn else uri

    # --- reading -------------------------------------------------------------------------

    def _filter(self, account: ProtectedAccount) -> str:
        return (
            self.s["user_filter"]
            .replace("{username}", escape_filter_chars(account.username))
            .replace("{external_id}", escape_filter_chars(account.external_id))
        )

    def _find(self, conn: Connection, account: ProtectedAccount, names: set[str]) -> _Entry:
        """The account's one entry under base_dn with `names` (and objectClass) read."""
        conn.search(
            self.s["base_dn"],
            self._filter(account),
            SUBTREE,
            attributes=sorted({*names, "objectClass"}),
            size_limit=2,
        )
        entries = [item for item in conn.response or [] if item.get("type") == "searchResEntry"]
        code = (conn.result or {}).get("result")
        if code not in (0, 4) and not entries:  # 4: sizeLimitExceeded, i.e. more than one
            raise _Failure(f"The search for {account.username} failed: {self._why(conn)}")
        if not entries:
            raise _Failure(
                f"No directory entry matches {account.username} under {self.s['base_dn']}."
            )
        if len(entries) > 1:
            raise _Failure(
                f"More than one directory entry matches {account.username}; "
                "refusing to guess (narrow user_filter)."
            )
        raw = {name.lower(): list(values) for name, values in entries[0]["raw_attributes"].items()}
        return _Entry(dn=entries[0]["dn"], raw=raw)

    def _readable(self, name: str) -> bool:
        # An AD password can never be read back; asking for it is pointless.
        return not (self.directory == Directory.ACTIVE_DIRECTORY and name.lower() == "unicodepwd")

    def _names_for(self, case_type: str) -> set[str]:
        s = self.s
        names: set[str] = set()
        if case_type == CaseType.PASSWORD_RESET:
            if s["password_mode"] != PasswordMode.NONE and self._readable(s["password_attribute"]):
                names.add(s["password_attribute"])
            if s["must_change_attribute"]:
                names.add(s["must_change_attribute"])
            if s["uac_clear_bits"]:
                names.add(UAC)
        elif case_type == CaseType.UNLOCK:
            names.add(s["unlock_attribute"])
        elif case_type in TEMPORARY_ACCESS_TYPES and s["temporary_access_attribute"]:
            names.add(s["temporary_access_attribute"])
        return {name for name in names if name}

    def _is_member(self, conn: Connection, group_dn: str, dn: str) -> bool:
        attribute = self.s["group_member_attribute"]
        answer = conn.compare(group_dn, attribute, dn)
        code = (conn.result or {}).get("result")
        if code in (5, 6, 16):  # compareFalse, compareTrue, noSuchAttribute (empty group)
            return bool(answer)
        raise _Failure(f"Cannot read the members of {group_dn}: {self._why(conn)}")

    # --- planning ------------------------------------------------------------------------

    def _unsupported(self, case_type: str) -> str | None:
        s = self.s
        if case_type not in SUPPORTED:
            return (
                f"The ldap connector does not carry out {case_type} cases; use the manual "
                "connector for them."
            )
        if case_type == CaseType.UNLOCK and not s["unlock_attribute"]:
            return "Unlock is not configured (unlock_attribute)."
        if case_type in TEMPORARY_ACCESS_TYPES and not (
            s["temporary_access_group_dn"] or s["temporary_access_attribute"]
        ):
            return (
                "No temporary access state is configured (temporary_access_group_dn or "
                "temporary_access_attribute)."
            )
        return None

    def _plan(self, conn: Connection, entry: _Entry, case_type: str, case_id: int | None) -> _Plan:
        s, plan = self.s, _Plan()

        def want(name: str, values: list[bytes]) -> None:
            if sorted(entry.values(name)) != sorted(values):
                plan.replace[name] = values

        if case_type == CaseType.PASSWORD_RESET:
            mode, attribute = s["password_mode"], s["password_attribute"]
            if mode == PasswordMode.LOCK:
                if not entry.values(attribute):
                    # Unreadable (or absent): revert could not put it back. Fail closed.
                    raise _Failure(
                        f"Cannot read {attribute} of {entry.dn}: the service account "
                        "needs read access to it, or revert could not restore it."
                    )
                lock = LOCK_PREFIX + str(case_id if case_id is not None else "?").encode()
                want(attribute, [lock])
                plan.secret.add(attribute)
            elif mode == PasswordMode.RANDOM:
                plan.replace[attribute] = [self._random_password(attribute)]
                plan.secret.add(attribute)
                if not self._readable(attribute):
                    plan.unreadable.add(attribute)
            if s["must_change_attribute"]:
                klass = s["must_change_object_class"]
                if klass and not entry.has_class(klass):
                    plan.add_classes.append(klass)
                mark = [s["must_change_value"].encode()]
                if mode == PasswordMode.RANDOM:
                    # AD stamps pwdLastSet "now" on every new password, so a retried reset
                    # would clear the mark unless the same modify writes it again.
                    plan.replace[s["must_change_attribute"]] = mark
                else:
                    want(s["must_change_attribute"], mark)
            current = entry.values(UAC)
            if s["uac_clear_bits"] and current:
                flags = int(current[0])
                want(UAC, [str(flags & ~s["uac_clear_bits"]).encode()])
        elif case_type == CaseType.UNLOCK:
            want(s["unlock_attribute"], [s["unlock_value"].encode()])
        elif case_type in TEMPORARY_ACCESS_TYPES:
            group = s["temporary_access_group_dn"]
            if group:
                if not self._is_member(conn, group, entry.dn):
                    plan.join_groups.append(group)
            else:
                want(s["temporary_access_attribute"], [s["temporary_access_value"].encode()])
        return plan

    @staticmethod
    def _random_password(attribute: str) -> bytes:
        # 32 random URL-safe characters plus one of each class a complexity policy asks for.
        password = secrets.token_urlsafe(24) + "aA1!"
        if attribute.lower() == "unicodepwd":
            return f'"{password}"'.encode("utf-16-le")  # AD's quoted UTF-16LE form
        return password.encode()

    def _snapshot_of(
        self, account: ProtectedAccount, entry: _Entry, plan: _Plan, case_type: str
    ) -> Snapshot:
        attributes: dict[str, list[Any]] = {}
        secret: dict[str, list[str]] = {}
        for name in plan.replace:
            if name in plan.unreadable:
                continue
            if name in plan.secret:
                old = entry.values(name)
                secret[name] = [base64.b64encode(value).decode() for value in old]
            else:
                attributes[name] = [_encode(value) for value in entry.values(name)]
        state: dict[str, Any] = {
            "connector": self.kind,
            "directory": self.directory,
            "case_type": case_type,
            "dn": entry.dn,
            "attributes": attributes,
            "object_classes_added": list(plan.add_classes),
            "groups": [
                {
                    "dn": group,
                    "attribute": self.s["group_member_attribute"],
                    "was_member": False,
                }
                for group in plan.join_groups
            ],
        }
        if secret:
            state["secret"] = secret
        if plan.unreadable:
            state["not_restorable"] = sorted(plan.unreadable)
        return Snapshot(account_external_id=account.external_id, state=state)

    # --- the interface -------------------------------------------------------------------

    def snapshot(self, *, account: ProtectedAccount, case_type: str) -> Snapshot | None:
        if self._unsupported(case_type):
            return None

        def work() -> Snapshot | None:
            with self._session() as conn:
                entry = self._find(conn, account, self._names_for(case_type))
                plan = self._plan(conn, entry, case_type, None)
                if plan.empty:
                    return None
                return self._snapshot_of(account, entry, plan, case_type)

        try:
            return work()
        except (_Failure, LDAPException, OSError, ValueError) as exc:
            logger.warning("ldap connector: snapshot failed (%s)", type(exc).__name__)
            return None

    def execute(
        self, *, account: ProtectedAccount, case_type: str, case_id: int
    ) -> ExecutionResult:
        refusal = self._unsupported(case_type)
        if refusal:
            return ExecutionResult(ok=False, connector=self.kind, path=self._path(), error=refusal)

        def work() -> ExecutionResult:
            with self._session() as conn:
                entry = self._find(conn, account, self._names_for(case_type))
                plan = self._plan(conn, entry, case_type, case_id)
                path = self._path(entry.dn)
                if plan.empty:
                    return ExecutionResult(
                        ok=True,
                        connector=self.kind,
                        path=path,
                        detail={"changed": False, "already_applied": True},
                    )
                taken = self._snapshot_of(account, entry, plan, case_type)
                snapshot = Snapshot(account.external_id, {**taken.state, "case_id": case_id})
                changes: dict[str, list[tuple[str, list[Any]]]] = {}
                if plan.add_classes:
                    changes["objectClass"] = [(MODIFY_ADD, plan.add_classes)]
                for name, values in plan.replace.items():
                    changes[name] = [(MODIFY_REPLACE, values)]
                if changes and not conn.modify(entry.dn, changes):
                    raise _Failure(
                        f"The directory refused the change to {entry.dn}: {self._why(conn)}"
                    )
                for group in plan.join_groups:
                    member = {self.s["group_member_attribute"]: [(MODIFY_ADD, [entry.dn])]}
                    if not conn.modify(group, member):
                        # The entry may already be changed: hand back the snapshot to revert.
                        return ExecutionResult(
                            ok=False,
                            connector=self.kind,
                            path=path,
                            snapshot=snapshot if changes else None,
                            error=f"The directory refused to add the account to {group}: "
                            f"{self._why(conn)}",
                        )
                return ExecutionResult(
                    ok=True,
                    connector=self.kind,
                    path=path,
                    snapshot=snapshot,
                    detail={
                        "changed": True,
                        "attributes": sorted(plan.replace),
                        "object_classes_added": plan.add_classes,
                        "groups_joined": plan.join_groups,
                        "password_restorable": not plan.unreadable,
                    },
                )

        return self._run("execute", work)

    def revert(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        state = snapshot.state
        if state.get("connector") != self.kind or "dn" not in state:
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path=self._path(),
                error="This snapshot was not taken by the ldap connector.",
            )

        def work() -> ExecutionResult:
            old: dict[str, list[bytes]] = {
                name: [_decode(value) for value in values]
                for name, values in state.get("attributes", {}).items()
            }
            for name, values in state.get("secret", {}).items():
                old[name] = [base64.b64decode(value) for value in values]
            with self._session() as conn:
                entry = self._find(conn, account, set(old))
                if not _same_dn(entry.dn, state["dn"]):
                    raise _Failure(
                        f"The account's entry is now {entry.dn}, not {state['dn']} "
                        "as in the snapshot; nothing was changed."
                    )
                changes: dict[str, list[tuple[str, list[Any]]]] = {}
                for name, values in old.items():
                    current = entry.values(name)
                    if (
                        name.lower() == "pwdlastset"
                        and self.directory == Directory.ACTIVE_DIRECTORY
                    ):
                        # AD takes only 0 ("must change") or -1 ("set now") here.
                        if (values == [b"0"]) != (current == [b"0"]):
                            changes[name] = [
                                (MODIFY_REPLACE, [b"0" if values == [b"0"] else b"-1"])
                            ]
                        continue
                    if sorted(current) != sorted(values):
                        changes[name] = [(MODIFY_REPLACE, values)]
                added = [c for c in state.get("object_classes_added", []) if entry.has_class(c)]
                if added:
                    changes["objectClass"] = [(MODIFY_DELETE, added)]
                if changes and not conn.modify(entry.dn, changes):
                    raise _Failure(
                        f"The directory refused to restore {entry.dn}: {self._why(conn)}"
                    )
                groups_changed = []
                for group in state.get("groups", []):
                    is_member = self._is_member(conn, group["dn"], entry.dn)
                    if is_member == group["was_member"]:
                        continue
                    op = MODIFY_ADD if group["was_member"] else MODIFY_DELETE
                    if not conn.modify(group["dn"], {group["attribute"]: [(op, [entry.dn])]}):
                        raise _Failure(
                            f"The directory refused to restore membership of "
                            f"{group['dn']}: {self._why(conn)}"
                        )
                    groups_changed.append(group["dn"])
                return ExecutionResult(
                    ok=True,
                    connector=self.kind,
                    path=self._path(entry.dn),
                    detail={
                        "changed": bool(changes or groups_changed),
                        "attributes": sorted(name for name in changes if name != "objectClass"),
                        "object_classes_removed": added,
                        "groups": groups_changed,
                        "not_restorable": state.get("not_restorable", []),
                    },
                )

        return self._run("revert", work)

    def revoke_temporary_access(self, *, account: ProtectedAccount) -> ExecutionResult:
        s = self.s
        group, attribute = s["temporary_access_group_dn"], s["temporary_access_attribute"]
        if not (group or attribute):
            return ExecutionResult(
                ok=True,
                connector=self.kind,
                path=self._path(),
                detail={"changed": False, "configured": False},
            )

        def work() -> ExecutionResult:
            with self._session() as conn:
                entry = self._find(conn, account, {attribute} if attribute else set())
                changed = False
                if group and self._is_member(conn, group, entry.dn):
                    member = {s["group_member_attribute"]: [(MODIFY_DELETE, [entry.dn])]}
                    if not conn.modify(group, member):
                        raise _Failure(
                            f"The directory refused to remove the account from "
                            f"{group}: {self._why(conn)}"
                        )
                    changed = True
                value = s["temporary_access_value"].encode()
                if attribute and value in entry.values(attribute):
                    if not conn.modify(entry.dn, {attribute: [(MODIFY_DELETE, [value])]}):
                        raise _Failure(
                            f"The directory refused to clear {attribute} on "
                            f"{entry.dn}: {self._why(conn)}"
                        )
                    changed = True
                return ExecutionResult(
                    ok=True,
                    connector=self.kind,
                    path=self._path(entry.dn),
                    detail={"changed": changed},
                )

        return self._run("revoke_temporary_access", work)

    def _changed_now(self, entry: _Entry) -> dict[str, list[tuple[str, list[bytes]]]]:
        """The entry's "must change" state ended (the owner has just chosen the password)."""
        s, changes = self.s, {}
        name = s["must_change_attribute"]
        if name and entry.values(name) == [s["must_change_value"].encode()]:
            if name.lower() == "shadowlastchange":  # days since 1970-01-01: changed today
                today = int(time.time() // 86_400)
                changes[name] = [(MODIFY_REPLACE, [str(today).encode()])]
            elif name.lower() == "pwdlastset":  # AD: -1 means "set now"
                changes[name] = [(MODIFY_REPLACE, [b"-1"])]
        return changes

    def password_set(self, *, account: ProtectedAccount, password: str) -> ExecutionResult:
        """OpenLDAP: the Password Modify extended operation (RFC 3062), so the server hashes the
        password with its own scheme and applies its own policy; AD: `unicodePwd` replaced by
        the quoted UTF-16LE value, only over an encrypted connection. Then the "must change"
        mark the recovery set is replaced by "changed now". Errors never quote the password."""
        if not password:  # an empty newPasswd asks an OpenLDAP server to generate one
            return ExecutionResult(
                ok=False, connector=self.kind, path=self._path(), error="No password was given."
            )
        is_ad = self.directory == Directory.ACTIVE_DIRECTORY
        encrypted = urlsplit(self.s["server_uri"]).scheme == "ldaps" or self.s["start_tls"]
        if is_ad and not encrypted:
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path=self._path(),
                error="Active Directory accepts a new password only over ldaps:// or StartTLS.",
            )

        def work() -> ExecutionResult:
            try:
                return set_it()
            except _Failure as failure:  # a directory that quotes its input: never keep it
                raise _Failure(str(failure).replace(password, "***")) from None

        def set_it() -> ExecutionResult:
            with self._session() as conn:
                names = {self.s["must_change_attribute"]} - {""}
                entry = self._find(conn, account, names)
                if is_ad:
                    attribute = self.s["password_attribute"]
                    value = f'"{password}"'.encode("utf-16-le")
                    if not conn.modify(entry.dn, {attribute: [(MODIFY_REPLACE, [value])]}):
                        raise _Failure(
                            f"The directory refused the new password for {entry.dn}: "
                            f"{self._why(conn)}"
                        )
                    how = f"replace {attribute}"
                else:
                    changed = conn.extend.standard.modify_password(
                        user=entry.dn, new_password=password.encode("utf-8")
                    )
                    if changed is False:
                        raise _Failure(
                            f"The directory refused the new password for {entry.dn}: "
                            f"{self._why(conn)}"
                        )
                    how = "password modify (RFC 3062)"
                after = self._changed_now(entry)
                if after and not conn.modify(entry.dn, after):
                    raise _Failure(
                        f"The password of {entry.dn} is set, but its 'must change' mark could "
                        f"not be cleared: {self._why(conn)}"
                    )
                return ExecutionResult(
                    ok=True,
                    connector=self.kind,
                    path=self._path(entry.dn),
                    detail={"changed": True, "method": how, "cleared": sorted(after)},
                )

        return self._run("password_set", work)

    # --- standing admin groups (R-19) ----------------------------------------------------

    def _groups_result(
        self,
        path: str,
        done: list[str],
        failed: list[dict[str, str]],
        snapshot: Snapshot | None = None,
    ) -> ExecutionResult:
        """Every group step was tried; like the cloud connectors, the result names what was
        done and what failed, and carries the first failure's words."""
        detail: dict[str, Any] = {"done": done, "failed": failed}
        if not failed:
            return ExecutionResult(
                ok=True, connector=self.kind, path=path, snapshot=snapshot, detail=detail
            )
        error = (
            f"{len(failed)} of {len(done) + len(failed)} steps failed, {len(done)} done; first "
            f"failure: {failed[0]['step']}: {failed[0]['error']}"
        )
        detail["code"] = "ldap.refused"
        return ExecutionResult(
            ok=False, connector=self.kind, path=path, snapshot=snapshot, detail=detail, error=error
        )

    def _membership_change(
        self, conn: Connection, group: str, dn: str, op: str, label: str, report: dict[str, Any]
    ) -> None:
        if conn.modify(group, {self.s["group_member_attribute"]: [(op, [dn])]}):
            report["done"].append(label)
        else:
            report["failed"].append(
                {"step": label, "code": "ldap.refused", "error": self._why(conn)}
            )

    def roles_suspend(self, *, account: ProtectedAccount) -> ExecutionResult:
        """Take the account out of every configured admin group it is a direct member of
        (R-19). The snapshot lists each such group, removed or not, for `roles_restore`; a
        group the account is not in is left alone, so a second call changes nothing."""
        if not self.admin_groups:
            return capability_missing(self.kind, "roles_suspend")

        def work() -> ExecutionResult:
            with self._session() as conn:
                entry = self._find(conn, account, set())
                held = [g for g in self.admin_groups if self._is_member(conn, g, entry.dn)]
                snapshot = Snapshot(
                    account.external_id,
                    {
                        "connector": self.kind,
                        "user_id": entry.dn,
                        "username": account.username,
                        "roles": [_group_role(group) for group in held],
                    },
                )
                report: dict[str, Any] = {"done": [], "failed": []}
                for group in held:
                    label = f"removed from {group}"
                    self._membership_change(conn, group, entry.dn, MODIFY_DELETE, label, report)
                return self._groups_result(
                    self._path(entry.dn), report["done"], report["failed"], snapshot
                )

        return self._run("roles_suspend", work)

    def roles_restore(self, *, account: ProtectedAccount, snapshot: Snapshot) -> ExecutionResult:
        """Put the account back into the snapshot's admin groups it is not in now, for the same
        entry only (one moved or re-created since gets nothing)."""
        state = snapshot.state
        if state.get("connector") != self.kind or state.get("roles") is None:
            return ExecutionResult(
                ok=False,
                connector=self.kind,
                path=self._path(),
                detail={"code": "ldap.snapshot_without_roles"},
                error="The snapshot holds no admin groups of the ldap connector to restore.",
            )

        def work() -> ExecutionResult:
            with self._session() as conn:
                entry = self._find(conn, account, set())
                if not _same_dn(entry.dn, state["user_id"]):
                    raise _Failure(
                        f"The account's entry is now {entry.dn}, not {state['user_id']} as in "
                        "the snapshot; nothing was changed."
                    )
                report: dict[str, Any] = {"done": [], "failed": []}
                for role in state["roles"]:
                    group = role["role_id"]
                    if self._is_member(conn, group, entry.dn):
                        continue
                    label = f"restored to {group}"
                    self._membership_change(conn, group, entry.dn, MODIFY_ADD, label, report)
                return self._groups_result(self._path(entry.dn), report["done"], report["failed"])

        return self._run("roles_restore", work)

    def health(self) -> Health:
        try:
            with self._session() as conn:
                checks = [self.s["base_dn"]]
                if self.s["temporary_access_group_dn"]:
                    checks.append(self.s["temporary_access_group_dn"])
                for dn in checks:
                    if not conn.search(dn, "(objectClass=*)", BASE, attributes=["1.1"]):
                        return Health(
                            ok=False, detail=f"Bound, but {dn} cannot be read: {self._why(conn)}"
                        )
                return Health(
                    ok=True,
                    detail=f"Bound as {self.s['bind_dn']}; found {', '.join(checks)}.",
                )
        except _Failure as failure:
            return Health(ok=False, detail=str(failure))
        except (LDAPException, OSError, ValueError) as exc:
            return Health(
                ok=False,
                detail=f"The directory could not be reached ({type(exc).__name__}).",
            )

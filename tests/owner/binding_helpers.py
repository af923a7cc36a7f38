"""Executed cases and their recovery sessions, for the binding tests (R-10, R-11, R-12).

Everything goes through the real services and views: the case is executed by the tenant's
connector (the LDAP one against a real slapd where the password must really be set), the
artifact reaches the owner by email or text message, and the test client opens it at
`/recover/<token>/` or `/owner/pass/`, so it holds the portal cookie afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from recovery.cases.models import RecoveryCase
from recovery.owner.models import OwnerPortalSession
from tenants.choices import Role
from tenants.models import Tenant

from ..connector_helpers import connector_set
from ..factories import execute, staff
from ..ldap_server import INSTALL_HINT, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, TAP_GROUP, LdapServer
from ..recovery.execution.helpers import last_recovery_mail, link_token, owner_email, ready_case

BIND_ENV = "VOUCHSAFE_TEST_LDAP_BIND_BINDING"
GOOD_PASSWORD = "violet tractor lantern quietly"  # 30 characters, no rule broken


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    try:
        server = LdapServer.start(tmp_path_factory.mktemp("slapd-binding"))
    except FileNotFoundError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def ldap_connector_for(tenant: Tenant, slapd: LdapServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tenant's recoveries go to the test slapd; accounts are found by employeeNumber,
    which is the account's external id."""
    monkeypatch.setenv(BIND_ENV, SERVICE_PASSWORD)
    connector_set(
        tenant,
        kind="ldap",
        settings={
            "server_uri": slapd.uri,
            "allow_unencrypted": True,  # slapd listens on 127.0.0.1 only
            "bind_dn": SERVICE_DN,
            "bind_password_env": BIND_ENV,
            "base_dn": SUFFIX,
            "user_filter": "(&(objectClass=inetOrgPerson)(employeeNumber={external_id}))",
            "temporary_access_group_dn": TAP_GROUP,
        },
    )


@dataclass
class Recovery:
    case: RecoveryCase
    client: Client  # the owner's browser, holding the artifact session's cookie
    token: str
    dn: str = ""  # the directory entry, when the tenant's connector is LDAP

    @property
    def session(self) -> OwnerPortalSession:
        return OwnerPortalSession.objects.get(artifact__case=self.case, kind="artifact")


def executed_password_reset(tenant: Tenant, slapd: LdapServer | None = None) -> tuple:
    """An executed T0 password reset (on a new slapd entry when `slapd`), and the link token."""
    dn = ""
    attributes = {}
    if slapd is not None:
        dn, _uid, number = slapd.add_person()
        attributes["external_id"] = number
    case = ready_case(tenant, case_type="password_reset", **attributes)
    owner_email(case)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    return case, link_token(last_recovery_mail().body), dn


def password_session(tenant: Tenant, slapd: LdapServer | None = None) -> Recovery:
    """The owner opened the recovery link: an artifact session of purpose `password`."""
    case, token, dn = executed_password_reset(tenant, slapd)
    client = Client()
    response = client.post(f"/recover/{token}/")
    assert response.status_code == 302 and response.url == "/owner/recovery/", response
    return Recovery(case=case, client=client, token=token, dn=dn)


def texts(outbox: Path) -> list[dict]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines()]


def pass_in(outbox: Path) -> str:
    bodies = [t["body"] for t in texts(outbox) if "temporary access pass is" in t["body"]]
    assert bodies, "no pass was texted"
    match = re.search(r"temporary access pass is ([A-Za-z0-9_\-]+)\.", bodies[-1])
    assert match and "/owner/pass/" in bodies[-1], bodies[-1]
    return match.group(1)


def mfa_session(tenant: Tenant, sms_outbox: Path, **attributes) -> Recovery:
    """An executed T0 MFA reset; the owner typed the texted pass at /owner/pass/."""
    case = ready_case(tenant, case_type="mfa_reset", **attributes)
    case = execute(case, staff(Role.AGENT, tenant=tenant))
    token = pass_in(sms_outbox)
    client = Client()
    response = client.post("/owner/pass/", {"access_pass": f" {token} "})
    assert response.status_code == 302 and response.url == "/owner/recovery/", response
    return Recovery(case=case, client=client, token=token)


def events(tenant: Tenant, action: str, case: RecoveryCase | None = None) -> list[AuditEvent]:
    rows = AuditEvent.objects.filter(tenant=tenant, action=action)
    if case is not None:
        rows = rows.filter(target_id=str(case.pk))
    return list(rows.order_by("seq"))


def tables_containing(text: str) -> list[str]:
    """Every table of the database with a row whose text form contains `text` (superuser:
    row-level security does not hide any row from this search)."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT count(*) FROM {quoted} AS t WHERE t::text LIKE %s",
                [f"%{text}%"],
            )
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def outbound_texts(sms_outbox: Path | None = None) -> str:
    """Everything sent to anyone so far: every email, and every text message."""
    parts = [f"{m.subject}\n{m.body}" for m in mail.outbox]
    if sms_outbox is not None:
        parts += [t["body"] for t in texts(sms_outbox)]
    return "\n".join(parts)

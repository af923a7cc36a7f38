"""Development fakes of Microsoft Entra ID (Graph), Okta and Google Workspace, for `make run`.

A recovery through a cloud connector has to happen in a directory. This runner serves the
protocol-faithful fakes the connector tests use (`tests/fakes`) on the fixed local ports of the
development settings (`FAKE_IDPS`), each holding acme's demo directory as that provider would:
every demo account that seed_demo imports, by its UPN, with one or two sign-in methods
registered long ago (so containment has lost ones to remove), the T2 administrator holding the
provider's top admin role (Global Administrator in Entra ID), and, in Entra ID only, the
shared mailbox as an account that cannot sign in. State lives in memory: every run starts
from this directory again.

Besides each vendor's API, every fake answers `GET /_demo/state`: its users, methods, roles and
sessions as read-only JSON, never a pass, key or token. The Graph fake also serves `/_demo/`,
the stand-in for Microsoft's sign-in page: with their UPN and the Temporary Access Pass the
owner portal showed them, the owner registers a new sign-in method there, and Entra's audit
log records "User registered security info", as Microsoft's own pages would.

Development only: it refuses to start unless DEBUG is on under the development settings (only
they define FAKE_IDPS). The credentials come from the environment variables the connector
settings name (scripts/run.sh sets them for each run); the files the settings name (the Graph
fake's CA certificate, the Google service account's key) are written at each start.

    python scripts/fake_idps.py          # serve until Ctrl-C or SIGTERM
    python scripts/fake_idps.py --dump   # print the running fakes' state as JSON
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import shutil
import signal
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import requests  # noqa: E402
from django.conf import settings  # noqa: E402

from tests.fakes.base import FakeRequest, FakeResponse, FakeService, route  # noqa: E402
from tests.fakes.google import FakeGoogle  # noqa: E402
from tests.fakes.graph import BUILT_IN_ROLES, FakeGraph, iso  # noqa: E402
from tests.fakes.okta import FakeOkta  # noqa: E402

REFUSED = 2  # exit status of a refusal (settings, missing credentials, a taken port)
# When the demo's people registered their methods: long before any recovery.
REGISTERED_AT = datetime(2023, 1, 1, tzinfo=UTC)
GLOBAL_ADMINISTRATOR = next(
    role_id for role_id, name in BUILT_IN_ROLES.items() if name == "Global Administrator"
)
# Methods the owner may register at the stand-in sign-in page: form value -> (Graph kind, label).
NEW_METHODS = {
    "passkey": ("fido2", "Passkey"),
    "authenticator": ("microsoftAuthenticator", "Microsoft Authenticator"),
}
# Where each fake is reached, by the connector setting that holds its address.
ADDRESS_SETTING = {"entra": "graph_url", "okta": "org_url", "google_workspace": "api_endpoint"}


class Refused(Exception):
    """The runner will not start; the message says why and what to do."""


@dataclass(frozen=True)
class Person:
    """One account of the demo directory, as every fake holds it."""

    upn: str
    name: str
    mobile: str
    admin: bool
    shared_mailbox: bool

    @property
    def first_name(self) -> str:
        return self.name.split()[0]


def refusal() -> str | None:
    """Why these settings may not run the fakes, or None. Read before Django is set up."""
    if settings.VOUCHSAFE_ENVIRONMENT != "development" or not getattr(settings, "FAKE_IDPS", None):
        return (
            f"fake_idps refuses to run with {settings.SETTINGS_MODULE}: the fakes are for "
            "development only (DJANGO_SETTINGS_MODULE=config.settings.dev defines FAKE_IDPS)."
        )
    if not settings.DEBUG:
        return "fake_idps refuses to run with DEBUG off: the fakes are for development only."
    return None


def demo_directory() -> tuple[str, list[Person]]:
    """The tenant whose connector seed_demo points at the Entra ID fake, and its demo accounts
    exactly as seed_demo imports them."""
    from tenants.management.commands.seed_demo import ACCOUNTS, CLOUD_TENANT, demo_records

    return CLOUD_TENANT, [
        Person(
            upn=record.username,
            name=record.display_name,
            mobile=next(c.value for c in record.contacts if c.kind == "mobile"),
            admin=bool(record.admin_roles),
            shared_mailbox=record.mailbox_type == "shared",
        )
        for record in demo_records(ACCOUNTS[CLOUD_TENANT])
    ]


def _credential(variable: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise Refused(
            f"fake_idps: set {variable}; the connector settings name it, and the fake must "
            "expect the credential the connector will send (scripts/run.sh sets it)."
        )
    return value


def _write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable by this user only, replacing an older copy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)


# --- the fakes, with their demo pages ----------------------------------------------------


class DemoGraph(FakeGraph):
    """The Graph fake, with the stand-in sign-in page where an owner uses their pass."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.passes_used: set[str] = set()  # one-time passes already signed in with

    @route("GET", r"/_demo/state")
    def demo_state(self, request: FakeRequest) -> FakeResponse:
        role_names = {r["id"]: r["displayName"] for r in self.role_definitions.values()}
        revoked = self.sessions_revoked_at
        users = [
            {
                **{name: user[name] for name in ("id", "userPrincipalName", "displayName")},
                "accountEnabled": user["accountEnabled"],
                "sessionsRevokedAt": revoked[user_id].isoformat() if user_id in revoked else None,
                "methods": [self._shown(method) for method in self.methods[user_id]],
                "roles": [
                    {"id": a["id"], "role": role_names.get(a["roleDefinitionId"], "")}
                    for a in self.role_assignments.values()
                    if a["principalId"] == user_id
                ],
            }
            for user_id, user in self.users.items()
        ]
        audits = [
            {
                "activityDateTime": audit["activityDateTime"],
                "activityDisplayName": audit["activityDisplayName"],
                "targets": [t.get("userPrincipalName") for t in audit["targetResources"]],
            }
            for audit in self.audits
        ]
        return FakeResponse(200, {"tenant_id": self.tenant_id, "users": users, "audits": audits})

    @route("GET", r"/_demo/")
    def demo_sign_in(self, request: FakeRequest) -> FakeResponse:
        return _page(200, "", _SIGN_IN_FORM)

    @route("POST", r"/_demo/register")
    def demo_register(self, request: FakeRequest) -> FakeResponse:
        """Sign in with a Temporary Access Pass and register a new sign-in method."""
        form = request.form()
        upn, given = form.get("upn", "").strip(), form.get("pass", "").strip()
        new = NEW_METHODS.get(form.get("method", ""))
        user = next(
            (u for u in self.users.values() if u["userPrincipalName"].lower() == upn.lower()),
            None,
        )
        tap = None if user is None else self._pass_of(user["id"])
        problem = self._sign_in_problem(user, tap, given) or ("" if new else "Choose a method.")
        if problem:
            return _page(400, f'<p role="alert">{html.escape(problem)}</p>', _SIGN_IN_FORM)
        assert user is not None and tap is not None and new is not None
        self.passes_used.add(tap["id"])
        kind, label = new
        method_id = self.add_method(user["id"], kind, displayName=f"{label} (demo)")
        self.add_audit(
            "User registered security info",
            "UserManagement",
            [{"id": user["id"], "type": "User", "userPrincipalName": user["userPrincipalName"]}],
            initiated_by=user["id"],
            service="Authentication Methods",
        )
        done = (
            f"<p role='status'>{html.escape(label)} registered for "
            f"{html.escape(user['userPrincipalName'])} (method {html.escape(method_id)}).</p>"
            "<p>Go back to the Vouchsafe recovery page and press "
            "“I have set up my new sign-in method”.</p>"
        )
        return _page(200, done, "")

    def _pass_of(self, user_id: str) -> dict[str, Any] | None:
        """The user's Temporary Access Pass method (Entra keeps at most one)."""
        return next(
            (m for m in self.methods[user_id] if self._kind(m) == "temporaryAccessPass"), None
        )

    def _sign_in_problem(
        self, user: dict[str, Any] | None, tap: dict[str, Any] | None, given: str
    ) -> str:
        """Why this sign-in with a pass fails, as the sign-in page says it; "" when it works."""
        if user is None:
            return "This account does not exist in the directory."
        if not user["accountEnabled"]:
            return "This account is disabled: it cannot sign in."
        if tap is None:
            return "This account has no Temporary Access Pass."
        if not secrets.compare_digest(self.pass_values.get(tap["id"], ""), given):
            return "That is not the Temporary Access Pass that was issued."
        if not self._shown(tap)["isUsable"]:
            return "That Temporary Access Pass has expired or is not valid yet."
        if tap["isUsableOnce"] and tap["id"] in self.passes_used:
            return "That Temporary Access Pass was for one sign-in, and it was used."
        return ""


class DemoOkta(FakeOkta):
    """The Okta fake, with its state to look at (a reset link is a credential: only whether
    one is pending)."""

    @route("GET", r"/_demo/state")
    def demo_state(self, request: FakeRequest) -> FakeResponse:
        users = [
            {
                "id": user_id,
                "login": user["profile"]["login"],
                "status": user["status"],
                "factors": [
                    {key: f[key] for key in ("id", "factorType", "provider", "status")}
                    for f in self.factors[user_id]
                ],
                "roles": [role["type"] for role in self.roles[user_id]],
                "sessions": self.sessions.get(user_id, 0),
                "oauthTokens": self.oauth_tokens.get(user_id, 0),
                "passwordResetPending": user_id in self.reset_urls,
            }
            for user_id, user in self.users.items()
        ]
        return FakeResponse(200, {"users": users, "sessionRevocations": len(self.revocations)})


class DemoGoogle(FakeGoogle):
    """The Workspace fake, with its state to look at (backup codes only counted)."""

    @route("GET", r"/_demo/state")
    def demo_state(self, request: FakeRequest) -> FakeResponse:
        role_names = {role_id: name for role_id, (name, _) in self.roles.items()}
        users = [
            {
                "id": user.id,
                "primaryEmail": user.primary_email,
                "isAdmin": user.is_admin,
                "suspended": user.suspended,
                "isEnrolledIn2Sv": user.enrolled_2sv,
                "backupCodes": len(self.backup_codes.get(user.id, [])),
                "roles": [
                    role_names.get(a["roleId"], a["roleId"])
                    for a in self.role_assignments.values()
                    if a["assignedTo"] == user.id
                ],
                "signOuts": self.signed_out.count(user.id),
            }
            for user in self.users.values()
        ]
        return FakeResponse(200, {"users": users})


_SIGN_IN_FORM = """
<form method="post" action="/_demo/register">
  <p><label>Username (UPN) <input name="upn" autocomplete="username" required></label></p>
  <p><label>Temporary Access Pass <input name="pass" autocomplete="off" required></label></p>
  <fieldset><legend>New sign-in method</legend>
    <label><input type="radio" name="method" value="passkey" checked> Passkey</label>
    <label><input type="radio" name="method" value="authenticator"> Authenticator app</label>
  </fieldset>
  <p><button type="submit">Sign in and register</button></p>
</form>"""


def _page(status: int, message: str, form: str) -> FakeResponse:
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        "<title>Fake Entra ID sign-in (development)</title>"
        "<h1>Fake Entra ID sign-in (development)</h1>"
        "<p>The stand-in for Microsoft's sign-in and Security info pages: sign in with the "
        "Temporary Access Pass from the Vouchsafe owner portal and register a new method.</p>"
        f"{message}{form}</html>"
    )
    return FakeResponse(status, body.encode(), {"Content-Type": "text/html; charset=utf-8"})


# --- the demo directory in each provider ---------------------------------------------------


def seed_graph(fake: DemoGraph, people: list[Person]) -> None:
    # The tenant's pass policy as an admin sets it for Vouchsafe: one-time passes, any
    # lifetime the connector may ask (R-31: 10 minutes to 8 hours).
    fake.tap_min_minutes, fake.tap_max_minutes, fake.tap_usable_once_only = 10, 480, True
    long_ago = iso(REGISTERED_AT.timestamp())
    for person in people:
        user_id = fake.add_user(
            person.upn, person.name, enabled=not person.shared_mailbox, mobilePhone=person.mobile
        )
        if person.shared_mailbox:
            continue
        fake.add_method(
            user_id,
            "microsoftAuthenticator",
            displayName=f"{person.first_name}'s phone",
            deviceTag="SoftwareTokenActivated",
            createdDateTime=long_ago,
        )
        fake.add_method(user_id, "phone", phoneType="mobile", phoneNumber=person.mobile)
        if person.admin:
            fake.add_method(user_id, "fido2", displayName="Security key", createdDateTime=long_ago)
            fake.add_role_assignment(user_id, GLOBAL_ADMINISTRATOR)


def seed_okta(fake: DemoOkta, people: list[Person], api_token: str) -> None:
    fake.add_api_token(api_token)
    for person in (p for p in people if not p.shared_mailbox):
        first, _, last = person.name.partition(" ")
        user_id = fake.add_user(person.upn, first, last, mobilePhone=person.mobile)["id"]
        fake.add_factor(user_id, "push", name=f"{person.first_name}'s phone")
        fake.add_factor(user_id, "sms", phoneNumber=person.mobile)
        if person.admin:
            fake.add_factor(user_id, "webauthn", "FIDO", authenticatorName="Security key")
            fake.add_role(user_id, "SUPER_ADMIN")
        fake.give_sessions(user_id)


def seed_google(fake: DemoGoogle, people: list[Person], admin_email: str) -> dict[str, str]:
    """The directory, its delegated administrator and the service account; answers the key."""
    from recovery.connectors.google_client import SCOPES

    key = fake.add_service_account()
    fake.delegate(key["client_id"], *SCOPES)
    fake.add_user(admin_email, "Workspace Admin", is_admin=True)
    super_admin = fake.add_role("_SEED_ADMIN_ROLE", super_admin=True)
    for person in (p for p in people if not p.shared_mailbox):
        user = fake.add_user(person.upn, person.name, is_admin=person.admin, enrolled_2sv=True)
        fake.add_backup_codes(user.id, *(f"{secrets.randbelow(10**8):08d}" for _ in range(2)))
        if person.admin:
            fake.add_role_assignment(user.id, super_admin)
    return key


# --- running --------------------------------------------------------------------------------


def _listening(fake: FakeService, port: int) -> None:
    fake.listen_port = port
    try:
        fake.start()
    except OSError as error:
        raise Refused(
            f"fake_idps: cannot listen on 127.0.0.1:{port} ({error.strerror}); choose free "
            "ports with VOUCHSAFE_FAKE_GRAPH_PORT, _OKTA_PORT and _GOOGLE_PORT."
        ) from None


def serve(stop: threading.Event) -> None:
    """Start the three fakes with the demo directory, say where, and serve until `stop`."""
    ports = {kind: fake["port"] for kind, fake in settings.FAKE_IDPS.items()}
    entra, okta, google = (settings.FAKE_IDPS[kind]["settings"] for kind in ADDRESS_SETTING)
    graph = DemoGraph(
        tenant_id=entra["tenant_id"],
        client_id=entra["client_id"],
        client_secret=_credential(entra["client_secret_env"]),
    )
    okta_token = _credential(okta["api_token_env"])
    okta_fake, google_fake = DemoOkta(), DemoGoogle()
    services: dict[str, FakeService] = {
        "entra": graph,
        "okta": okta_fake,
        "google_workspace": google_fake,
    }
    tenant, people = demo_directory()
    with ExitStack() as running:
        for kind, fake in services.items():
            _listening(fake, ports[kind])
            running.callback(fake.stop)
        seed_graph(graph, people)
        seed_okta(okta_fake, people, okta_token)
        key = seed_google(google_fake, people, google["admin_email"])
        _write_private(Path(google["service_account_key_file"]), json.dumps(key, indent=2))
        Path(entra["ca_bundle"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graph.ca_path, entra["ca_bundle"])
        print(_announcement(tenant, services, entra["ca_bundle"]), flush=True)
        stop.wait()


def _announcement(tenant: str, services: dict[str, FakeService], ca_bundle: str) -> str:
    lines = [f"Fake identity providers (development only; {tenant}'s demo directory):"]
    for kind, fake in services.items():
        lines.append(f"  {kind:<17} {fake.url:<24}  state: {fake.url}/_demo/state")
    graph = services["entra"].url
    lines += [
        f"  {'':<17} {'':<24}  CA: {ca_bundle}",
        f"  The owner signs in with their pass and adds a sign-in method at {graph}/_demo/",
        "  Connector settings for each: FAKE_IDPS in config/settings/dev.py.",
    ]
    return "\n".join(lines)


def dump() -> dict[str, Any]:
    """What each running fake holds now (its /_demo/state)."""
    state = {}
    for kind, where in ADDRESS_SETTING.items():
        connector = settings.FAKE_IDPS[kind]["settings"]
        verify = connector.get("ca_bundle") or True
        answer = requests.get(f"{connector[where]}/_demo/state", verify=verify, timeout=5)
        answer.raise_for_status()
        state[kind] = answer.json()
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", action="store_true", help="print the running fakes' state")
    options = parser.parse_args(argv)
    if (reason := refusal()) is not None:
        print(reason, file=sys.stderr)
        return REFUSED
    import django

    django.setup()
    if options.dump:
        try:
            print(json.dumps(dump(), indent=2))
        except requests.RequestException as error:
            print(f"fake_idps: the fakes do not answer ({error}).", file=sys.stderr)
            return 1
        return 0
    stop = threading.Event()

    def ended(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, ended)
    signal.signal(signal.SIGINT, ended)
    try:
        serve(stop)
    except Refused as refused:
        print(refused, file=sys.stderr)
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())

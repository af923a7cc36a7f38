"""The development fakes of the cloud identity providers (scripts/fake_idps.py) as `make run`
starts them: a process of their own on the ports, and with the credentials, that the
development settings name; answering the connectors built from those settings with acme's
demo directory; refusing to run outside development. And seed_demo pointing acme's connector
at the Entra ID fake, once, through dual control.

No database: the runner and seed_demo run as separate processes (seed_demo on SQLite).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from recovery.connectors.cloud import ChangeKind
from recovery.connectors.graph_client import GraphClient
from recovery.connectors.selectors import connector_build
from recovery.connectors.validation import validate_settings
from recovery.models import ProtectedAccount
from tenants.management.commands.seed_demo import ACCOUNTS
from tenants.models import Tenant
from tests.fakes.base import free_port
from tests.integration.test_settings_and_commands import PRODUCTION_ENV

ROOT = Path(settings.BASE_DIR)
RUNNER = ROOT / "scripts" / "fake_idps.py"
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
CREDENTIALS = {"DEMO_ENTRA_CLIENT_SECRET": "entra-secret-for-this-run", "DEMO_OKTA_API_TOKEN": "ok"}
OUTSIDE = {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "DEBUG", "REQUESTS_CA_BUNDLE"}
ACME = Tenant(pk=1, slug="acme", name="Acme Corporation")


def account(username: str) -> ProtectedAccount:
    return ProtectedAccount(external_id=username, username=username, idp_subject=username)


def environment(folder: Path, **extra: str) -> dict[str, str]:
    """What `make run` gives the runner: the development settings, its ports and folder, the
    credentials of this run; nothing of the test process's own settings."""
    clean = {name: value for name, value in os.environ.items() if name not in OUTSIDE}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "VOUCHSAFE_FAKE_IDPS_DIR": str(folder),
        "VOUCHSAFE_FAKE_GRAPH_PORT": str(free_port()),
        "VOUCHSAFE_FAKE_OKTA_PORT": str(free_port()),
        "VOUCHSAFE_FAKE_GOOGLE_PORT": str(free_port()),
        **CREDENTIALS,
        **extra,
    }


def run(args: list[str], env: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def development_settings(env: dict[str, str]) -> dict[str, Any]:
    """FAKE_IDPS as the development settings build it in this environment."""
    read = "import django, json; django.setup(); from django.conf import settings as s; "
    answer = run(["-c", read + "print(json.dumps(s.FAKE_IDPS))"], env)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


@dataclass
class Running:
    env: dict[str, str]
    fakes: dict[str, Any]  # FAKE_IDPS: per kind, the port and the connector settings
    process: subprocess.Popen[str]

    def connector_settings(self, kind: str) -> dict[str, Any]:
        return validate_settings(kind, self.fakes[kind]["settings"])

    def state_url(self) -> str:
        return f"{self.fakes['entra']['settings']['graph_url']}/_demo/state"

    @property
    def ca_bundle(self) -> str:
        return self.fakes["entra"]["settings"]["ca_bundle"]


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The runner in its own process, until the Graph fake answers over TLS with the CA the
    settings name; stopped with SIGTERM, as `make run` stops it, and it must stop cleanly."""
    env = environment(tmp_path_factory.mktemp("fake-idps"))
    process = subprocess.Popen(
        [sys.executable, str(RUNNER)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(env, development_settings(env), process)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()
        try:
            requests.get(running.state_url(), verify=running.ca_bundle, timeout=2)
            break
        except (requests.ConnectionError, OSError):
            assert time.monotonic() < deadline, "the fakes did not answer within 30 s"
            time.sleep(0.1)
    yield running
    process.send_signal(signal.SIGTERM)
    output, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert f"{running.fakes['entra']['settings']['graph_url']}" in output


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the connector settings name, as the web and worker processes see them."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def graph_client(fakes: Running) -> GraphClient:
    entra = fakes.connector_settings("entra")
    return GraphClient(
        tenant_id=entra["tenant_id"],
        client_id=entra["client_id"],
        client_secret=CREDENTIALS["DEMO_ENTRA_CLIENT_SECRET"],
        authority_host=entra["authority_host"],
        graph_url=f"{entra['graph_url']}/v1.0",
        verify=entra["ca_bundle"],
    )


# --- the fakes answer the connectors built from the development settings -----------------


def test_each_cloud_connector_reaches_its_fake_with_the_development_settings(
    fakes: Running, credentials: None
) -> None:
    for kind in ("entra", "okta", "google_workspace"):
        connector = connector_build(tenant=ACME, kind=kind, settings=fakes.connector_settings(kind))
        health = connector.health()
        assert health.ok, (kind, health.detail)


def test_graph_token_endpoint_takes_only_the_secret_of_this_run(fakes: Running) -> None:
    entra = fakes.connector_settings("entra")
    token_url = f"{entra['authority_host']}/{entra['tenant_id']}/oauth2/v2.0/token"

    def token(secret: str) -> requests.Response:
        form = {
            "grant_type": "client_credentials",
            "client_id": entra["client_id"],
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        }
        return requests.post(token_url, data=form, verify=entra["ca_bundle"], timeout=5)

    granted = token(CREDENTIALS["DEMO_ENTRA_CLIENT_SECRET"])
    assert granted.status_code == 200 and granted.json()["token_type"] == "Bearer"
    refused = token("another-secret")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_graph_users_are_acmes_demo_accounts_with_methods_and_roles(fakes: Running) -> None:
    client = graph_client(fakes)
    for _, username, name, attributes in ACCOUNTS["acme"]:
        user = client.user_get(username)
        assert (user.username, user.display_name) == (username, name)
        assert user.enabled is (attributes.get("mailbox_type") != "shared"), username
    jane = client.user_get("jdoe@acme.example")
    methods = {method.kind: method for method in client.methods_list(jane.id)}
    assert set(methods) == {"password", "microsoftAuthenticator", "phone"}
    assert methods["microsoftAuthenticator"].created_at == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    assert client.role_assignments_list(jane.id) == []
    admin = client.user_get("it-admin@acme.example")
    assert "fido2" in {method.kind for method in client.methods_list(admin.id)}
    roles = client.role_assignments_list(admin.id)
    assert [(r.role_id, r.role_name) for r in roles] == [
        (GLOBAL_ADMINISTRATOR, "Global Administrator")
    ]


# --- the owner's stand-in sign-in, and the state a person can look at ----------------------


def register(fakes: Running, upn: str, given: str, method: str = "passkey") -> requests.Response:
    url = f"{fakes.fakes['entra']['settings']['graph_url']}/_demo/register"
    form = {"upn": upn, "pass": given, "method": method}
    return requests.post(url, data=form, verify=fakes.ca_bundle, timeout=5)


def test_owner_adds_a_passkey_only_with_the_pass_and_only_once(
    fakes: Running, credentials: None
) -> None:
    fiona = account("fiona@acme.example")
    connector = connector_build(
        tenant=ACME, kind="entra", settings=fakes.connector_settings("entra")
    )
    assert connector.execute(account=fiona, case_type="mfa_reset", case_id=1).ok
    before = {method.id for method in connector.methods_list(account=fiona)}
    result, issued = connector.temporary_pass_issue(
        account=fiona, case_type="mfa_reset", lifetime_minutes=60
    )
    assert result.ok and issued is not None

    wrong = register(fakes, "fiona@acme.example", issued.secret + "x")
    other = register(fakes, "jdoe@acme.example", issued.secret)
    assert (wrong.status_code, other.status_code) == (400, 400)
    assert "not the Temporary Access Pass" in wrong.text and "no Temporary Access" in other.text
    assert register(fakes, "FIONA@acme.example", issued.secret).status_code == 200
    again = register(fakes, "fiona@acme.example", issued.secret, "authenticator")
    assert again.status_code == 400 and "it was used" in again.text

    added = [m for m in connector.methods_list(account=fiona) if m.id not in before | {issued.id}]
    assert [(m.kind, m.phishing_resistant) for m in added] == [("fido2", True)]
    assert added[0].created_at is not None and issued.expires_at is not None
    assert added[0].created_at >= issued.expires_at - dt.timedelta(minutes=60)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    reported = connector.changes_since(account=fiona, since=since)
    assert [change.kind for change in reported] == [ChangeKind.MFA_ENROLLED]

    state = requests.get(fakes.state_url(), verify=fakes.ca_bundle, timeout=5)
    dumped = run([str(RUNNER), "--dump"], fakes.env)
    assert dumped.returncode == 0, dumped.stderr
    assert issued.secret not in state.text and issued.secret not in dumped.stdout
    assert CREDENTIALS["DEMO_ENTRA_CLIENT_SECRET"] not in dumped.stdout
    everything = json.loads(dumped.stdout)
    assert set(everything) == {"entra", "okta", "google_workspace"}
    users = {user["userPrincipalName"]: user for user in everything["entra"]["users"]}
    kinds = [m["@odata.type"].split(".")[-1] for m in users["fiona@acme.example"]["methods"]]
    assert "fido2AuthenticationMethod" in kinds
    assert [r["role"] for r in users["it-admin@acme.example"]["roles"]] == ["Global Administrator"]
    okta_logins = {user["login"] for user in everything["okta"]["users"]}
    assert "it-admin@acme.example" in okta_logins


# --- refused outside development -----------------------------------------------------------


@pytest.mark.parametrize(
    "outside",
    [
        {"DJANGO_SETTINGS_MODULE": "config.settings.test"},
        PRODUCTION_ENV,
        {"DEBUG": "false"},
    ],
    ids=["test settings", "production settings", "debug off"],
)
def test_runner_refuses_to_start_outside_development(
    tmp_path: Path, outside: dict[str, str]
) -> None:
    env = environment(tmp_path, **outside)
    refused = run([str(RUNNER)], env, timeout=30)
    assert refused.returncode == 2
    assert "fake_idps refuses to run" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # no CA, no key: nothing started


def test_runner_refuses_without_the_credentials_the_settings_name(tmp_path: Path) -> None:
    env = environment(tmp_path)
    del env["DEMO_ENTRA_CLIENT_SECRET"]
    refused = run([str(RUNNER)], env, timeout=30)
    assert refused.returncode == 2
    assert "set DEMO_ENTRA_CLIENT_SECRET" in refused.stderr


def test_runner_says_which_port_is_taken(tmp_path: Path) -> None:
    env = environment(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["VOUCHSAFE_FAKE_OKTA_PORT"])))
        taken.listen()
        refused = run([str(RUNNER)], env, timeout=30)
    assert refused.returncode == 2
    assert f"cannot listen on 127.0.0.1:{env['VOUCHSAFE_FAKE_OKTA_PORT']}" in refused.stderr


# --- seed_demo: acme's connector is the Entra ID fake --------------------------------------


def test_seed_demo_points_acme_at_the_entra_fake_once_and_follows_its_port(tmp_path: Path):
    database = tmp_path / "demo.sqlite3"
    env = environment(
        tmp_path / "fakes",
        DATABASE_URL=f"sqlite:///{database}",
        DEMO_CREDENTIALS_PATH=str(tmp_path / "demo-credentials.json"),
    )
    port = env["VOUCHSAFE_FAKE_GRAPH_PORT"]
    assert run(["manage.py", "migrate", "--noinput"], env, timeout=300).returncode == 0
    for _ in range(2):
        seeded = run(["manage.py", "seed_demo"], env, timeout=300)
        assert seeded.returncode == 0, seeded.stderr
        assert f"Connector of acme: entra, the development fake at https://127.0.0.1:{port}" in (
            seeded.stdout
        )

    def connectors() -> tuple[list[tuple], list[tuple]]:
        with sqlite3.connect(database) as db:
            changes = db.execute(
                "SELECT t.slug, c.kind, c.status, r.username, d.username FROM "
                "recovery_connectorchange c JOIN tenants_tenant t ON t.id = c.tenant_id "
                "JOIN tenants_user r ON r.id = c.requested_by_id "
                "JOIN tenants_user d ON d.id = c.decided_by_id ORDER BY c.id"
            ).fetchall()
            configs = db.execute(
                "SELECT t.slug, c.kind, c.is_active, c.settings FROM recovery_connectorconfig c "
                "JOIN tenants_tenant t ON t.id = c.tenant_id"
            ).fetchall()
        return changes, [(slug, kind, active, json.loads(s)) for slug, kind, active, s in configs]

    changes, configs = connectors()
    assert changes == [("acme", "entra", "applied", "acme-admin", "acme-admin2")]
    [(slug, kind, active, stored)] = configs  # globex keeps the manual connector
    assert (slug, kind, active) == ("acme", "entra", 1)
    assert stored == validate_settings("entra", development_settings(env)["entra"]["settings"])
    assert stored["ca_bundle"] == str(tmp_path / "fakes" / "graph-ca.pem")

    env["VOUCHSAFE_FAKE_GRAPH_PORT"] = moved = str(free_port())
    assert run(["manage.py", "seed_demo"], env, timeout=300).returncode == 0
    changes, [(_, _, _, stored)] = connectors()
    assert len(changes) == 2
    assert stored["authority_host"] == stored["graph_url"] == f"https://127.0.0.1:{moved}"

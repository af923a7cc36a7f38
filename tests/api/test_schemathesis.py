"""The API against its own OpenAPI schema, with schemathesis, in process, on the test database.

The schema is the one the app serves at /api/v1/schema/. Every operation gets:

- schemathesis' coverage phase (deterministic boundary values, wrong types, missing fields,
  unexpected methods and content types), positive and negative;
- generated requests, positive and negative (MAX_EXAMPLES each, derandomised);
- on a list, crafted pagination cursors (CRAFTED_CURSORS), which random strings rarely reach.

Requests carry a full-scope integration key (a verified staff session with its CSRF token for
the staff-only operations no key may call), the tenant's slug and real object ids in the path,
so they reach the views rather than stopping at 401s and 404s. Each request runs in a savepoint
that is rolled back, so every one starts from the same objects (a cancelled case does not turn
the rest into 409s), and the same requests are sent on every run.

Checks: no 5xx, every status code, body and content type as documented. The run prints
`SCHEMATHESIS requests=<n> operations=<m> failures=<k>` and writes that line, the statuses seen
per operation and each distinct failure to var/schemathesis-report.txt.
"""

from __future__ import annotations

import os
import re
import traceback
from base64 import b64encode
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.base import TenantApiView
from audit.checkpoints import key_pair_new
from tenants.choices import Role, StaffScope

from .. import factories
from ..conftest import signed_in_client
from .objects import Route, TenantObjects, all_routes, broad_staff, builder_for, url_value

pytestmark = pytest.mark.django_db

SCHEMA_PATH = "/api/v1/schema/"
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
REPORT = Path(django_settings.BASE_DIR) / "var" / "schemathesis-report.txt"
# Cursors the API never gave out, sent to every operation with a `cursor` parameter: a date
# where an id goes (issue 17), a non-numeric position, garbage, a negative offset.
CRAFTED_CURSORS = [
    b64encode(query.encode()).decode()
    for query in ("p=2026-01-01 00:00:00&r=1", "p=1 OR 1=1", "p=12345&r=1", "o=-5&p=1")
] + ["%%%not-base64%%%"]


@contextmanager
def connection_kept_open():
    """Let Django's WSGI handler run on the test's own connection and transaction.

    The handler closes "old" connections when a request starts and ends, which would end the
    test's transaction; Django's test client unhooks that around each of its requests the same
    way (and hooks it back afterwards, so this wraps only the part that sends requests).
    """
    hooks = (signals.request_started, signals.request_finished)
    for signal in hooks:
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in hooks:
            signal.connect(close_old_connections)


@pytest.fixture
def server_errors():
    """Tracebacks of exceptions the views raised, so a 500 is reported with its cause."""
    seen: list[str] = []

    def remember(sender, request=None, **kwargs):
        seen.append(traceback.format_exc())

    signals.got_request_exception.connect(remember)
    yield seen
    signals.got_request_exception.disconnect(remember)


# --- what each operation is sent with -------------------------------------------------------


@dataclass
class Plan:
    operation: Any
    path_parameters: dict[str, Any]
    headers: dict[str, str]
    cookies: dict[str, str]

    @property
    def staff(self) -> bool:
        return bool(self.cookies)


def _routes_by_schema_path() -> dict[str, Route]:
    """'/api/v1/t/{tenant}/cases/{case_id}/' -> the route (and view) mounted there."""
    return {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", "/" + route.route): route
        for route in all_routes()
        if route.view_class is not None
    }


def _path_parameters(path: str, objs: TenantObjects, app_label: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in re.findall(r"{(\w+)}", path):
        if name == "tenant":
            values[name] = objs.tenant.slug
        elif builder_for(name, app_label) is None:
            pytest.fail(
                f"{path}: no object for the path parameter {name!r}; add it to OBJECT_MAP "
                "(with a builder) in tests/api/objects.py"
            )
        else:
            values[name] = url_value(objs, name, app_label)
    return values


def _needs_staff(route: Route | None, method: str) -> bool:
    """Staff-only methods, and views outside TenantApiView (which no key may call)."""
    if route is None or not issubclass(route.view_class, TenantApiView):
        return True
    scope = route.view_class.scopes.get(method)
    return scope is None or scope in StaffScope.values


def _session(user) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and cookies of `user`'s verified staff session (with its CSRF token)."""
    browser = signed_in_client(user)
    browser.get("/")  # sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    session = browser.cookies["sessionid"].value
    return {"X-CSRFToken": csrf}, {"sessionid": session, "csrftoken": csrf}


def _plans(schema, objs: TenantObjects) -> list[Plan]:
    routes = _routes_by_schema_path()
    key = ({"Authorization": f"Bearer {factories.api_key(objs.tenant).token}"}, {})
    staff = _session(broad_staff(objs.tenant))
    plans = []
    for result in schema.get_all_operations():
        operation = result.ok()
        route = routes.get(operation.path)
        parameters = _path_parameters(operation.path, objs, route.app if route else "")
        if "provider" in parameters:  # a provider's own route: one of its staff signs in
            member = factories.staff(Role.TENANT_ADMIN, provider=objs.get("provider"))
            headers, cookies = _session(member)
        elif _needs_staff(route, operation.method.upper()):
            headers, cookies = staff
        else:
            headers, cookies = key
        plans.append(Plan(operation, parameters, headers, cookies))
    return plans


def _negatable(operation) -> bool:
    """Whether negative data is possible: a body or a query parameter (the path parameters are
    fixed, and header values are all strings, so nothing else can be made invalid)."""
    return bool(len(operation.body) or len(operation.query))


# --- sending and checking -------------------------------------------------------------------


@dataclass
class Run:
    server_errors: list[str]
    sent: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, title)
    notes: list[str] = field(default_factory=list)

    def send(self, case, plan: Plan, phase: str) -> None:
        """One request, in a savepoint rolled back afterwards, and the checks on its answer."""
        headers = {**(case.headers or {}), **plan.headers}
        if plan.staff:  # a session's request: no generated `Authorization` may win over it
            headers.pop("Authorization", None)
        case.headers = headers
        del self.server_errors[:]
        with transaction.atomic():
            response = case.call(cookies=plan.cookies)
            self.sent[case.operation.label, response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (FailureGroup, Failure) as error:
                found = error.exceptions if isinstance(error, FailureGroup) else [error]
                for failure in found:
                    self.record(phase, case, response, failure)
            transaction.set_rollback(True)

    def cover(self, schema, plan: Plan) -> None:
        """Schemathesis' coverage phase, with the real tenant and ids in the path (except a
        path parameter the case is about: an invalid id is the point of that case)."""
        operation = plan.operation
        config = schema.config.generation_for(operation=operation, phase="coverage")
        for case in schema.iter_coverage_cases(
            operation, generation_modes=list(MODES), generation_config=config
        ):
            data = case.meta.phase.data if case.meta else None
            kept = {}
            if getattr(data, "parameter_location", None) == ParameterLocation.PATH:
                kept = {data.parameter: case.path_parameters[data.parameter]}
            case.path_parameters = {**plan.path_parameters, **kept}
            mode = case.meta.generation.mode.value if case.meta else "coverage"
            self.send(case, plan, f"coverage/{mode}")

    def cursors(self, plan: Plan) -> None:
        """Crafted pagination cursors on a list (random strings rarely decode to a cursor):
        each must be refused as the schema says (400), never a 5xx."""
        if not any(param.name == "cursor" for param in plan.operation.query):
            return
        for cursor in CRAFTED_CURSORS:
            case = plan.operation.Case(
                path_parameters=plan.path_parameters,
                headers=dict(plan.headers),
                query={"cursor": cursor},
            )
            self.send(case, plan, "cursor")

    def fuzz(self, plan: Plan, mode: GenerationMode) -> None:
        """MAX_EXAMPLES generated requests (derandomised: the same ones every run)."""
        strategy = plan.operation.as_strategy(
            generation_mode=mode, path_parameters=plan.path_parameters, headers=plan.headers
        )

        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @given(case=strategy)
        def exercise(case):
            self.send(case, plan, f"fuzz/{mode.value}")

        try:
            exercise()
        except Unsatisfiable:
            self.notes.append(f"{plan.operation.label} [{mode.value}]: no data generated")

    def record(self, phase: str, case, response, failure) -> None:
        key = (case.operation.label, failure.title)
        if key in self.failures:
            return
        headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
        request = (
            f"{case.method} {case.formatted_path} query={case.query!r} headers={headers!r} "
            f"body={case.body!r}"
        )
        text = (
            f"[{phase}] {case.operation.label}: {failure.title}\n"
            f"  request: {request[:1000]}\n"
            f"  response: {response.status_code} {response.content[:500]!r}\n"
            f"  {failure.message[:1500]}"
        )
        if self.server_errors:
            text += "\n  server traceback:\n" + self.server_errors[-1]
        self.failures[key] = text

    def report(self, operations: int) -> str:
        requests = sum(self.sent.values())
        line = (
            f"SCHEMATHESIS requests={requests} operations={operations} "
            f"failures={len(self.failures)}"
        )
        seen = sorted(self.sent.items())
        statuses = "\n".join(
            f"{label}: " + ", ".join(f"{code}x{n}" for (op, code), n in seen if op == label)
            for label in sorted({label for label, _code in self.sent})
        )
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(
            "\n\n".join([line, statuses, "\n".join(self.notes), *self.failures.values()]) + "\n",
            encoding="utf-8",
        )
        return line


def _checkpoint_key_and_store(settings, folder: Path) -> None:
    """A signing key and a store, so the evidence bundle route can sign its checkpoint."""
    key_id, private, public = key_pair_new()
    (folder / "trusted").mkdir(parents=True)
    (folder / "signing.pem").write_bytes(private)
    (folder / "trusted" / f"{key_id.replace(':', '-')}.pem").write_bytes(public)
    settings.AUDIT_SIGNING_KEY_FILE = str(folder / "signing.pem")
    settings.AUDIT_TRUSTED_KEYS = [str(folder / "trusted")]
    settings.AUDIT_CHECKPOINT_STORES = [
        {"CLASS": "audit.checkpoints.DirectoryStore", "OPTIONS": {"path": str(folder / "store")}}
    ]


def test_every_operation_conforms_to_its_schema(server_errors, settings, tmp_path):
    # A run sends more than a principal's per-minute budget; throttling is not under test
    # here, and a 429 in place of the view would hide what the view does.
    settings.API_THROTTLE_RATES = {"api_key": "1000000/min", "staff": "1000000/min"}
    _checkpoint_key_and_store(settings, tmp_path)
    objs = TenantObjects.create()
    with connection_kept_open():
        schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, WSGIHandler())
    plans = _plans(schema, objs)
    objs.frozen = True  # everything is built before the per-request savepoints start

    run = Run(server_errors)
    with connection_kept_open():
        for plan in plans:
            run.cover(schema, plan)
            run.cursors(plan)
            for mode in MODES:
                if mode is GenerationMode.NEGATIVE and not _negatable(plan.operation):
                    run.notes.append(f"{plan.operation.label} [negative]: only path parameters")
                    continue
                run.fuzz(plan, mode)

    line = run.report(len(plans))
    print("\n" + line)
    failures = "\n\n".join(run.failures.values())
    if failures:
        print(failures)
    assert plans and sum(run.sent.values()) >= len(plans), line
    assert not run.failures, f"{line} (details in {REPORT})\n{failures}"

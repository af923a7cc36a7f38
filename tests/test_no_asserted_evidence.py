"""No signal is accepted on anyone's say-so: for S1 to S5, no route, form, command or service
lets a person or a key create an accepted evidence row without the verifier that checks it.

Four sweeps, each generated from the code rather than listed by hand:

1. **Routes** (from the URLconf, `django.urls.get_resolver()` through `tests/api/objects.py`
   `all_routes`). Every route under `/api/v1/`, the console under `/t/<tenant>/` and the site
   root (the owner and manager confirmation pages, the proofing providers' verdict endpoint)
   is filled with the ids of one real case of the tenant and its objects (a challenge waiting
   for its code, an attended session waiting for its referee, an attachment, …). Every unsafe
   method a view implements (POST for function views, which do not declare theirs) is sent an
   *assertion* body for every catalogue method with its class, and for every class with a
   name the catalogue lacks (`passphrase`, `looked_at_video` …) — `verified: true`,
   `result: accepted`, the method's own verifier and a real record id of it, the subject's own
   email as `contact_method_id`, and the fields the verifier forms ask for — by each principal:
   agent (the case's opener), supervisor, security officer, tenant admin (staff sessions,
   which also reach the console), an integration key with every scope, an AI assistant's key,
   and nobody. Each request runs in a savepoint rolled back afterwards, so each starts from
   the same case collecting evidence. After each one: no accepted evidence row exists in the
   tenant at all (none of the real verifiers was completed: nobody read back a code, no
   manager attested, no provider signed a verdict, no referee ended a session), and therefore
   none without a matching verifier record either.

   `FieldWatch` keeps this fast without losing a case: it records which body fields the view
   looked at, and a body is left out only when it agrees with one already sent on all of
   them (the view cannot tell the two apart). A view refused at the door looks at nothing, so
   one body per principal shows it; the old evidence endpoint reads the class and the method,
   so it gets every body. Form fields read under a prefix (`context-topic`) are learnt, and
   the bodies are sent again with every field under that prefix too, so a checkbox a console
   form grows (`context-verified`) is ticked.
2. **Services** (from the modules, with `inspect` and `ast`). Every function of the project's
   packages is parsed; the calls that reach `evidence_from_verifier` or `_evidence_write` (the
   only code that stores an evidence row) are followed back to their callers. Only the
   declared verifiers (`VERIFIERS`) and `context_record` (context, never counted) may reach
   them, through private helpers of their own modules; no view or API module names them.
3. **Management commands** (from `django.core.management.get_commands()`, each loaded and asked
   for `--help`): none imports or calls what stores evidence.
4. **The gate itself**: `evidence_from_verifier` accepts a method only from its own verifier
   (S1 and S5 only from the owner portal's: a saved code's check, a passkey confirmation, an
   identity provider sign-in validated at its callback).

**A new route is covered the moment it is mounted**: its unsafe methods are swept with the rest.
If it has a URL kwarg this module cannot fill, `test_every_swept_route_can_be_filled` fails and
says where to add it (`OBJECT_MAP` in tests/api/objects.py for API routes, `SITE_KWARGS` here
for the console and the site root). A route is left out only by being listed in `NOT_SWEPT`,
with its reason. A new service function that reaches the evidence writer fails the service
sweep unless it is added to `VERIFIERS`; a new command is enumerated like the others.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import ManagementUtility, get_commands
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from recovery.cases.choices import EvidenceResult, SignalClass, Verifier
from recovery.cases.methods import CATALOGUE, METHODS
from recovery.cases.models import Evidence
from recovery.challenges.choices import ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.owner.models import IdpSignIn, OwnerConfirmation, RecoveryCodeCheck
from recovery.proofing.models import AttendedSession, ProofingSession
from tenants.choices import Role

from . import factories
from .api.conftest import key_client
from .api.objects import (
    Route,
    TenantObjects,
    all_routes,
    builder_for,
    staff_session,
    url_value,
)

BASE = Path(settings.BASE_DIR)
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

# --- what stores evidence, and who may reach it ---------------------------------------------

SERVICES = "recovery.cases.services.evidence"
EVIDENCE_FROM_VERIFIER = f"{SERVICES}.evidence_from_verifier"
EVIDENCE_WRITE = f"{SERVICES}._evidence_write"
VERIFIED_SIGNAL = f"{SERVICES}.VerifiedSignal"
SINKS = frozenset({EVIDENCE_FROM_VERIFIER, EVIDENCE_WRITE})
# The verifiers: the only public functions through which an accepted row can come to exist,
# each after checking something the claimant cannot talk an agent into.
VERIFIERS = frozenset(
    {
        "recovery.challenges.services.challenge_verify",  # S2: the code read back
        "recovery.challenges.services.challenge_link_confirm",  # S2: the owner's link
        "recovery.challenges.services.attestation_confirm",  # S3: the manager's own session
        "recovery.proofing.services.proofing_verdict_receive",  # S4: a provider's signed verdict
        "recovery.proofing.attended.attended_complete",  # S4: a certified referee's session
        "recovery.owner.signals.recovery_code_check",  # S1: a saved code's digest matched
        "recovery.owner.confirmation.confirmation_assert",  # S5: the owner's passkey assertion
        "recovery.owner.idp_sign_in.idp_sign_in_complete",  # S5: an ID token the IdP signed
    }
)
# Stores context only (result `context`, never counted), through `_evidence_write`.
CONTEXT_WRITERS = frozenset({f"{SERVICES}.context_record"})
ALLOWED_REACHERS = SINKS | VERIFIERS | CONTEXT_WRITERS
# Modules whose private helpers may sit between a verifier and the evidence writer.
VERIFIER_MODULES = frozenset(name.rpartition(".")[0] for name in ALLOWED_REACHERS)
PROJECT_PACKAGES = ("api", "audit", "config", "integrations", "recovery", "tenants")
# The service list of the issue: every public function of these modules is enumerated.
SERVICE_MODULE_GLOBS = (
    "recovery/**/services*.py",
    "recovery/proofing/*.py",
    "recovery/cases/services/*.py",
    "recovery/owner/signals.py",
    "recovery/owner/confirmation.py",
    "recovery/owner/idp_sign_in.py",
    "recovery/owner/idp_config.py",
)
VIEW_MODULE_GLOBS = ("recovery/**/views.py", "recovery/**/*_views.py", "recovery/api/*.py")


# --- 1. the route sweep ---------------------------------------------------------------------

NOTHING = object()  # a kwarg filled with a value that names no object (see SITE_KWARGS)


@dataclass(frozen=True)
class Built:
    """A URL kwarg filled from an object of tests/api/objects.py BUILDERS."""

    name: str
    attribute: str = "pk"


# Routes not swept, by prefix, with the reason. Everything else in the URLconf is.
NOT_SWEPT = {
    "admin/": "Django admin (OTP superusers): test_evidence_is_read_only_in_the_admin",
    "login/": "the caller's own sign-in",
    "logout/": "the caller's own sign-out (it would end the principals' sessions)",
    "account/": "the caller's own authenticator and preferences",
    "language/": "the caller's own language",
}
NOT_SWEPT_EXACT = {"": "the staff home page"}

# Console and site-root URL kwargs: (the path segment before it, the kwarg) -> an object of
# the sweep's tenant, a literal, or NOTHING for a secret no principal has (the owner's and the
# manager's links are what those pages verify).
SITE_KWARGS: dict[tuple[str, str], Any] = {
    ("cases", "pk"): Built("case"),
    ("review", "pk"): Built("case"),
    ("cases", "case_id"): Built("case"),
    ("accounts", "pk"): Built("account"),
    ("challenges", "challenge_pk"): Built("challenge"),
    ("attachments", "attachment_pk"): Built("attachment"),
    ("attended", "session_pk"): Built("attended_session"),
    ("versions", "pk"): Built("policy_version"),
    ("grants", "pk"): Built("grant"),
    ("jobs", "pk"): NOTHING,  # an import job's page
    ("export", "pk"): NOTHING,  # an audit export's download
    ("holds", "pk"): NOTHING,  # a legal hold of the trail (audit_admin only)
    ("purges", "pk"): NOTHING,  # a purge of the trail (audit_admin only)
    ("alerts", "pk"): NOTHING,  # an alert of the security queue (security officers)
    ("proofing", "provider"): "dev",  # the development provider, configured in tests
    ("verify", "token"): NOTHING,  # the owner's confirmation link (S2)
    ("attest", "token"): NOTHING,  # the manager's attestation link (S3)
    ("confirm", "token"): NOTHING,  # the owner's in-app confirmation link (S5)
    ("idp", "token"): NOTHING,  # the owner's identity provider sign-in link (S5)
    ("owner-idp", "pk"): Built("idp_config"),  # the tenant's IdP configuration (console)
    ("changes", "pk"): Built("connector_change"),  # a pending connector change (console)
    ("alert-routes", "pk"): Built("alert_route"),  # a proposed alert route (console)
    ("recover", "token"): NOTHING,  # the owner's artifact link
    ("enrol", "token"): NOTHING,  # the owner's enrolment link
    ("passkeys", "passkey_id"): NOTHING,  # an owner's passkey (portal session only)
    ("mailbox-access", "pk"): NOTHING,  # a mailbox owner's decision (portal session only)
    ("not-me", "token"): NOTHING,  # the owner's "this wasn't me" link
    ("dev-proofing", "nonce"): NOTHING,  # the development provider's vendor page
}
MISSING_ID, MISSING_TOKEN = 2_000_000_000, "no-such-token-4f1d7c"
PRINCIPALS = (
    "agent",
    "supervisor",
    "security_officer",
    "tenant_admin",
    "integration_key",
    "ai_key",
    "nobody",
)


def swept_routes() -> list[Route]:
    return [
        route
        for route in all_routes()
        if route.route not in NOT_SWEPT_EXACT
        and not any(route.route.startswith(prefix) for prefix in NOT_SWEPT)
    ]


def unsafe_methods(route: Route) -> tuple[str, ...]:
    """What a view implements beyond reading; a function view does not say, so it gets POST."""
    if route.view_class is None:
        return ("POST",)
    return tuple(method for method in route.methods if method in UNSAFE)


ROUTES = swept_routes()
CALLS = [
    pytest.param(route, method, id=f"{method} /{route.route}")
    for route in ROUTES
    for method in unsafe_methods(route)
]


def is_api(route: Route) -> bool:
    return route.route.startswith("api/")


def _segment_before(route: Route, kwarg: str) -> str:
    match = re.search(rf"([^/<>]+)/<(?:\w+:)?{kwarg}>", route.route)
    return match.group(1) if match else ""


def site_kwarg(route: Route, kwarg: str) -> Any | None:
    """What fills `kwarg` of a console or site-root route, or None if SITE_KWARGS lacks it."""
    key = (_segment_before(route, kwarg), kwarg)
    return SITE_KWARGS.get(key)


class Unfillable(LookupError):
    pass


def fill(route: Route, objs: TenantObjects) -> str:
    """The route's URL with the tenant, its real case and that case's objects."""
    values: dict[str, Any] = {}
    for kwarg in route.converters:
        if kwarg == "tenant":
            values[kwarg] = objs.tenant.slug
        elif is_api(route) and builder_for(kwarg, route.app):
            values[kwarg] = url_value(objs, kwarg, route.app)
        elif (entry := site_kwarg(route, kwarg)) is None:
            raise Unfillable(f"/{route.route}: no value for the URL kwarg {kwarg!r}")
        elif entry is NOTHING:
            values[kwarg] = MISSING_TOKEN if kwarg in ("token", "nonce") else MISSING_ID
        elif isinstance(entry, Built):
            values[kwarg] = getattr(objs.get(entry.name), entry.attribute)
        else:
            values[kwarg] = entry
    return route.path(values)


def encodings(route: Route) -> tuple[str, ...]:
    """JSON for the API, form posts for the console, both for the site root's pages."""
    if is_api(route):
        return ("json",)
    if route.route.startswith("t/"):
        return ("form",)
    return ("json", "form")


# What the old checkbox path accepted by name, one per class: knowledge and labels, not methods.
OFF_CATALOGUE = {
    "S1": "passphrase",
    "S2": "callerid",
    "S3": "mothers_first_name",
    "S4": "looked_at_video",
    "S5": "authenticator_push",
}
# Every catalogue method with its class, and every class with a name the catalogue lacks.
CLAIMS = [(m.signal_class, m.name) for m in CATALOGUE] + sorted(OFF_CATALOGUE.items())


def assertion(
    objs: TenantObjects,
    signal_class: str,
    method: str,
    *,
    form: bool,
    prefixes: frozenset[str] = frozenset(),
) -> dict:
    """A request claiming `method` of `signal_class` was verified, with every field some
    verifier form or endpoint reads, so it gets past input validation wherever it can; each
    field also under every form prefix the view was seen to use (`context-topic`)."""
    catalogued = METHODS.get(method)
    verifier = catalogued.verifier if catalogued else Verifier.CHALLENGE
    refs = {
        Verifier.CHALLENGE: objs.get("challenge").pk,
        Verifier.ATTESTATION: objs.get("challenge").pk,
        Verifier.PROOFING_PROVIDER: objs.get("proofing_session").pk,
        Verifier.ATTENDED_SESSION: objs.get("attended_session").pk,
    }
    body: dict[str, Any] = {
        "signal_class": signal_class,
        "method": method,
        "verified": True,
        "result": EvidenceResult.ACCEPTED,
        "accepted": True,
        "verifier": verifier,
        "verifier_ref": refs.get(verifier, 1),
        "contact_method_id": objs.built["manager_email"].pk,  # the subject's own email
        "contact_method": objs.built["manager_email"].pk,
        "code": "000000",
        "topic": "verification",
        "statement": "The caller says the signal was verified.",
        "mode": "onsite" if method == "attended_onsite" else "remote_video",
        "reason": "Verified by phone with the caller.",
        "observed": False,
        "documents_presented": ["passport"],
        "steps_completed": ["document check", "live challenge"],
        "live_challenge_passed": True,
        "biometric_compared": True,
        "provider": "dev",
        "outcome": "pass",
        "choice": "match",
        "decision": "approved",
    }
    body |= {f"{prefix}-{k}": v for prefix in prefixes for k, v in body.items()}
    if form:  # a console form: flat strings
        return {k: ("on" if v is True else "" if v is False else v) for k, v in body.items()}
    return {**body, "details": {"checked_by": "agent", "verified": True}}


@dataclass
class SweepWorld:
    objs: TenantObjects
    clients: dict[str, APIClient]


@pytest.fixture(scope="module")
def sweep(django_db_setup, django_db_blocker) -> Iterator[SweepWorld]:
    """One tenant, one case collecting evidence with every object a route addresses, and a
    client per principal; built once, rolled back when the module ends."""
    with django_db_blocker.unblock(), transaction.atomic():
        objs = TenantObjects.create()
        for name in ("case", "challenge", "attachment", "note", "attended_session"):
            objs.get(name)
        objs.get("proofing_session")
        for route in ROUTES:
            with suppress(Unfillable):  # reported by test_every_swept_route_can_be_filled
                fill(route, objs)
        objs.frozen = True
        assert objs.get("case").status == "collecting_evidence"
        staff_users = {
            "agent": objs.agent,  # opened the case
            "supervisor": factories.staff(Role.SUPERVISOR, tenant=objs.tenant),
            "security_officer": factories.staff(Role.SECURITY_OFFICER, tenant=objs.tenant),
            "tenant_admin": objs.admin,
        }
        clients = {name: staff_session(user) for name, user in staff_users.items()}
        clients["integration_key"] = key_client(objs.tenant)
        clients["ai_key"] = key_client(objs.tenant, kind="ai_assistant")
        clients["nobody"] = APIClient()
        assert set(clients) == set(PRINCIPALS)
        assert not accepted_rows(objs), "the setup itself accepted evidence"
        yield SweepWorld(objs, clients)
        transaction.set_rollback(True)


def accepted_rows(objs: TenantObjects):
    return Evidence.objects.filter(tenant=objs.tenant, result=EvidenceResult.ACCEPTED)


def without_verifier_record(rows) -> list[Evidence]:
    """Accepted rows whose verifier has no finished record pointing back at them."""
    done = {
        Verifier.CHALLENGE: VerificationChallenge.objects.filter(
            status=ChallengeStatus.VERIFIED
        ).values_list("pk", flat=True),
        Verifier.ATTESTATION: VerificationChallenge.objects.filter(
            status=ChallengeStatus.VERIFIED
        ).values_list("pk", flat=True),
        Verifier.PROOFING_PROVIDER: ProofingSession.objects.filter(
            evidence__isnull=False
        ).values_list("pk", flat=True),
        Verifier.ATTENDED_SESSION: AttendedSession.objects.filter(
            evidence__isnull=False
        ).values_list("pk", flat=True),
    }
    owner_portal = {
        "recovery_code": RecoveryCodeCheck.objects.filter(matched=True, evidence__isnull=False),
        "passkey": OwnerConfirmation.objects.filter(evidence__isnull=False),
        "idp_sign_in": IdpSignIn.objects.filter(evidence__isnull=False),
    }
    for method, records in owner_portal.items():
        done[f"{Verifier.OWNER_PORTAL}:{method}"] = records.values_list("pk", flat=True)

    def kind(row: Evidence) -> str:
        if row.verifier == Verifier.OWNER_PORTAL:
            return f"{row.verifier}:{row.method}"
        return row.verifier

    return [row for row in rows if row.verifier_ref not in set(done.get(kind(row), ()))]


def _send(client: APIClient, method: str, path: str, body: dict, encoding: str):
    return getattr(client, method.lower())(
        path, body, format="multipart" if encoding == "form" else "json"
    )


def test_every_swept_route_can_be_filled(sweep):
    """A new route with a kwarg nobody can fill is reported here, with where to add it."""
    problems = []
    for route in ROUTES:
        for kwarg in route.converters:
            if kwarg == "tenant" or (is_api(route) and builder_for(kwarg, route.app)):
                continue
            if site_kwarg(route, kwarg) is None:
                where = (
                    "OBJECT_MAP in tests/api/objects.py"
                    if is_api(route)
                    else "SITE_KWARGS in tests/test_no_asserted_evidence.py"
                )
                problems.append(
                    f"/{route.route}: {kwarg!r} after {_segment_before(route, kwarg)!r}; "
                    f"add it to {where}"
                )
    assert not problems, "\n".join(problems)


def test_the_sweep_reaches_the_verifier_routes():
    """The sweep is not vacuous: it covers the API, the console and the verdict endpoint."""
    swept = {f"{method} /{route.route}" for route in ROUTES for method in unsafe_methods(route)}
    for expected in (
        "POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/evidence/",
        "POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/context/",
        "POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/challenges/<int:challenge_id>/verify/",
        "POST /proofing/<slug:provider>/verdict/",
    ):
        assert expected in swept, sorted(swept)
    assert any(r.startswith("POST /t/<slug:tenant>/cases/") for r in swept), sorted(swept)
    assert len(CALLS) >= 60, len(CALLS)


class FieldWatch:
    """Which fields of the request body the view looked at, while the view runs.

    Body fields are tracked where a view gets them (`request.POST`, DRF's `request.data`);
    reading the raw bytes, or listing, copying or iterating the fields, counts as looking at
    everything. Two bodies that agree on every field a request looked at lead the view down
    the same path (each request starts from the same state), so a body is sent unless it agrees
    with one already sent on everything that one's request looked at. A view refused at the
    door (no session, no scope, another tenant, a method it does not take) looks at nothing:
    one body per principal shows it.
    """

    def __init__(self) -> None:
        self.in_view = False
        self.parsing = 0
        self.fields: set[str] = set()
        self.everything = False

    def reset(self) -> None:
        self.fields, self.everything = set(), False

    def field(self, name: object) -> None:
        if self.in_view:
            self.fields.add(str(name))

    def all(self) -> None:
        if self.in_view:
            self.everything = True

    def raw(self) -> None:
        if not self.parsing:
            self.all()

    def same_for_the_view(self, body: dict, sent: list[tuple[bool, set[str], dict]]) -> bool:
        """Whether `body` agrees with a body already sent on all that its request looked at."""
        return any(
            not everything and all(body.get(f) == seen.get(f) for f in fields)
            for everything, fields, seen in sent
        )


WATCH = FieldWatch()


def _tracked(*names: str, everything: tuple[str, ...] = ()):
    """A mixin class whose lookups by key tell WATCH the field, and whose listings say all."""

    def by_key(method):
        def tracked(self, key, *args, **kwargs):
            WATCH.field(key)
            return method(self, key, *args, **kwargs)

        return tracked

    def listing(method):
        def tracked(self, *args, **kwargs):
            WATCH.all()
            return method(self, *args, **kwargs)

        return tracked

    def make(base: type) -> type:
        attributes = {name: by_key(getattr(base, name)) for name in names}
        attributes |= {name: listing(getattr(base, name)) for name in everything}
        return type(f"Tracking{base.__name__}", (base,), attributes)

    return make


_LISTINGS = ("keys", "items", "values", "__iter__", "copy", "__reduce__")
TrackingDict = _tracked("__getitem__", "get", "__contains__", "pop", everything=_LISTINGS)(dict)


def _tracking_querydict() -> type:
    from django.http import QueryDict

    return _tracked(
        "__getitem__",
        "get",
        "getlist",
        "__contains__",
        everything=(*_LISTINGS, "lists", "dict", "urlencode", "__deepcopy__"),
    )(QueryDict)


def _watched(value: Any) -> Any:
    from django.http import QueryDict

    if type(value) is QueryDict:
        value.__class__ = TrackingQueryDict
        return value
    if type(value) is dict:
        return TrackingDict(value)
    return value


TrackingQueryDict = _tracking_querydict()


@pytest.fixture
def field_watch(monkeypatch) -> FieldWatch:
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.wsgi import WSGIRequest
    from django.http import HttpRequest
    from rest_framework.request import Request

    make_view_atomic = BaseHandler.make_view_atomic

    def watched_view(handler, view):
        wrapped = make_view_atomic(handler, view)

        def in_view(request, *args, **kwargs):
            WATCH.in_view = True
            try:
                return wrapped(request, *args, **kwargs)
            finally:
                WATCH.in_view = False

        return in_view

    def parsing(method):
        def watched(self, *args, **kwargs):
            WATCH.parsing += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                WATCH.parsing -= 1

        return watched

    def raw(method):
        def watched(self, *args, **kwargs):
            WATCH.raw()
            return method(self, *args, **kwargs)

        return watched

    get_post, drf_data = WSGIRequest._get_post, Request.data.fget
    monkeypatch.setattr(BaseHandler, "make_view_atomic", watched_view)
    monkeypatch.setattr(
        WSGIRequest, "POST", property(lambda r: _watched(get_post(r)), WSGIRequest._set_post)
    )
    monkeypatch.setattr(Request, "data", property(lambda r: _watched(drf_data(r))))
    monkeypatch.setattr(
        HttpRequest, "_load_post_and_files", parsing(HttpRequest._load_post_and_files)
    )
    monkeypatch.setattr(Request, "_load_data_and_files", parsing(Request._load_data_and_files))
    monkeypatch.setattr(HttpRequest, "body", property(raw(HttpRequest.body.fget)))
    for name in ("read", "readline", "readlines", "__iter__"):
        monkeypatch.setattr(HttpRequest, name, raw(getattr(HttpRequest, name)))
    WATCH.in_view, WATCH.parsing = False, 0
    WATCH.reset()
    return WATCH


# Requests whose view must look at the body (else the sweep would be vacuous there).
MUST_READ = {
    ("POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/evidence/", "agent"),
    ("POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/attended/", "security_officer"),
    ("POST /t/<slug:tenant>/cases/<int:pk>/context/", "agent"),
    ("POST /t/<slug:tenant>/cases/<int:pk>/challenges/<int:challenge_pk>/verify/", "agent"),
    ("POST /api/v1/t/<slug:tenant>/cases/<int:case_id>/recovery-code/", "agent"),
    ("POST /t/<slug:tenant>/cases/<int:pk>/recovery-code/", "agent"),
    ("POST /proofing/<slug:provider>/verdict/", "nobody"),
}


def _sweep(
    sweep: SweepWorld, watch: FieldWatch, principal: str, encoding: str, method: str, path: str
) -> bool:
    """Every claim `principal` can make in `encoding` to `method path`; whether the view
    looked at any field. When the view reads its fields under a prefix (`context-topic`), the
    claims are sent again with every field under that prefix too."""
    objs, client, form = sweep.objs, sweep.clients[principal], encoding == "form"
    prefixes: frozenset[str] = frozenset()
    looked = False
    while True:
        sent: list[tuple[bool, set[str], dict]] = []
        seen_prefixes = set(prefixes)
        for signal_class, claimed in CLAIMS:
            body = assertion(objs, signal_class, claimed, form=form, prefixes=prefixes)
            if watch.same_for_the_view(body, sent):
                continue  # the view would not see a difference from a body already sent
            watch.reset()
            with transaction.atomic():  # each request starts from the same case
                response = _send(client, method, path, body, encoding)
                rows = list(accepted_rows(objs))
                transaction.set_rollback(True)
            sent.append((watch.everything, set(watch.fields), body))
            looked = looked or watch.everything or bool(watch.fields)
            seen_prefixes |= {name.rpartition("-")[0] for name in watch.fields if "-" in name}
            mail.outbox.clear()
            asked = f"{principal}: {method} {path} {signal_class}/{claimed}"
            assert response.status_code < 500, f"{asked} -> {response.status_code}"
            assert not without_verifier_record(rows), (
                f"{asked} stored accepted evidence no verifier checked: {rows}"
            )
            assert not rows, (
                f"{asked} -> {response.status_code} accepted "
                f"{[(r.signal_class, r.method, r.verifier) for r in rows]} although no "
                "verifier was completed"
            )
        if seen_prefixes <= prefixes:
            return looked
        prefixes = frozenset(seen_prefixes)


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_no_assertion_creates_an_accepted_signal(sweep, db, settings, field_watch, route, method):
    settings.API_THROTTLE_RATES = {"api_key": "1000000/min", "staff": "1000000/min"}
    objs = sweep.objs
    try:
        path = fill(route, objs)
    except Unfillable as missing:
        pytest.fail(f"{missing} (see test_every_swept_route_can_be_filled)")
    read_by: set[str] = set()
    for principal in PRINCIPALS:
        for encoding in encodings(route):
            if _sweep(sweep, field_watch, principal, encoding, method, path):
                read_by.add(principal)
    for call, principal in MUST_READ:
        if call == f"{method} /{route.route}":
            assert principal in read_by, f"{principal}'s {call} never looked at its body"


# --- 2. the service sweep -------------------------------------------------------------------


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(BASE).with_suffix("").parts)


def project_sources() -> dict[str, Path]:
    """Every module of the project's packages (migrations and tests aside)."""
    found = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((BASE / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


WRITE_METHODS = frozenset({"create", "bulk_create", "get_or_create", "update_or_create", "update"})


@dataclass
class CallGraph:
    """Who calls (or hands on) whom among the project's functions, resolved through imports."""

    calls: dict[str, set[str]]  # "module.func" or "module.Class.method" -> called names
    defined: dict[str, str]  # qualified name -> module
    evidence_writers: set[str]  # functions that construct, create or update Evidence rows

    def callers_of(self, targets: set[str], leaves: frozenset[str] = frozenset()) -> set[str]:
        """Functions calling one of `targets`, or anything whose last name is in `leaves`."""
        return {
            fn
            for fn, called in self.calls.items()
            if called & targets or any(_leaf(name) in leaves for name in called)
        }


def _chain_root(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _attributes(node: ast.expr) -> list[str]:
    names = []
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
        node = node.func if isinstance(node, ast.Call) else node.value
    return names


def call_graph(sources: dict[str, Path]) -> CallGraph:
    graph = CallGraph({}, {}, set())
    for module, path in sources.items():
        _add_module(graph, module, path)
    return graph


def _add_module(graph: CallGraph, module: str, path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    imports: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node, is_package)
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name.split(".")[0]] = alias.name
    top = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }

    def name_of(identifier: str) -> str | None:
        if identifier in top:
            return f"{module}.{identifier}"
        return imports.get(identifier)

    def resolve(func: ast.expr, owner: str) -> str:
        if isinstance(func, ast.Name):
            return name_of(func.id) or f"?.{func.id}"
        if isinstance(func, ast.Attribute):
            value = func.value
            if isinstance(value, ast.Name):
                if value.id in ("self", "cls") and owner:
                    return f"{owner}.{func.attr}"
                if base := name_of(value.id):
                    return f"{base}.{func.attr}"
            return f"?.{func.attr}"
        return "?.<expr>"

    def writes_evidence(call: ast.Call) -> bool:
        """`Evidence(...)`, `Evidence.objects….create(...)`, `case.evidence.create(...)`, …"""
        root = _chain_root(call.func)
        attributes = _attributes(call.func)
        is_evidence = isinstance(root, ast.Name) and name_of(root.id) == EVIDENCE_MODEL
        if is_evidence and isinstance(call.func, ast.Name):
            return True
        if attributes and attributes[0] in WRITE_METHODS:
            return is_evidence or "evidence" in attributes[1:]
        return False

    def collect(node: ast.AST, qualname: str, owner: str) -> None:
        graph.defined[qualname] = module
        targets = graph.calls.setdefault(qualname, set())
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call):
                targets.add(resolve(inner.func, owner))
                if writes_evidence(inner):
                    graph.evidence_writers.add(qualname)
            # A function handed on (`staticmethod(case_close)`, a callback) is called later.
            elif isinstance(inner, ast.Name) and (handed := name_of(inner.id)):
                targets.add(handed)

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            collect(node, f"{module}.{node.name}", "")
        elif isinstance(node, ast.ClassDef):
            owner = f"{module}.{node.name}"
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    collect(item, f"{owner}.{item.name}", owner)
                else:
                    collect(item, f"{owner}.<body>", owner)
        elif not isinstance(node, ast.Import | ast.ImportFrom):
            collect(node, f"{module}.<module>", "")


EVIDENCE_MODEL = "recovery.cases.models.Evidence"
SINK_LEAVES = frozenset(_leaf_name.rpartition(".")[2] for _leaf_name in SINKS)


def _leaf(name: str) -> str:
    return name.rpartition(".")[2]


def _private(name: str) -> bool:
    return _leaf(name).startswith("_") and not _leaf(name).startswith("__")


def reachers(graph: CallGraph, stop: frozenset[str]) -> set[str]:
    """Functions that reach a sink, followed back from it and not past the `stop` functions.

    Sinks are matched by name wherever they are imported from; other functions by their
    qualified name (and a private method called on `self` by its class).
    """
    found: set[str] = set()
    frontier = graph.callers_of(set(SINKS), SINK_LEAVES) - stop
    while frontier:
        found |= frontier
        names = frontier | {f"?.{_leaf(fn)}" for fn in frontier if _private(fn)}
        frontier = graph.callers_of(names) - found - stop
    return found


def unlawful_reachers(graph: CallGraph) -> set[str]:
    """Reachers of the evidence writer other than the declared verifiers and their own
    private helpers (whose callers are then checked in turn)."""
    return {
        name
        for name in reachers(graph, ALLOWED_REACHERS)
        if not (graph.defined.get(name) in VERIFIER_MODULES and _private(name))
    }


@pytest.fixture(scope="module")
def graph() -> CallGraph:
    return call_graph(project_sources())


def service_modules() -> list[str]:
    paths = {path for pattern in SERVICE_MODULE_GLOBS for path in BASE.glob(pattern)}
    return sorted(_module_name(path) for path in paths if path.name != "__init__.py")


def public_functions(module_name: str) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}": value
        for name, value in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and value.__module__ == module_name
    }


def test_the_service_list_is_found():
    modules = service_modules()
    for expected in (
        SERVICES,
        "recovery.cases.services.attachments",
        "recovery.cases.services.execution",
        "recovery.challenges.services",
        "recovery.proofing.services",
        "recovery.proofing.attended",
    ):
        assert expected in modules, modules
    functions = {name for module in modules for name in public_functions(module)}
    assert len(functions) >= 40, sorted(functions)
    assert functions >= VERIFIERS, sorted(VERIFIERS - functions)  # a renamed verifier is noticed


def test_only_the_declared_verifiers_reach_the_evidence_writer(graph):
    unlawful = unlawful_reachers(graph)
    assert not unlawful, (
        "These functions can store evidence without being a verifier (add one to VERIFIERS "
        "only if it checks something the claimant cannot talk an agent into):\n"
        + "\n".join(sorted(unlawful))
    )


def test_every_public_service_function_is_a_verifier_or_cannot_accept(graph):
    """The issue's service list, function by function: which of them can end in
    `evidence_from_verifier` (through anything but another declared verifier)."""
    reaching = reachers(graph, VERIFIERS | CONTEXT_WRITERS) | VERIFIERS
    listed = {name for module in service_modules() for name in public_functions(module)}
    gates = (listed & reaching) - SINKS  # evidence_from_verifier is the gate itself
    assert gates == VERIFIERS, sorted(gates ^ VERIFIERS)


def test_only_verifiers_build_a_verified_signal(graph):
    builders = {
        name
        for name in graph.callers_of({VERIFIED_SIGNAL}, frozenset({"VerifiedSignal"}))
        if graph.defined.get(name) != SERVICES
    }
    assert builders, "no verifier builds a VerifiedSignal: the sweep lost track of them"
    outside = {name for name in builders if graph.defined[name] not in VERIFIER_MODULES}
    assert not outside, sorted(outside)


def test_only_the_evidence_writer_stores_evidence_rows(graph):
    assert graph.evidence_writers == {EVIDENCE_WRITE}, sorted(graph.evidence_writers)


def view_modules() -> list[Path]:
    return sorted({path for pattern in VIEW_MODULE_GLOBS for path in BASE.glob(pattern)})


def test_no_view_module_names_the_evidence_writer():
    """Grep-style, over every view and API module: a view calls a verifier or nothing."""
    names = ("evidence_from_verifier", "_evidence_write", "VerifiedSignal")
    modules = view_modules()
    assert any(p.match("recovery/api/views.py") for p in modules), modules
    offending = [
        f"{path.relative_to(BASE)}: {name}"
        for path in modules
        for name in names
        if name in path.read_text(encoding="utf-8")
    ]
    assert not offending, offending


# --- 3. management commands -----------------------------------------------------------------


def project_commands() -> dict[str, str]:
    return {
        name: app for name, app in get_commands().items() if app.split(".")[0] in PROJECT_PACKAGES
    }


def test_no_management_command_stores_evidence(graph):
    commands = project_commands()
    assert {"seed_demo", "import_accounts", "audit_verify"} <= set(commands), commands
    forbidden = SINKS | {VERIFIED_SIGNAL}
    problems = []
    for name, app in sorted(commands.items()):
        out = io.StringIO()
        with redirect_stdout(out), pytest.raises(SystemExit) as done:
            ManagementUtility(["manage.py", name, "--help"]).execute()
        assert done.value.code in (0, None) and "usage:" in out.getvalue(), (name, out.getvalue())
        module = f"{app}.management.commands.{name}"
        source = project_sources()[module].read_text(encoding="utf-8")
        if named := sorted(_leaf(f) for f in forbidden if _leaf(f) in source):
            problems.append(f"{module} names {', '.join(named)}")
        unlawful = {fn for fn in unlawful_reachers(graph) if graph.defined.get(fn) == module}
        problems += [f"{fn} reaches the evidence writer" for fn in unlawful]
    assert not problems, problems


# --- 4. the gate and the database -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", [m.name for m in CATALOGUE])
def test_the_gate_accepts_a_method_only_from_its_own_verifier(acme, method):
    """Straight to `evidence_from_verifier` with every verifier: a method counts only from its
    own verifier (S1 and S5 only from the owner portal's); another verifier's claim never."""
    from audit.context import Actor
    from recovery.cases.services import VerifiedSignal, evidence_from_verifier
    from recovery.cases.services.base import case_locked

    from .recovery.casework import contact

    agent = factories.staff(Role.AGENT, tenant=acme)
    account = factories.make_account_with(acme, groups=["finance"])  # T1: every class
    email = contact(account, "email", "owner@example.test")
    case = _case(agent, account)
    catalogued = METHODS[method]
    outcomes = {}
    for verifier in Verifier.values:
        with transaction.atomic():
            row = evidence_from_verifier(
                case=case_locked(case),
                signal=VerifiedSignal(method, verifier, 1, contact_method=email),
                collected_by=agent,
                who=Actor.for_user(agent, organisation=acme.name),
            )
        outcomes[verifier] = row.result
    expected_accepted = {catalogued.verifier} if catalogued.available else set()
    assert {v for v, r in outcomes.items() if r == "accepted"} == expected_accepted, outcomes
    if catalogued.signal_class in (SignalClass.S1, SignalClass.S5):
        assert expected_accepted <= {Verifier.OWNER_PORTAL}


def _case(agent, account):
    from recovery.cases.services import case_open

    return case_open(actor=agent, account=account, case_type="unlock", channel="phone")


@pytest.mark.django_db
def test_the_database_refuses_an_accepted_row_without_a_verifier(acme):
    agent = factories.staff(Role.AGENT, tenant=acme)
    case = _case(agent, factories.make_account(acme))
    for verifier, ref in (("", None), (Verifier.CHALLENGE, None), (Verifier.OWNER_PORTAL, None)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Evidence.objects.create(
                tenant=acme,
                case=case,
                signal_class="S2",
                method="email_code",
                result=EvidenceResult.ACCEPTED,
                collected_by=agent,
                digest="0" * 64,
                verifier=verifier,
                verifier_ref=ref,
            )


def test_evidence_is_read_only_in_the_admin():
    from django.contrib import admin

    model_admin = admin.site._registry.get(Evidence)
    if model_admin is None:
        return  # not in the admin at all
    request = type("Request", (), {"user": None})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)

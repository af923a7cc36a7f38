"""Every tenant API route and method, generated from the URLconf: who may call it, who gets 404.

For each route under /api/v1/t/<tenant>/ whose view is a TenantApiView and each handler it
implements (get/post/put/patch/delete):

- no credentials: 401 `auth.required` with a Bearer challenge;
- a key of the tenant holding every scope except what the method needs: 403
  `auth.scope_missing` (`auth.staff_only` for a staff-only method);
- a full key of another tenant: 404 `not_found`;
- the tenant's full key (a staff session for a staff-only method, which no key may reach) with
  another tenant's object ids in the URL: 404 with the body of an id that does not exist, and
  `tenant.cross_access_denied` in the owner's trail, not the requester's;
- an AI-assistant key: 403 `ai.action_blocked` plus an audit row when the method needs a scope
  outside AI_ASSISTANT_SCOPES, otherwise neither 401 nor 403.

A new route is covered the moment it is mounted; one whose URL kwarg has no object in
`tests/api/objects.py` fails and says which kwarg to add.
"""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from rest_framework.mixins import ListModelMixin
from rest_framework.test import APIClient

from api.base import TenantApiView
from audit.models import AuditEvent
from tenants.choices import AI_ASSISTANT_SCOPES, Scope, StaffScope

from .conftest import key_client
from .objects import (
    Body,
    Route,
    TenantObjects,
    all_routes,
    body_for,
    broad_staff,
    builder_for,
    missing_value,
    required_scope,
    staff_session,
    tenant_api_routes,
    url_value,
)

ROUTES = tenant_api_routes()
CALLS = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in ROUTES
    for method in route.methods
]
CALLS_WITH_IDS = [call for call in CALLS if call.values[0].id_kwargs]
NOT_FOUND = {"code": "not_found", "message": "Not found.", "errors": {}}


@dataclass
class World:
    acme: TenantObjects
    globex: TenantObjects
    acme_key: APIClient  # every scope
    globex_key: APIClient  # every scope
    ai_key: APIClient  # an ai_assistant key with every scope it may hold


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Two tenants with every object some route addresses, built once for the module.

    Built inside a transaction that is rolled back when the module ends; each test runs in a
    savepoint of it (pytest-django's `db`), so nothing a test does outlives the test.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        acme, globex = TenantObjects.create(), TenantObjects.create()
        for objs in (acme, globex):
            for route in ROUTES:
                for kwarg in route.id_kwargs:
                    if name := builder_for(kwarg, route.app):
                        objs.get(name)
                for method in route.methods:
                    body_for(route.view_class, method, objs)  # builds what the bodies refer to
            objs.frozen = True
        yield World(
            acme=acme,
            globex=globex,
            acme_key=key_client(acme.tenant),
            globex_key=key_client(globex.tenant),
            ai_key=key_client(acme.tenant, kind="ai_assistant"),
        )
        transaction.set_rollback(True)


def object_ids(route: Route, objs: TenantObjects) -> dict[str, Any]:
    """The URL kwargs of `route` filled with `objs`' tenant and objects."""
    values: dict[str, Any] = {"tenant": objs.tenant.slug}
    for kwarg in route.id_kwargs:
        name = builder_for(kwarg, route.app)
        if name is None:
            pytest.fail(
                f"{route} ({route.view_class.__name__}): no object for the URL kwarg {kwarg!r}. "
                f"Add {kwarg!r} (or '{route.app}:{kwarg}') to OBJECT_MAP, with a builder in "
                "BUILDERS, in tests/api/objects.py."
            )
        values[kwarg] = url_value(objs, kwarg, route.app)
    return values


def send(client: APIClient, method: str, path: str, body: Body):
    return getattr(client, method.lower())(path, **body.kwargs())


def shown(method: str, path: str, response) -> str:
    content = b"" if getattr(response, "streaming", False) else response.content
    return f"{method} {path} -> {response.status_code} {content[:400]!r}"


def code_of(response) -> str | None:
    try:
        return response.json().get("code")
    except (ValueError, AttributeError, TypeError):
        return None


def is_staff_only(scope: str | None) -> bool:
    return scope is None or scope in StaffScope.values


def scopes_to_withhold(view_class: type, method: str) -> tuple[list[str], str | None]:
    """The scopes a key must lack so that `method` is refused, and the scope last asked for.

    Usually one; a view whose required scope depends on what the key holds (opening a case
    takes cases:write or cases:draft) is asked again until what it wants is missing.
    """
    held, withheld = set(Scope.values), []
    while True:
        scope = required_scope(view_class, method, held)
        if is_staff_only(scope) or scope not in held:
            return withheld, scope
        held.discard(scope)
        withheld.append(scope)


# --- the URLconf itself ---------------------------------------------------------------------


def test_the_matrix_has_routes_to_cover():
    assert len(CALLS) >= 10, [str(route) for route in ROUTES]


def test_every_tenant_route_is_a_tenant_api_view():
    """Nothing under /api/v1/t/ escapes the matrix: each route is a fillable TenantApiView."""
    problems = []
    for route in all_routes():
        if not route.is_tenant_route:
            continue
        view = route.view_class
        if not (isinstance(view, type) and issubclass(view, TenantApiView)):
            problems.append(f"{route}: view {view!r} is not a TenantApiView")
        elif not route.plain:
            problems.append(f"{route}: a regex route; mount it with path() so it can be filled")
        elif "tenant" not in route.converters:
            problems.append(f"{route}: no <tenant> kwarg")
        elif not route.methods:
            problems.append(f"{route}: implements none of get/post/put/patch/delete")
    assert not problems, "\n".join(problems)


def test_every_method_declares_its_scope():
    """A handler missing from `scopes` is refused for keys by accident, not by decision (a view
    that answers `required_scope` itself declares it there; ROUTE_SCOPES in
    test_permission_matrix_roles.py pins its answer)."""
    problems = []
    for route in ROUTES:
        for method in route.methods:
            scope = route.view_class.scopes.get(method)
            if scope is None and route.view_class.required_scope is TenantApiView.required_scope:
                problems.append(
                    f"{method} {route} ({route.view_class.__name__}): no entry in `scopes`; "
                    "give it a Scope or a StaffScope"
                )
            elif scope is not None and scope not in (*Scope.values, *StaffScope.values):
                problems.append(f"{method} {route}: unknown scope {scope!r}")
    assert not problems, "\n".join(problems)


def test_every_url_kwarg_has_an_object():
    missing = sorted(
        f"{route} ({route.view_class.__name__}): {kwarg!r}"
        for route in ROUTES
        for kwarg in route.id_kwargs
        if builder_for(kwarg, route.app) is None
    )
    assert not missing, (
        "URL kwargs with no object in tests/api/objects.py OBJECT_MAP:\n" + "\n".join(missing)
    )


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_no_credentials_is_401(world, db, route, method):
    path = route.path(object_ids(route, world.acme))
    response = send(APIClient(), method, path, body_for(route.view_class, method, world.acme))
    assert (response.status_code, code_of(response)) == (401, "auth.required"), shown(
        method, path, response
    )
    assert response["WWW-Authenticate"].startswith("Bearer"), shown(method, path, response)


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_key_without_the_needed_scope_is_403(world, db, route, method):
    withheld, needed = scopes_to_withhold(route.view_class, method)
    client = key_client(world.acme.tenant, sorted(set(Scope.values) - set(withheld)))
    path = route.path(object_ids(route, world.acme))
    response = send(client, method, path, body_for(route.view_class, method, world.acme))
    expected = "auth.staff_only" if is_staff_only(needed) else "auth.scope_missing"
    assert (response.status_code, code_of(response)) == (403, expected), (
        f"key without {withheld or 'nothing'}: " + shown(method, path, response)
    )


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_key_of_another_tenant_is_404(world, db, route, method):
    path = route.path(object_ids(route, world.acme))
    response = send(
        world.globex_key, method, path, body_for(route.view_class, method, world.globex)
    )
    assert response.status_code == 404, shown(method, path, response)
    assert response.json() == NOT_FOUND, shown(method, path, response)


def _cross_access_events(objs: TenantObjects, path: str) -> int:
    return AuditEvent.objects.filter(
        tenant=objs.tenant, action="tenant.cross_access_denied", data__path=path
    ).count()


@pytest.mark.parametrize(("route", "method"), CALLS_WITH_IDS)
def test_another_tenants_object_ids_look_missing(world, db, route, method):
    """Every id in the URL swapped for the other tenant's (all at once, then one at a time)."""
    acme, globex = world.acme, world.globex
    if is_staff_only(route.view_class.scopes.get(method)):
        client = staff_session(broad_staff(acme.tenant))  # no key reaches a staff-only method
    else:
        client = world.acme_key
    own, theirs = object_ids(route, acme), object_ids(route, globex)
    swaps = [route.id_kwargs]
    if len(route.id_kwargs) > 1:
        swaps += [(kwarg,) for kwarg in route.id_kwargs]
    for swapped in swaps:
        foreign_path = route.path({**own, **{k: theirs[k] for k in swapped}})
        missing = {k: missing_value(route.converters[k]) for k in swapped}
        missing_path = route.path({**own, **missing})
        foreign = send(client, method, foreign_path, body_for(route.view_class, method, acme))
        absent = send(client, method, missing_path, body_for(route.view_class, method, acme))
        hint = ""
        if absent.status_code == 400:
            hint = (
                f" (input validation ran first: give {route.view_class.__name__}.{method} a "
                "valid body in BODIES in tests/api/objects.py)"
            )
        assert absent.status_code == 404, shown(method, missing_path, absent) + hint
        assert foreign.status_code == 404, (
            f"{globex.tenant.slug}'s {', '.join(swapped)} in {acme.tenant.slug}'s URL: "
            + shown(method, foreign_path, foreign)
            + hint
        )
        assert foreign.json() == absent.json() == NOT_FOUND, (
            shown(method, foreign_path, foreign) + "\n" + shown(method, missing_path, absent)
        )
        assert _cross_access_events(globex, foreign_path) >= 1, (
            f"no tenant.cross_access_denied in {globex.tenant.slug}'s trail for {foreign_path}"
        )
        assert _cross_access_events(acme, foreign_path) == 0, (
            f"the requester's own trail recorded the other tenant's object: {foreign_path}"
        )


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_ai_assistant_key_only_reads_drafts_and_summarises(world, db, route, method):
    acme = world.acme
    needed = required_scope(route.view_class, method, AI_ASSISTANT_SCOPES)
    blocked = AuditEvent.objects.filter(tenant=acme.tenant, action="ai.action_blocked")
    before = set(blocked.values_list("pk", flat=True))
    path = route.path(object_ids(route, acme))
    response = send(world.ai_key, method, path, body_for(route.view_class, method, acme))
    if needed not in AI_ASSISTANT_SCOPES:
        assert (response.status_code, code_of(response)) == (403, "ai.action_blocked"), (
            f"needs {needed}: " + shown(method, path, response)
        )
        recorded = [
            (event.data.get("method"), event.data.get("path"), event.actor_type)
            for event in blocked.exclude(pk__in=before)
        ]
        assert recorded == [(method, path, "ai")], recorded
    else:
        assert response.status_code not in (401, 403), (
            f"needs {needed}, which an AI assistant may hold: " + shown(method, path, response)
        )
        assert response.status_code < 500, shown(method, path, response)


# --- crafted pagination cursors -------------------------------------------------------------

LIST_ROUTES = [
    route
    for route in ROUTES
    if "GET" in route.methods
    and issubclass(route.view_class, ListModelMixin)
    and route.view_class.pagination_class is not None
]


def _cursor(query: str) -> str:
    return b64encode(query.encode()).decode()


def _ordered_by_time(route: Route) -> bool:
    ordering = route.view_class.pagination_class.ordering
    field = (ordering if isinstance(ordering, str) else ordering[0]).lstrip("-")
    model = route.view_class.serializer_class.Meta.model
    return model._meta.get_field(field).get_internal_type() in ("DateTimeField", "DateField")


def _other_type_position(route: Route) -> str:
    """A well-formed position of another field's type than the list's ordering field."""
    return "12345" if _ordered_by_time(route) else "2026-01-01 00:00:00"


CRAFTED_CURSORS = {
    "the issue's cursor": lambda route: "cD0yMDI2LTAxLTAxIDAwOjAwOjAwJnI9MQ==",
    "non-numeric position": lambda route: _cursor("p=1 OR 1=1"),
    "another field's position": lambda route: _cursor(f"p={_other_type_position(route)}&r=1"),
    "garbage base64": lambda route: "%%%not-base64%%%",
    "base64 of no query string": lambda route: _cursor("\x00\xff binary"),
    "negative offset": lambda route: _cursor("o=-5&p=1"),
}


def test_the_cursor_matrix_has_lists_to_cover():
    assert len(LIST_ROUTES) >= 5, [str(route) for route in LIST_ROUTES]


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
@pytest.mark.parametrize("crafted", CRAFTED_CURSORS)
def test_a_crafted_cursor_is_a_400_not_a_500(world, db, route, crafted):
    if is_staff_only(route.view_class.scopes.get("GET")):
        client = staff_session(broad_staff(world.acme.tenant))
    else:
        client = world.acme_key
    cursor = CRAFTED_CURSORS[crafted](route)
    path = route.path(object_ids(route, world.acme))
    response = client.get(path, {"cursor": cursor})
    if crafted == "the issue's cursor" and _ordered_by_time(route):
        # its position is a time, which is what this list's cursors hold
        assert response.status_code == 200, shown("GET", path, response)
        return
    assert (response.status_code, code_of(response)) == (400, "pagination.cursor_invalid"), (
        f"{crafted} ({cursor}): " + shown("GET", path, response)
    )
    assert response.json()["message"] and response.json()["errors"] == {}

"""The staff axis of the permission matrix: every tenant API route and method, generated from
the URLconf, for each staff role, provider staff through a narrow and a wide grant, on the
tenant's own objects and on another tenant's (tests/api/test_permission_matrix.py has the other
axes: no credentials, keys with and without the scope, another tenant's key, AI keys).

Two declared tables decide the expected outcome, and both fail loudly when the code moves:

- `ROUTE_SCOPES`: the scope each route and method needs. A new route, a removed one or a
  changed scope fails `test_every_route_is_declared` until the table says so.
- `ROLE_TABLE`: the scopes a staff session of each role holds (`tenants.choices.ROLE_SCOPES`).
  A new role fails `test_every_role_is_declared`.

For every call: a principal whose roles lack the route's scope gets 403 `auth.scope_missing`
before anything is looked up; one whose roles include it gets past the scope check (what a
service then decides is its own affair: 400, 403 with a rule's code, 404, 2xx, never 401 or a
5xx). With another tenant's object ids in the URL, the answer equals the answer for ids that
do not exist. A narrow grant (T0, password resets) never reaches the tenant's T1 unlock case:
reads of it are 404 and writes are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.choices import ROLE_SCOPES, CaseType, GrantStatus, Role, Scope, StaffScope
from tenants.models import DelegationGrant, Membership, User

from .. import factories
from . import test_permission_matrix as keys_axis
from .objects import body_for, missing_value, required_scope, staff_session
from .test_permission_matrix import CALLS, code_of, object_ids, send, shown

world = keys_axis.world  # the same two tenants and objects, built once for the module
PREFIX = "/api/v1/t/<slug:tenant>"

# What each route and method needs, as `<METHOD> <path after /api/v1/t/<slug:tenant>>`.
ROUTE_SCOPES = {
    "POST /accounts/sync/": Scope.ACCOUNTS_SYNC,
    "GET /approvals/": Scope.CASES_READ,
    "GET /exceptions/": Scope.CASES_READ,
    "GET /policy/": Scope.POLICY_READ,
    "GET /policy/versions/": Scope.POLICY_READ,
    "POST /policy/versions/": StaffScope.SETTINGS_WRITE,
    "GET /policy/versions/<int:version_id>/": Scope.POLICY_READ,
    "POST /policy/versions/<int:version_id>/request-activation/": StaffScope.SETTINGS_WRITE,
    "POST /policy/versions/<int:version_id>/approve-activation/": StaffScope.SETTINGS_WRITE,
    "POST /policy/validate/": Scope.POLICY_READ,
    "POST /policy/simulate/": Scope.POLICY_READ,
    "GET /accounts/": Scope.ACCOUNTS_READ,
    "GET /accounts/<int:account_id>/": Scope.ACCOUNTS_READ,
    "POST /accounts/<int:account_id>/unfreeze/": StaffScope.CASES_EXECUTE,
    "GET /cases/": Scope.CASES_READ,
    "POST /cases/": Scope.CASES_DRAFT,
    "GET /cases/<int:case_id>/": Scope.CASES_READ,
    "GET /cases/<int:case_id>/evidence/": Scope.CASES_READ,
    "POST /cases/<int:case_id>/evidence/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/context/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/submit/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/take/": StaffScope.CASES_TAKE,
    "POST /cases/<int:case_id>/approve/": StaffScope.CASES_DECIDE,
    "POST /cases/<int:case_id>/deny/": StaffScope.CASES_DECIDE,
    "POST /cases/<int:case_id>/cancel/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/execute/": StaffScope.CASES_EXECUTE,
    "GET /cases/<int:case_id>/step-up/options/": StaffScope.CASES_DECIDE,  # ?action=approve
    "POST /cases/<int:case_id>/close/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/containment/record/": StaffScope.CASES_EXECUTE,
    "POST /cases/<int:case_id>/revert/record/": StaffScope.CASES_EXECUTE,
    "POST /cases/<int:case_id>/delegation/record/": StaffScope.CASES_EXECUTE,
    "POST /cases/<int:case_id>/manual-step/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/notes/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/summaries/": Scope.CASES_DRAFT,
    "GET /cases/<int:case_id>/attachments/": Scope.CASES_READ,
    "POST /cases/<int:case_id>/attachments/": Scope.CASES_WRITE,
    "GET /cases/<int:case_id>/attachments/<int:attachment_id>/": Scope.CASES_READ,
    "GET /cases/<int:case_id>/challenges/": Scope.CASES_READ,
    "POST /cases/<int:case_id>/challenges/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/challenges/<int:challenge_id>/verify/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/attestations/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/proofing/": Scope.CASES_WRITE,
    "POST /cases/<int:case_id>/attended/": StaffScope.ATTENDED_RUN,
    "POST /cases/<int:case_id>/attended/<int:session_id>/coercion/": StaffScope.ATTENDED_RUN,
    "POST /cases/<int:case_id>/attended/<int:session_id>/complete/": StaffScope.ATTENDED_RUN,
    "POST /cases/<int:case_id>/attended/<int:session_id>/fraud/": StaffScope.ATTENDED_RUN,
    "POST /cases/<int:case_id>/recovery-code/": Scope.CASES_WRITE,
    "GET /cases/<int:case_id>/confirmation/": Scope.CASES_READ,
    "POST /cases/<int:case_id>/confirmation/": Scope.CASES_WRITE,
    "POST /accounts/<int:account_id>/enrolment-invite/": StaffScope.OWNER_ENROL,
    "GET /owner-idp/": Scope.POLICY_READ,
    "POST /owner-idp/": StaffScope.SETTINGS_WRITE,
    "GET /owner-idp/<int:config_id>/": Scope.POLICY_READ,
    "POST /owner-idp/<int:config_id>/approve/": StaffScope.SETTINGS_WRITE,
    "POST /owner-idp/<int:config_id>/retire/": StaffScope.SETTINGS_WRITE,
    "POST /cases/<int:case_id>/idp-sign-in/": Scope.CASES_WRITE,
    "GET /connector/": Scope.POLICY_READ,
    "POST /connector/": StaffScope.SETTINGS_WRITE,
    "POST /connector/changes/<int:change_id>/approve/": StaffScope.SETTINGS_WRITE,
    "POST /connector/changes/<int:change_id>/reject/": StaffScope.SETTINGS_WRITE,
    "POST /connector/changes/<int:change_id>/withdraw/": StaffScope.SETTINGS_WRITE,
    "POST /connector/test/": StaffScope.SETTINGS_WRITE,
    "GET /api-keys/": StaffScope.KEYS_MANAGE,
    "POST /api-keys/": StaffScope.KEYS_MANAGE,
    "GET /api-keys/<int:key_id>/": StaffScope.KEYS_MANAGE,
    "DELETE /api-keys/<int:key_id>/": StaffScope.KEYS_MANAGE,
    "GET /grants/": Scope.GRANTS_READ,
    "GET /grants/<int:grant_id>/": Scope.GRANTS_READ,
    "GET /alert-routes/": Scope.POLICY_READ,
    "POST /alert-routes/": StaffScope.SETTINGS_WRITE,
    "POST /alert-routes/<int:route_id>/approve/": StaffScope.SETTINGS_WRITE,
    "POST /alert-routes/<int:route_id>/remove/": StaffScope.SETTINGS_WRITE,
    "POST /alert-routes/<int:route_id>/reject/": StaffScope.SETTINGS_WRITE,
    "POST /alert-routes/<int:route_id>/withdraw/": StaffScope.SETTINGS_WRITE,
    "GET /audit/events/": Scope.AUDIT_READ,
    "GET /audit/export/": Scope.AUDIT_READ,
    "GET /audit/verification/": Scope.AUDIT_READ,
    "GET /alerts/": Scope.ALERTS_READ,
    "GET /alerts/queue/": Scope.ALERTS_READ,
    "POST /alerts/queue/<int:alert_id>/acknowledge/": StaffScope.SECURITY_RESPOND,
    "POST /alerts/queue/<int:alert_id>/resolve/": StaffScope.SECURITY_RESPOND,
    "GET /incident/": StaffScope.SECURITY_RESPOND,
    "POST /incident/": StaffScope.SECURITY_RESPOND,
    "GET /webhooks/": Scope.WEBHOOKS_MANAGE,
    "POST /webhooks/": Scope.WEBHOOKS_MANAGE,
    "GET /webhooks/<int:subscription_id>/": Scope.WEBHOOKS_MANAGE,
    "PATCH /webhooks/<int:subscription_id>/": Scope.WEBHOOKS_MANAGE,
    "DELETE /webhooks/<int:subscription_id>/": Scope.WEBHOOKS_MANAGE,
    "POST /webhooks/<int:subscription_id>/rotate-secret/": Scope.WEBHOOKS_MANAGE,
    "GET /webhooks/<int:subscription_id>/deliveries/": Scope.WEBHOOKS_MANAGE,
    "GET /events/": Scope.EVENTS_INGEST,
    "POST /events/": Scope.EVENTS_INGEST,
    "GET /siem/": Scope.AUDIT_READ,
    "PUT /siem/": Scope.WEBHOOKS_MANAGE,
    "DELETE /siem/": Scope.WEBHOOKS_MANAGE,
    "GET /cases/<int:case_id>/bundle/": Scope.AUDIT_READ,
    "GET /audit/integrity/": Scope.AUDIT_READ,
}

_CASES = {
    Scope.ACCOUNTS_READ,
    Scope.CASES_READ,
    Scope.CASES_WRITE,
    Scope.CASES_DRAFT,
    StaffScope.CASES_TAKE,
    StaffScope.CASES_EXECUTE,
}
_OVERSIGHT = {Scope.POLICY_READ, Scope.AUDIT_READ, Scope.ALERTS_READ, Scope.GRANTS_READ}
ROLE_TABLE = {
    Role.AGENT: _CASES | {StaffScope.OWNER_ENROL},
    Role.SUPERVISOR: _CASES | {StaffScope.CASES_DECIDE},
    Role.SECURITY_OFFICER: _CASES
    | _OVERSIGHT
    | {
        StaffScope.CASES_DECIDE,
        StaffScope.ATTENDED_RUN,
        StaffScope.SECURITY_RESPOND,
        Scope.EVENTS_INGEST,
    },
    Role.TENANT_ADMIN: _OVERSIGHT
    | {
        Scope.ACCOUNTS_READ,
        Scope.ACCOUNTS_SYNC,
        Scope.EVENTS_INGEST,
        Scope.WEBHOOKS_MANAGE,
        StaffScope.OWNER_ENROL,
        StaffScope.SETTINGS_WRITE,
        StaffScope.KEYS_MANAGE,
        StaffScope.SECURITY_RESPOND,
    },
    Role.AUDITOR: _OVERSIGHT | {Scope.ACCOUNTS_READ, Scope.CASES_READ},
    Role.TRUSTED_REFEREE: {Scope.CASES_READ, StaffScope.ATTENDED_RUN},
    Role.AUDIT_ADMIN: {Scope.AUDIT_READ},
}
# Provider staff: the roles they hold at their provider, and what the tenant's grant allows.
NARROW_ROLES = (Role.AGENT, Role.SUPERVISOR)
WIDE_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.AUDITOR)


@dataclass(frozen=True)
class Principal:
    name: str
    roles: tuple[str, ...]
    client: APIClient
    narrow: bool = False  # through a grant for T0 password resets only

    @property
    def scopes(self) -> set[str]:
        return set().union(*(ROLE_TABLE[role] for role in self.roles))


def _grant(tenant, provider, roles, *, tiers, case_types) -> None:
    now = timezone.now()
    DelegationGrant.objects.create(
        provider=provider,
        tenant=tenant,
        allowed_roles=list(roles),
        allowed_tiers=list(tiers),
        allowed_case_types=list(case_types),
        valid_from=now - timedelta(minutes=5),
        valid_until=now + timedelta(days=1),
        status=GrantStatus.ACTIVE,
        requested_by=factories.operator(),
        approved_by=factories.operator(),
        approved_at=now,
    )


def _provider_staff(tenant, roles, **grant) -> User:
    provider = factories.make_provider()
    user = factories.make_user()
    for role in roles:
        Membership.objects.create(user=user, provider=provider, role=role)
    _grant(tenant, provider, roles, **grant)
    return user


@pytest.fixture(scope="module")
def principals(world, django_db_blocker) -> list[Principal]:
    """One staff session per role in the first tenant, and two provider staff: built once,
    inside the module's rolled-back transaction (`world`)."""
    tenant = world.acme.tenant
    with django_db_blocker.unblock():
        people = [
            Principal(role, (role,), staff_session(factories.staff(role, tenant=tenant)))
            for role in Role.values
        ]
        narrow = _provider_staff(tenant, NARROW_ROLES, tiers=["T0"], case_types=["password_reset"])
        wide = _provider_staff(
            tenant,
            WIDE_ROLES,
            tiers=["T0", "T1", "T2"],
            case_types=list(CaseType.values),
        )
        people.append(Principal("provider-narrow", NARROW_ROLES, staff_session(narrow), True))
        people.append(Principal("provider-wide", WIDE_ROLES, staff_session(wide)))
    return people


def needed_scope(route, method: str, objs) -> str | None:
    """What the route asks of a staff session for the request the matrix sends (a GET's body
    is its query)."""
    body = body_for(route.view_class, method, objs)
    query = body.data if method == "GET" and isinstance(body.data, dict) else {}
    return required_scope(route.view_class, method, None, query)


def key(route, method: str) -> str:
    return f"{method} {str(route).removeprefix(PREFIX)}"


def test_every_role_is_declared():
    assert set(ROLE_TABLE) == set(Role.values), "declare the new role's scopes in ROLE_TABLE"
    assert {role: set(scopes) for role, scopes in ROLE_SCOPES.items()} == ROLE_TABLE


def test_every_route_is_declared(world, db):
    """A new route, a removed one or a changed scope: the table says so first."""
    found = {
        key(route, method): needed_scope(route, method, world.acme)
        for (route, method) in (call.values for call in CALLS)
    }
    assert found == ROUTE_SCOPES, (
        "routes or scopes changed; declare them in ROUTE_SCOPES:\n"
        + "\n".join(
            f"  {key}: declared {ROUTE_SCOPES.get(key)!r}, found {found.get(key)!r}"
            for key in sorted(set(found) | set(ROUTE_SCOPES))
            if found.get(key) != ROUTE_SCOPES.get(key)
        )
    )


def _isolated(client: APIClient, method: str, path: str, body):
    """One request whose writes are undone before the next principal's."""
    with transaction.atomic():
        response = send(client, method, path, body)
        transaction.set_rollback(True)
    return response


CASE_KWARGS = {"case_id"}


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_each_staff_role_and_grant_on_own_and_foreign_objects(world, principals, db, route, method):
    acme, globex = world.acme, world.globex
    needed = ROUTE_SCOPES[key(route, method)]
    assert needed == needed_scope(route, method, acme), "see test_every_route_is_declared"
    body = body_for(route.view_class, method, acme)
    own = object_ids(route, acme)
    path = route.path(own)
    problems = []
    for who in principals:
        response = _isolated(who.client, method, path, body)
        outcome = (response.status_code, code_of(response))
        if needed not in who.scopes:
            if outcome != (403, "auth.scope_missing"):
                problems.append(f"{who.name} lacks {needed}: " + shown(method, path, response))
            continue
        if response.status_code in (401, 500) or outcome[1] in (
            "auth.scope_missing",
            "auth.staff_only",
        ):
            problems.append(f"{who.name} holds {needed}: " + shown(method, path, response))
        if who.narrow and CASE_KWARGS & set(route.id_kwargs) and response.status_code < 300:
            problems.append(
                f"{who.name} reached a T1 unlock case: " + shown(method, path, response)
            )
        if not route.id_kwargs:
            continue
        theirs = object_ids(route, globex)
        foreign_path = route.path({**own, **{k: theirs[k] for k in route.id_kwargs}})
        missing_path = route.path(
            {**own, **{k: missing_value(route.converters[k]) for k in route.id_kwargs}}
        )
        foreign = _isolated(who.client, method, foreign_path, body)
        absent = _isolated(who.client, method, missing_path, body)
        if (foreign.status_code, code_of(foreign)) != (absent.status_code, code_of(absent)):
            problems.append(
                f"{who.name}: another tenant's ids answer unlike missing ones:\n  "
                + shown(method, foreign_path, foreign)
                + "\n  "
                + shown(method, missing_path, absent)
            )
    assert not problems, "\n".join(problems)

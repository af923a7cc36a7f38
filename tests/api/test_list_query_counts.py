"""A page of 100 costs the same number of queries as a page of 10, for every paginated list.

The lists come from the URLconf: every view that lists with DRF's ListModelMixin and a
paginator (under /api/v1/t/<tenant>/ and the provider's own routes). The rows are made
through the real services, more than a page of 100 of each, so both
pages are full; a list without a row maker in ROWS fails and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.mixins import ListModelMixin
from rest_framework.test import APIClient

from api.base import TenantApiView
from tenants.choices import Role, StaffScope
from tenants.models import Tenant, User

from .. import factories
from ..recovery.casework import contact, decide, submitted
from .conftest import key_client
from .objects import Route, all_routes, broad_staff, staff_session

SMALL, LARGE = 10, 100
ROWS_WANTED = LARGE + 1  # one more than the large page, so it is full and has a next page


def paginated_list_routes() -> list[Route]:
    """Routes whose GET lists `get_queryset()` a page at a time (ListModelMixin, a paginator)."""
    return [
        route
        for route in all_routes()
        if isinstance(route.view_class, type)
        and issubclass(route.view_class, ListModelMixin)
        and "GET" in route.methods
        and route.view_class.pagination_class is not None
    ]


LIST_ROUTES = paginated_list_routes()


# --- the rows -------------------------------------------------------------------------------


@dataclass
class ListWorld:
    """One tenant (and one provider) with more than a page of 100 of everything listed."""

    tenant: Tenant
    admin: User
    agent: User
    clients: dict[str, APIClient] = field(default_factory=dict)

    @classmethod
    def create(cls) -> ListWorld:
        tenant = factories.make_tenant()
        return cls(
            tenant=tenant,
            admin=factories.staff(Role.TENANT_ADMIN, tenant=tenant),
            agent=factories.staff(Role.AGENT, tenant=tenant),
        )

    @cached_property
    def provider(self):
        return factories.make_provider()

    @cached_property
    def accounts(self) -> list:
        """ROWS_WANTED accounts, imported in one go as a system of record would send them."""
        from audit.context import Actor
        from recovery.imports import AccountRecord
        from recovery.models import ProtectedAccount
        from recovery.services import accounts_import

        prefix = factories.unique("bulk")
        records = [
            AccountRecord(
                line=i + 1,
                external_id=f"{prefix}-{i}",
                username=f"{prefix}-{i}@example.test",
                display_name=f"Person {i}",
            )
            for i in range(ROWS_WANTED)
        ]
        accounts_import(
            actor=Actor.system("tests"), tenant=self.tenant, records=records, source="hris"
        )
        found = ProtectedAccount.objects.for_tenant(self.tenant).filter(
            external_id__startswith=prefix
        )
        return list(found.order_by("pk"))

    @cached_property
    def subscription(self):
        from django.test import override_settings

        from integrations.services import webhook_subscription_create

        with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):
            subscription, _secret = webhook_subscription_create(
                actor=self.admin,
                tenant=self.tenant,
                url="https://hooks.example.test/cases",
                event_types=["case.opened"],
            )
        return subscription

    def open_cases(self, actor: User | None = None, **fields: Any) -> None:
        from recovery.cases.services import case_open

        for account in self.accounts:
            case_open(actor=actor or self.agent, account=account, channel="phone", **fields)


def _cases(world: ListWorld) -> None:
    from integrations.outbox import webhooks_derive

    world.subscription  # noqa: B018 - subscribed first, so each opened case is also a delivery
    world.open_cases(case_type="unlock")
    webhooks_derive(tenant_id=world.tenant.pk)  # what the worker does once the cases committed


def _exceptions(world: ListWorld) -> None:
    world.open_cases(
        actor=factories.staff(Role.SECURITY_OFFICER, tenant=world.tenant),  # the security queue
        case_type="exception",
        justification="The standard path is blocked: the user's phone was destroyed in a flood.",
    )


def _approvals(world: ListWorld) -> None:
    for _ in range(ROWS_WANTED):
        case = submitted(
            world.tenant, world.agent, ("S2", "S3"), case_type="mfa_reset", groups=["Finance"]
        )
        decide(case, factories.staff(Role.SUPERVISOR, tenant=world.tenant))


def _alerts(world: ListWorld) -> None:
    """A SIM swapped yesterday: every code asked for it is refused and raises a sim_swap alert
    (R-04)."""
    from recovery.cases.services import case_open
    from recovery.challenges.services import challenge_send
    from tenants.exceptions import PolicyDenied

    officer = factories.staff(Role.SECURITY_OFFICER, tenant=world.tenant)
    account = factories.make_account(world.tenant)
    swapped = contact(account, "mobile", "+15550000999", sim_days=1)
    case = case_open(actor=officer, account=account, case_type="unlock", channel="phone")
    for _ in range(ROWS_WANTED):
        with pytest.raises(PolicyDenied, match="SIM"):
            challenge_send(actor=officer, case=case, contact_method=swapped)


def _ingested_events(world: ListWorld) -> None:
    from integrations.services import event_ingest

    for i, account in enumerate(world.accounts):
        event_ingest(
            actor=world.admin,
            tenant=world.tenant,
            event_type="push_denied_burst",
            account_external_id=account.external_id,
            occurred_at=timezone.now() - timedelta(minutes=i),
            source="idp",
            external_id=f"burst-{i}",
            data={"count": 5 + i, "window_seconds": 60},
        )


def _api_keys(world: ListWorld) -> None:
    from tenants.apikeys import apikey_create

    for i in range(ROWS_WANTED):
        apikey_create(
            actor=world.admin,
            tenant=world.tenant,
            name=f"connector {i}",
            kind="ai_assistant" if i % 2 else "integration",
            scopes=["cases:read"],
        )


def _grants(world: ListWorld) -> None:
    from tenants.services import grant_request

    requester = factories.staff(Role.TENANT_ADMIN, provider=world.provider)
    now = timezone.now()
    for i in range(ROWS_WANTED):
        grant_request(
            actor=requester,
            provider=world.provider,
            tenant=world.tenant,
            allowed_roles=[Role.AGENT],
            allowed_tiers=["T0"],
            allowed_case_types=["password_reset"],
            valid_from=now,
            valid_until=now + timedelta(days=1 + i),
        )


def _policy_versions(world: ListWorld) -> None:
    from recovery.policy.rules import DEFAULT_POLICY_FILE
    from recovery.policy.services import policy_draft_create

    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    for _ in range(ROWS_WANTED):
        policy_draft_create(actor=world.admin, tenant=world.tenant, text=text)


def _owner_idp_configs(world: ListWorld) -> None:
    from recovery.owner.idp_config import idp_config_draft

    for i in range(ROWS_WANTED):
        idp_config_draft(
            actor=world.admin,
            tenant=world.tenant,
            issuer=f"https://idp{i}.example.test",
            client_id="vouchsafe-owner-portal",
            client_secret_env="VOUCHSAFE_TEST_IDP_SECRET",
            allowed_amr=["hwk"],
        )


def _webhooks(world: ListWorld) -> None:
    from django.test import override_settings

    from integrations.services import MAX_SUBSCRIPTIONS_PER_TENANT, webhook_subscription_create

    world.subscription  # noqa: B018
    with override_settings(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True):
        for i in range(min(ROWS_WANTED, MAX_SUBSCRIPTIONS_PER_TENANT) - 1):
            webhook_subscription_create(
                actor=world.admin,
                tenant=world.tenant,
                url=f"https://hooks{i}.example.test/in",
                event_types=["case.submitted"],
            )


def _alert_routes(world: ListWorld) -> None:
    """Routes proposed and withdrawn (a tenant holds at most ten open ones; the list shows
    them all, history included)."""
    from tenants.routes import route_propose, route_withdraw

    for i in range(ROWS_WANTED):
        route = route_propose(
            actor=world.admin, tenant=world.tenant, kind="email", target=f"soc{i}@list.test"
        )
        route_withdraw(actor=world.admin, route=route)


def _alert_queue(world: ListWorld) -> None:
    """Alerts of as many kinds on one case: each its own row of the queue."""
    from recovery.cases.services import case_open
    from recovery.cases.services.base import alert_raise

    officer = factories.staff(Role.SECURITY_OFFICER, tenant=world.tenant)
    account = factories.make_account(world.tenant)
    case = case_open(actor=officer, account=account, case_type="unlock", channel="phone")
    for i in range(ROWS_WANTED):
        alert_raise(case, f"list_kind_{i}")


def _nothing(world: ListWorld) -> None:
    """The rows come with the others (every service call above writes audit events)."""


def _webhook_page() -> int:
    """A tenant may hold only so many subscriptions; the large page is as large as allowed."""
    from integrations.services import MAX_SUBSCRIPTIONS_PER_TENANT

    return min(LARGE, MAX_SUBSCRIPTIONS_PER_TENANT)


@dataclass(frozen=True)
class Rows:
    make: Callable[[ListWorld], None]
    large: Callable[[], int] = lambda: LARGE


# View class name -> how its rows are made (and, rarely, a smaller large page).
ROWS: dict[str, Rows] = {
    "AccountListApi": Rows(lambda world: world.accounts),
    "CaseListApi": Rows(_cases),
    "ExceptionListApi": Rows(_exceptions),
    "ApprovalListApi": Rows(_approvals),
    "AlertListApi": Rows(_alerts),
    "AuditEventListApi": Rows(_nothing),
    "EventListApi": Rows(_ingested_events),
    "ApiKeyListApi": Rows(_api_keys),
    "GrantListApi": Rows(_grants),
    "ProviderGrantListApi": Rows(_grants),
    "PolicyVersionListApi": Rows(_policy_versions),
    "OwnerIdpConfigListApi": Rows(_owner_idp_configs),
    "WebhookListApi": Rows(_webhooks, large=_webhook_page),
    "WebhookDeliveryListApi": Rows(_cases),  # one delivery per case opened
    "AlertRouteListApi": Rows(_alert_routes),
    "AlertQueueApi": Rows(_alert_queue),
}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """The rows of every list, built once; rolled back when the module ends."""
    with django_db_blocker.unblock(), transaction.atomic():
        world = ListWorld.create()
        done: set[Callable] = set()
        for route in LIST_ROUTES:
            rows = ROWS.get(route.view_class.__name__)
            if rows is not None and rows.make not in done:
                rows.make(world)
                done.add(rows.make)
        # Credentials too: made inside a test they would be rolled back with it.
        world.clients = {
            "key": key_client(world.tenant),
            "staff": staff_session(broad_staff(world.tenant)),
            "provider": staff_session(factories.staff(Role.TENANT_ADMIN, provider=world.provider)),
        }
        yield world
        transaction.set_rollback(True)


def _client(world: ListWorld, route: Route) -> APIClient:
    """A full-scope key, or a staff session where no key may read the list."""
    view = route.view_class
    if "provider" in route.converters:  # a provider's own route: one of its staff
        return world.clients["provider"]
    if issubclass(view, TenantApiView) and view.scopes.get("GET") not in (None, *StaffScope.values):
        return world.clients["key"]
    return world.clients["staff"]


def _url_values(world: ListWorld, route: Route) -> dict[str, Any]:
    known = {
        "tenant": world.tenant.slug,
        "provider": world.provider.slug,
        "subscription_id": world.subscription.pk,
    }
    unknown = [name for name in route.converters if name not in known]
    if unknown:
        pytest.fail(f"{route}: add URL values for {unknown} to _url_values in this module")
    return {name: known[name] for name in route.converters}


def _measure(client: APIClient, path: str, size: int) -> tuple[list[str], int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, {"page_size": size})
    assert response.status_code == 200, f"GET {path}?page_size={size}: {response.content[:300]!r}"
    return [query["sql"] for query in queries.captured_queries], len(response.json()["results"])


# --- the test -------------------------------------------------------------------------------


def test_the_lists_are_found_in_the_urlconf():
    names = {route.view_class.__name__ for route in LIST_ROUTES}
    assert {"CaseListApi", "AccountListApi", "AuditEventListApi"} <= names, names


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
def test_a_page_of_100_costs_what_a_page_of_10_costs(world, db, route):
    rows = ROWS.get(route.view_class.__name__)
    if rows is None:
        pytest.fail(
            f"{route} ({route.view_class.__name__}) is a paginated list with no row maker; "
            "add one to ROWS in tests/api/test_list_query_counts.py"
        )
    large = rows.large()
    client = _client(world, route)
    path = route.path(_url_values(world, route))
    client.get(path, {"page_size": 1})  # warm-up: a key's last_used_at is written once a minute
    small_sql, small_items = _measure(client, path, SMALL)
    large_sql, large_items = _measure(client, path, large)
    name = route.view_class.__name__
    print(f"\nQUERIES {name} page{SMALL}={len(small_sql)} page{large}={len(large_sql)}")
    assert (small_items, large_items) == (SMALL, large), "both pages must be full"
    assert len(small_sql) == len(large_sql), (
        f"{route}: {len(small_sql)} queries for {SMALL} rows, {len(large_sql)} for {large}:\n"
        + "\n".join(large_sql)
    )

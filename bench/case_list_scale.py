"""p95 latency of the case list API for one tenant: 100,000 cases in 50 tenants vs 1,000 cases.

Two databases, built from one seed:

- small (the baseline): the measured tenant holds 1,000 cases, and they are all the cases the
  database holds;
- large: 50 tenants hold 2,000 cases each (100,000), the measured tenant among them. Cases are
  inserted round-robin across tenants, as they would arrive over a year, so the measured
  tenant's rows are interleaved with the other 49 tenants' in every table and index.

Both hold the same 50 tenants (made by `tenant_create`), one agent each (`user_create`,
`membership_create`), 100 accounts each (`accounts_import`, the real audited import service)
and the measured tenant's integration key (`apikey_create`, scope cases:read): the seed is
made once through the services, then copied with `CREATE DATABASE … TEMPLATE`. The cases
themselves are bulk-inserted as `RecoveryCase` rows with `bulk_create` (no `case_open`, no
audit events): the services run at about ten lifecycles a second, 100,000 would take hours.
Statuses, tiers, routes and ages follow a fixed, seeded mix (8 % collecting evidence, most
closed). `ANALYZE` runs on both databases after loading.

Each database is served by its own gunicorn (`config.wsgi`, `bench.settings`, 2 sync workers
each, connected as the restricted role under row-level security). The load client in this
process sends, over HTTP with the key, the first page of `GET /api/v1/t/<slug>/cases/?page_size=25`
and the same with `&status=collecting_evidence`. Within each round the four (database, query)
pairs take turns request by request, so both databases see the same moments of a shared,
noisy machine; each pair's p95 per round is kept and medians over rounds are reported. The
verdict uses the query whose large/small ratio is worse. `EXPLAIN ANALYZE` of both queries,
as the web role inside the tenant's scope, is printed for each database.

    python bench/case_list_scale.py [--requests 200] [--rounds 5] [--concurrency 2]
                                    [--small-cases 1000] [--per-tenant 2000]
                                    [--status collecting_evidence]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _http
import _setup

NAME = "case_list_scale"
# Our choice: a tenant's first page may cost at most twice as much in a database a hundred
# times larger (cursor pagination and the indexes should make it nearly flat).
TARGET = 2.0
TENANTS = 50
ACCOUNTS_PER_TENANT = 100
SMALL_CASES = 1_000
LARGE_CASES_PER_TENANT = 2_000
PAGE_SIZE = 25
BATCH = 5_000
# status: weight, ended (terminal statuses carry ended_at)
STATUS_MIX = {
    "collecting_evidence": (8, False),
    "pending_approval": (4, False),
    "cooling_off": (1, False),
    "ready": (2, False),
    "executed": (3, False),
    "closed": (60, True),
    "denied": (6, True),
    "cancelled": (10, True),
    "expired": (5, True),
    "frozen": (0.5, False),
    "reverted": (0.5, True),
}
TIER_MIX = {"T0": 70, "T1": 20, "T2": 10}
CASE_TYPES = ("password_reset", "mfa_reset", "unlock", "temporary_access")


def list_queries(status: str) -> dict[str, str]:
    return {
        "first page": f"?page_size={PAGE_SIZE}",
        "status filter": f"?page_size={PAGE_SIZE}&status={status}",
    }


def seed() -> tuple[list, str, dict[int, tuple]]:
    """50 tenants with an agent and 100 accounts each; an integration key for the first."""
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.services import accounts_import
    from tenants.apikeys import apikey_create
    from tenants.choices import PrincipalKind, Role, Scope
    from tenants.models import User
    from tenants.rls import system_scope
    from tenants.services import membership_create, tenant_create, user_create

    started = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    tenants, agents = [], {}
    with system_scope():
        operator = User.objects.create_superuser(username=f"bench-op-{run}", password=run * 3)
        for t in range(TENANTS):
            tenant = tenant_create(actor=operator, slug=f"list-{run}-{t:02d}", name=f"List {t}")
            agent = user_create(actor=operator, username=f"agent-{run}-{t}", password=run * 3)
            membership_create(actor=operator, user=agent, role=Role.AGENT, tenant=tenant)
            tenants.append(tenant)
            agents[tenant.pk] = (agent.pk, agent.person_id)
        admin = user_create(actor=operator, username=f"admin-{run}", password=run * 3)
        membership_create(actor=operator, user=admin, role=Role.TENANT_ADMIN, tenant=tenants[0])
        issued = apikey_create(
            actor=admin,
            tenant=tenants[0],
            name="bench list client",
            kind=PrincipalKind.INTEGRATION,
            scopes=[Scope.CASES_READ],
        )
    for t, tenant in enumerate(tenants):
        records = [
            AccountRecord(
                line=n + 1,
                external_id=f"acct-{t:02d}-{n:04d}",
                username=f"acct-{t:02d}-{n:04d}@bench.test",
                display_name=f"Bench account {t}/{n}",
            )
            for n in range(ACCOUNTS_PER_TENANT)
        ]
        accounts_import(actor=Actor.system("bench"), tenant=tenant, records=records, source="b")
    _setup.say(
        f"seeded {TENANTS} tenants, {TENANTS} agents, {TENANTS * ACCOUNTS_PER_TENANT} accounts "
        f"and one key through the services in {time.perf_counter() - started:.1f} s"
    )
    return tenants, issued.token, agents


def use_database(name: str) -> None:
    """Point this process's Django connection at another bench database."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def load_cases(tenants: list, agents: dict[int, tuple], per_tenant: int) -> float:
    """Bulk-insert `per_tenant` cases for each tenant, round-robin, oldest first; seconds."""
    from django.utils import timezone

    from recovery.cases.models import RecoveryCase
    from recovery.models import ProtectedAccount
    from recovery.policy.selectors import policy_active
    from tenants.rls import system_scope

    started = time.perf_counter()
    rng = random.Random(20240601)  # the same mix in every run
    statuses = list(STATUS_MIX)
    status_weights = [STATUS_MIX[s][0] for s in statuses]
    tiers, tier_weights = list(TIER_MIX), list(TIER_MIX.values())
    with system_scope():
        accounts = {
            tenant.pk: list(
                ProtectedAccount.objects.for_tenant(tenant).values_list("pk", flat=True)
            )
            for tenant in tenants
        }
        policy = policy_active(tenants[0])
    # Cases carry their own times: keep auto_now(_add) from overwriting them, in this process.
    fields = [RecoveryCase._meta.get_field(name) for name in ("created_at", "updated_at")]
    saved = [(field.auto_now, field.auto_now_add) for field in fields]
    for field in fields:
        field.auto_now = field.auto_now_add = False
    try:
        now, total = timezone.now(), per_tenant * len(tenants)
        batch: list[RecoveryCase] = []
        for i in range(total):
            tenant = tenants[i % len(tenants)]
            created = now - timedelta(days=365) * (1 - i / total)
            status = rng.choices(statuses, status_weights)[0]
            tier = rng.choices(tiers, tier_weights)[0]
            opened_by, person = agents[tenant.pk]
            ended = created + timedelta(hours=rng.randint(1, 72)) if STATUS_MIX[status][1] else None
            batch.append(
                RecoveryCase(
                    tenant_id=tenant.pk,
                    account_id=rng.choice(accounts[tenant.pk]),
                    case_type=rng.choice(CASE_TYPES),
                    channel="phone",
                    status=status,
                    tier=tier,
                    tier_reasons=[] if tier == "T0" else [f"bench.{tier.lower()}"],
                    route="security" if tier == "T2" else "standard",
                    policy_version=policy.number,
                    policy_source=policy.source,
                    opened_by_id=opened_by,
                    opened_by_person=person,
                    created_at=created,
                    updated_at=ended or created,
                    ended_at=ended,
                )
            )
            if len(batch) == BATCH:
                with system_scope():
                    RecoveryCase.objects.bulk_create(batch)
                batch = []
        if batch:
            with system_scope():
                RecoveryCase.objects.bulk_create(batch)
    finally:
        for field, (auto_now, auto_now_add) in zip(fields, saved, strict=True):
            field.auto_now, field.auto_now_add = auto_now, auto_now_add
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def list_sql(tenant, token: str, queries: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Statements per list request, and each query's case SELECT, from an in-process request."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    found, count = {}, 0
    for label, query in queries.items():
        client.get(f"/api/v1/t/{tenant.slug}/cases/{query}")  # fill per-process caches
        with CaptureQueriesContext(connection) as captured:
            answer = client.get(f"/api/v1/t/{tenant.slug}/cases/{query}")
        if answer.status_code != 200 or len(answer.json()["results"]) != PAGE_SIZE:
            raise SystemExit(f"in-process {label} answered {answer.status_code}: {answer.content}")
        count = max(count, len(captured))
        found[label] = next(
            q["sql"] for q in captured.captured_queries if '"recovery_recoverycase"' in q["sql"]
        )
    return count, found


def explain(role: str, database: str, tenant_id: int, sql: str) -> str:
    """The plan's first node and the execution time, as the web role in the tenant's scope."""
    import psycopg

    with psycopg.connect(_http.role_url(role, database)) as conn:
        conn.execute("SELECT set_config('vouchsafe.tenant_ids', %s, true)", [str(tenant_id)])
        lines = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
        conn.rollback()
    nodes = [line.strip().lstrip("-> ").split("  (")[0] for line in lines if "(cost=" in line]
    timing = next((line for line in lines if line.startswith("Execution Time")), "")
    return f"{' > '.join(nodes[:4])}; {timing}"


def check_page(server: _http.Server, slug: str, token: str, query: str, status: str) -> None:
    import requests

    answer = requests.get(
        f"{server.base}/api/v1/t/{slug}/cases/{query}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    results = answer.json().get("results", []) if answer.status_code == 200 else []
    if len(results) != PAGE_SIZE or (
        "status=" in query and {r["status"] for r in results} != {status}
    ):
        raise SystemExit(f"{server.base}{query} answered {answer.status_code}: {answer.text[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per round, query, database")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="sync workers per gunicorn")
    parser.add_argument(
        "--warmup", type=int, default=40, help="untimed requests per database and query"
    )
    parser.add_argument("--small-cases", type=int, default=SMALL_CASES, help="baseline database")
    parser.add_argument(
        "--per-tenant", type=int, default=LARGE_CASES_PER_TENANT, help=f"x {TENANTS} tenants"
    )
    parser.add_argument("--status", default="collecting_evidence", choices=list(STATUS_MIX))
    parser.add_argument("--database", default="vouchsafe_bench_case_list")
    args = parser.parse_args()
    queries = list_queries(args.status)
    small_db, large_db = f"{args.database}_small", f"{args.database}_large"

    with _http.Cleanup() as cleanup:
        role = _http.setup_django(small_db, cleanup, role=_http.app_role(args.database))
        tenants, token, agents = seed()
        measured = tenants[0]

        from django.db import connection

        connection.close()  # nobody may be connected to a template database while it is copied
        cleanup.add(f"dropped database {large_db}", lambda: _http.drop_database(large_db))
        _http.drop_database(large_db)
        _http._admin(f'CREATE DATABASE "{large_db}" TEMPLATE "{small_db}"')
        _setup.say(f"database {large_db}: copied from {small_db} (seed, grants, RLS)")

        use_database(small_db)
        spent = load_cases([measured], agents, args.small_cases)
        _setup.say(f"{small_db}: {args.small_cases} cases (one tenant) + ANALYZE in {spent:.1f} s")
        use_database(large_db)
        spent = load_cases(tenants, agents, args.per_tenant)
        total = TENANTS * args.per_tenant
        _setup.say(f"{large_db}: {total} cases ({TENANTS} tenants) + ANALYZE in {spent:.1f} s")

        statements, sql = list_sql(measured, token, queries)
        _setup.say(f"SQL statements per list request: {statements}")
        for label, query_sql in sql.items():
            for database in (small_db, large_db):
                plan = explain(role, database, measured.pk, query_sql)
                _setup.say(f"  {label} on {database}: {plan}")
        connection.close()

        servers = {
            "small": _http.Server(_http.role_url(role, small_db), workers=args.workers),
            "large": _http.Server(_http.role_url(role, large_db), workers=args.workers),
        }
        for label, server in servers.items():
            cleanup.add(f"stopped gunicorn ({label}) on port {server.port}", server.stop)
            server.start()
            _setup.say(f"serving {label}: {server.describe()}")
        auth = {"Authorization": f"Bearer {token}"}
        for server in servers.values():
            for query in queries.values():
                check_page(server, measured.slug, token, query, args.status)
        # Every round sends the four (database, query) pairs in turn, request by request, so
        # the two databases see the same moments of a noisy machine.
        combos = [
            (size, label, f"{servers[size].base}/api/v1/t/{measured.slug}/cases/{query}")
            for size in servers
            for label, query in queries.items()
        ]

        def send(session, n: int):
            return session.get(combos[n % len(combos)][2], headers=auth, timeout=60)

        def tag(n: int) -> str:
            size, label, _ = combos[n % len(combos)]
            return f"{size}|{label}"

        warm = _http.load(
            send, requests_total=args.warmup * len(combos), concurrency=args.concurrency, expect=200
        )
        _http.check(warm, "warm-up")
        _setup.say(
            f"load: {args.requests} requests per round, query and database, interleaved; "
            f"{args.concurrency} client connections"
        )
        p95: dict[str, list[float]] = {}
        p50: dict[str, list[float]] = {}
        for r in range(args.rounds):
            result = _http.load(
                send,
                requests_total=args.requests * len(combos),
                concurrency=args.concurrency,
                expect=200,
                tag=tag,
            )
            _http.check(result, f"round {r + 1}")
            line = []
            for key, latencies in sorted(result.by_tag.items()):
                p95.setdefault(key, []).append(_http.percentile(latencies, 95))
                p50.setdefault(key, []).append(_http.percentile(latencies, 50))
                line.append(f"{key.replace('|', ' ')} p95 {p95[key][-1]:.1f} ms")
            _setup.say(f"round {r + 1}/{args.rounds}: {', '.join(line)}")

    ratios = {}
    for label in queries:
        small, large = (_setup.median(p95[f"{size}|{label}"]) for size in ("small", "large"))
        ratios[label] = (large, small, large / small)
        print(
            f"{label}: p95 {large:.1f} ms at {TENANTS * args.per_tenant} cases vs "
            f"{small:.1f} ms at {args.small_cases} (ratio {large / small:.2f}); p50 "
            f"{_setup.median(p50[f'large|{label}']):.1f} vs "
            f"{_setup.median(p50[f'small|{label}']):.1f} ms"
        )
    worst = max(ratios, key=lambda label: ratios[label][2])
    large, small, ratio = ratios[worst]
    print(f"verdict on the worse query: {worst}")
    print(
        f"BENCH {NAME} p95_ms={large:.1f} baseline={small:.1f} ratio={ratio:.2f} "
        f"target={TARGET} {_setup.verdict(ratio <= TARGET)}"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (databases, role and gunicorn cleaned up)")

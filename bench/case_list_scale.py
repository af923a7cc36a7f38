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
Seed, copy and case load live in bench/_cases.py, shared with console_scale.py.
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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _cases
import _http
import _setup

NAME = "case_list_scale"
# Our choice: a tenant's first page may cost at most twice as much in a database a hundred
# times larger (cursor pagination and the indexes should make it nearly flat).
TARGET = 2.0
TENANTS = _cases.TENANTS
PAGE_SIZE = 25


def list_queries(status: str) -> dict[str, str]:
    return {
        "first page": f"?page_size={PAGE_SIZE}",
        "status filter": f"?page_size={PAGE_SIZE}&status={status}",
    }


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
    parser.add_argument(
        "--small-cases", type=int, default=_cases.SMALL_CASES, help="baseline database"
    )
    parser.add_argument(
        "--per-tenant", type=int, default=_cases.LARGE_CASES_PER_TENANT, help=f"x {TENANTS} tenants"
    )
    parser.add_argument("--status", default="collecting_evidence", choices=list(_cases.STATUS_MIX))
    parser.add_argument("--database", default="vouchsafe_bench_case_list")
    args = parser.parse_args()
    queries = list_queries(args.status)
    small_db, large_db = f"{args.database}_small", f"{args.database}_large"

    with _http.Cleanup() as cleanup:
        role = _http.setup_django(small_db, cleanup, role=_http.app_role(args.database))
        tenants, token, agents = _cases.seed()
        measured = tenants[0]

        _cases.copy_database(small_db, large_db, cleanup)

        _cases.use_database(small_db)
        spent = _cases.load_cases([measured], agents, args.small_cases)
        _setup.say(f"{small_db}: {args.small_cases} cases (one tenant) + ANALYZE in {spent:.1f} s")
        _cases.use_database(large_db)
        spent = _cases.load_cases(tenants, agents, args.per_tenant)
        total = TENANTS * args.per_tenant
        _setup.say(f"{large_db}: {total} cases ({TENANTS} tenants) + ANALYZE in {spent:.1f} s")

        statements, sql = list_sql(measured, token, queries)
        _setup.say(f"SQL statements per list request: {statements}")
        for label, query_sql in sql.items():
            for database in (small_db, large_db):
                plan = _cases.explain(role, database, measured.pk, query_sql)
                _setup.say(f"  {label} on {database}: {plan}")
        servers = _cases.serve_small_and_large(
            role, small_db, large_db, workers=args.workers, cleanup=cleanup
        )
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

        p95, p50 = _http.interleaved_rounds(
            send,
            tag,
            combos=len(combos),
            requests_per_combo=args.requests,
            rounds=args.rounds,
            warmup=args.warmup,
            concurrency=args.concurrency,
        )

    print(f"large: {TENANTS * args.per_tenant} cases; small: {args.small_cases} cases")
    _cases.report_large_vs_small(NAME, list(queries), p95, p50, TARGET)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (databases, role and gunicorn cleaned up)")

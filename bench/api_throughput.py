"""Requests/s of POST create-case (real service, audited) vs a bare DRF create, one gunicorn.

Both paths are served by the same gunicorn (`config.wsgi`, `bench.settings`, default 2 sync
workers, web processes connected as the restricted role under row-level security) and driven
over HTTP by a load client in this process (a few threads, one keep-alive `requests.Session`
each):

- create-case: `POST /api/v1/t/<slug>/cases/` `{"account_id", "case_type": "unlock"}` with an
  integration key (`Authorization: Bearer`). Each request authenticates the key, passes the
  rate limit (Redis db 13, limits raised so it never answers 429), resolves the tenant, and
  runs `recovery.cases.services.case_open` inside the tenant's RLS transaction: the account
  row is locked, tier and route come from the policy, the case is inserted and `case.opened`
  is appended to the tenant's hash chain. Every request uses an account of its own, so no
  case is a repeat attempt and no two requests wait on the same account lock.
- baseline: `POST /bench/baseline/items/`, a `ModelSerializer` behind a `CreateAPIView` on a
  one-table bench-only model (`bench.baseline`), no authentication, permission or throttle.

Set-up (not timed): a fresh database migrated with bench.settings; a tenant made by
`tenant_create`, a tenant admin, a key from `apikey_create`, and the accounts through
`accounts_import` (the real import service, audited). Rounds alternate the two paths;
medians of requests/s and of p95 latency are reported. Before the load, one request of each
path runs in-process under Django's test client to count its SQL statements.

    python bench/api_throughput.py [--seconds 4] [--rounds 6] [--concurrency 4]
                                   [--workers 2] [--worker-class sync|gthread] [--threads 1]
                                   [--idempotency-key] [--show-queries]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _http
import _setup

NAME = "api_throughput"
# Our choice: opening a case (auth, tenant, policy, a locked account, an audited insert) should
# serve at least a third of the requests/s of a bare one-table DRF create.
TARGET = 0.33
CASE_TYPE = "unlock"
IMPORT_BATCH = 500


def seed_tenant():
    """A tenant, its admin and an integration key, through the services."""
    from tenants.apikeys import apikey_create
    from tenants.choices import PrincipalKind, Role, Scope
    from tenants.models import User
    from tenants.rls import system_scope
    from tenants.services import membership_create, tenant_create, user_create

    run = uuid.uuid4().hex[:8]
    with system_scope():
        operator = User.objects.create_superuser(username=f"bench-op-{run}", password=run * 2)
        tenant = tenant_create(actor=operator, slug=f"api-{run}", name=f"Bench api {run}")
        admin = user_create(actor=operator, username=f"admin-{run}", password=uuid.uuid4().hex)
        membership_create(actor=operator, user=admin, role=Role.TENANT_ADMIN, tenant=tenant)
        issued = apikey_create(
            actor=admin,
            tenant=tenant,
            name="bench load client",
            kind=PrincipalKind.INTEGRATION,
            scopes=[Scope.CASES_READ, Scope.CASES_WRITE],
        )
    return tenant, issued.token


class AccountPool:
    """Accounts no case has touched yet, imported through `accounts_import` (audited), handed
    out once each to the load threads. Topped up between rounds, untimed."""

    def __init__(self, tenant) -> None:
        self.tenant = tenant
        self.ids: list[int] = []
        self.next = 0
        self.imported = 0
        self.lock = threading.Lock()

    def take(self) -> int:
        with self.lock:
            if self.next >= len(self.ids):
                raise SystemExit("account pool ran dry: raise the top-up estimate")
            self.next += 1
            return self.ids[self.next - 1]

    def top_up(self, wanted: int) -> None:
        """Make sure at least `wanted` unused accounts are left."""
        from audit.context import Actor
        from recovery.imports import AccountRecord
        from recovery.models import ProtectedAccount
        from recovery.services import accounts_import
        from tenants.rls import system_scope

        missing = wanted - (len(self.ids) - self.next)
        if missing <= 0:
            return
        started = time.perf_counter()
        first = self.imported
        for low in range(first, first + missing, IMPORT_BATCH):
            records = [
                AccountRecord(
                    line=n - low + 1,
                    external_id=f"acct-{n:07d}",
                    username=f"acct-{n:07d}@bench.test",
                    display_name=f"Bench account {n}",
                )
                for n in range(low, min(low + IMPORT_BATCH, first + missing))
            ]
            accounts_import(
                actor=Actor.system("bench"), tenant=self.tenant, records=records, source="bench"
            )
        self.imported = first + missing
        with system_scope():
            new = ProtectedAccount.objects.for_tenant(self.tenant).filter(
                external_id__gte=f"acct-{first:07d}"
            )
            self.ids.extend(new.order_by("external_id").values_list("pk", flat=True))
        _setup.say(
            f"imported {missing} accounts in {time.perf_counter() - started:.1f} s (untimed)"
        )


def count_queries(
    tenant, token: str, account_id: int, idempotency: bool
) -> tuple[int, int, list[str]]:
    """SQL statements of one create-case and one baseline request, in-process (owner role)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as create:
        answer = client.post(
            f"/api/v1/t/{tenant.slug}/cases/",
            {"account_id": account_id, "case_type": CASE_TYPE},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **({"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex} if idempotency else {}),
        )
    if answer.status_code != 201:
        raise SystemExit(f"in-process create-case answered {answer.status_code}: {answer.content}")
    with CaptureQueriesContext(connection) as bare:
        answer = client.post(
            "/bench/baseline/items/",
            {"label": "in-process", "quantity": 0},
            content_type="application/json",
        )
    if answer.status_code != 201:
        raise SystemExit(f"in-process baseline answered {answer.status_code}: {answer.content}")
    return len(create), len(bare), [q["sql"] for q in create.captured_queries]


def profile_creates(tenant, token: str, pool: AccountPool, count: int) -> None:
    """cProfile of `count` in-process create-case requests: where one create spends its time."""
    import cProfile
    import pstats

    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    profiler = cProfile.Profile()
    for _ in range(count):
        body = {"account_id": pool.take(), "case_type": CASE_TYPE}
        profiler.enable()
        answer = client.post(
            f"/api/v1/t/{tenant.slug}/cases/",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        profiler.disable()
        if answer.status_code != 201:
            raise SystemExit(f"profiled create-case answered {answer.status_code}")
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(r"(/(recovery|audit|integrations|tenants|api)/|auditlog/receivers).*py", 40)


def summarise(statements: list[str]) -> str:
    """Statement kinds of one request, e.g. '12 SELECT (2 FOR UPDATE), 3 INSERT …'."""
    kinds: dict[str, int] = {}
    for sql in statements:
        word = sql.lstrip().split(None, 1)[0].upper()
        kinds[word] = kinds.get(word, 0) + 1
    locks = sum("FOR UPDATE" in sql for sql in statements)
    parts = [f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts) + f"; {locks} row locks (FOR UPDATE)"


def check_outcome(tenant, created: int) -> None:
    """Every 201 left one case and one case.opened event; the tenant's chain still verifies."""
    from audit.models import AuditEvent
    from audit.verify import verify_chain
    from recovery.cases.models import RecoveryCase
    from tenants.rls import system_scope

    with system_scope():
        cases = RecoveryCase.objects.for_tenant(tenant)
        opened = AuditEvent.objects.filter(tenant_id=tenant.pk, action="case.opened").count()
        repeats = cases.filter(repeat_attempt=True).count()
        total = cases.count()
        report = verify_chain(tenant.pk, tenant.slug)
    if total != created or opened != created or repeats or not report.intact:
        raise SystemExit(
            f"outcome check failed: {total} cases, {opened} case.opened events, {repeats} "
            f"repeats for {created} creates; chain {report}"
        )
    _setup.say(
        f"checked: {total} cases, {opened} case.opened events, no repeats, "
        f"chain of {report.rows} events intact"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per round and path")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=4, help="client connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=1, help="per worker (gthread)")
    parser.add_argument("--warmup", type=int, default=60, help="untimed requests per path")
    parser.add_argument("--show-queries", action="store_true", help="print create-case's SQL")
    parser.add_argument(
        "--idempotency-key", action="store_true", help="send a unique Idempotency-Key per create"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile N in-process creates, exit"
    )
    parser.add_argument("--database", default="vouchsafe_bench_api")
    args = parser.parse_args()

    with _http.Cleanup() as cleanup:
        role = _http.setup_django(args.database, cleanup)
        tenant, token = seed_tenant()
        pool = AccountPool(tenant)
        pool.top_up(2 + args.warmup)

        # The first request fills per-process caches (content types); count the second.
        count_queries(tenant, token, pool.take(), args.idempotency_key)
        create_n, base_n, statements = count_queries(
            tenant, token, pool.take(), args.idempotency_key
        )
        _setup.say(f"SQL statements per request: create-case {create_n}, baseline {base_n}")
        _setup.say(f"  create-case: {summarise(statements)}")
        if args.show_queries:
            for sql in statements:
                _setup.say(f"    {sql[:160]}")
        if args.profile:
            pool.top_up(args.profile)
            profile_creates(tenant, token, pool, args.profile)
            return

        server = _http.Server(
            _http.role_url(role, args.database),
            workers=args.workers,
            worker_class=args.worker_class,
            threads=args.threads,
        )
        with _http.serving(server, cleanup):
            cases_url = f"{server.base}/api/v1/t/{tenant.slug}/cases/"
            base_url = f"{server.base}/bench/baseline/items/"
            auth = {"Authorization": f"Bearer {token}"}

            def create_case(session, n: int):
                body = {"account_id": pool.take(), "case_type": CASE_TYPE}
                headers = auth
                if args.idempotency_key:
                    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
                return session.post(cases_url, json=body, headers=headers, timeout=60)

            def baseline(session, n: int):
                body = {"label": f"bench item {n}", "quantity": n}
                return session.post(base_url, json=body, timeout=60)

            paths = {"create-case": create_case, "baseline": baseline}
            warm = {}
            for label, send in paths.items():  # warm both: imports, connections, caches
                warm[label] = _http.load(
                    send, requests_total=args.warmup, concurrency=args.concurrency, expect=201
                )
                _http.check(warm[label], f"warm-up {label}")
            _setup.say(
                f"load: {args.seconds:g} s per round and path, {args.concurrency} client "
                f"connections (threads of this process, keep-alive sessions)"
            )
            results: dict[str, list[_http.Result]] = {label: [] for label in paths}
            fastest = 2 * warm["create-case"].rps  # accounts a round may need, with a margin
            for r in range(args.rounds):
                pool.top_up(int(fastest * args.seconds * 1.5) + 100)
                order = list(paths) if r % 2 == 0 else list(reversed(paths))
                for label in order:
                    result = _http.load(
                        paths[label],
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        expect=201,
                    )
                    _http.check(result, label)
                    results[label].append(result)
                c, b = results["create-case"][-1], results["baseline"][-1]
                fastest = max(fastest, 1.2 * c.rps)
                _setup.say(
                    f"round {r + 1}/{args.rounds}: create-case {c.rps:.1f} req/s "
                    f"(p50 {c.p50_ms:.1f} ms, p95 {c.p95_ms:.1f} ms), baseline {b.rps:.1f} req/s "
                    f"(p50 {b.p50_ms:.1f} ms, p95 {b.p95_ms:.1f} ms), "
                    f"ratio {c.rps / b.rps:.3f}"
                )
            check_outcome(tenant, pool.next)
        creates, bases = results["create-case"], results["baseline"]

    rate = _setup.median([r.rps for r in creates])
    baseline_rate = _setup.median([r.rps for r in bases])
    ratio = rate / baseline_rate
    round_ratios = [c.rps / b.rps for c, b in zip(creates, bases, strict=True)]
    print(
        f"{server.describe()}, {args.concurrency} client connections, {args.rounds} rounds of "
        f"{args.seconds:g} s" + (", Idempotency-Key on creates" if args.idempotency_key else "")
    )
    print(
        f"p95 latency (median of rounds): create-case "
        f"{_setup.median([r.p95_ms for r in creates]):.1f} ms, baseline "
        f"{_setup.median([r.p95_ms for r in bases]):.1f} ms; p50: create-case "
        f"{_setup.median([r.p50_ms for r in creates]):.1f} ms, baseline "
        f"{_setup.median([r.p50_ms for r in bases]):.1f} ms"
    )
    print(f"per-round ratios: {', '.join(f'{x:.3f}' for x in round_ratios)}")
    print(
        f"BENCH {NAME} create_case_rps={rate:.1f} baseline={baseline_rate:.1f} "
        f"ratio={ratio:.3f} target={TARGET} {_setup.verdict(ratio >= TARGET)}"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (database, role and gunicorn cleaned up)")

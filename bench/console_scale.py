"""p95 latency of three web console pages for one tenant: a database 100x larger vs a small one.

Pages, each requested by a signed-in, OTP-verified member of the measured tenant:

- `GET /t/<slug>/review/` (the approval queue, 25 rows), as a supervisor who opened none of
  the cases;
- `GET /t/<slug>/workspace/?q=acct-00` (account search; `acct-00` is the stem of every
  username and external id in the measured tenant, so all its accounts match and the page
  shows 20 of them with a count), as the agent who opened the tenant's cases (the page also
  lists that agent's open cases);
- `GET /t/<slug>/audit/` (the audit timeline, first page of 50 events), as an auditor.

Two databases, built from the seed of case_list_scale (bench/_cases.py: 50 tenants, an agent
and 100 accounts each, through the services) plus a supervisor and an auditor in the measured
tenant, a confirmed TOTP device for each of the three staff users (`totp_enrolment_confirm`)
and their sign-ins (`sign_in_completed`), then copied with `CREATE DATABASE … TEMPLATE`:

- small (the baseline): the measured tenant holds 1,000 accounts, 1,000 cases and about
  1,100 audit events (the seed's own plus 1,000 loaded);
- large: each of the 50 tenants holds 2,000 accounts, 2,000 cases and about 2,100 events
  (100,000 of each loaded), inserted round-robin across tenants.

Accounts and cases are bulk-inserted (`bulk_create`; cases with the seeded status mix of
case_list_scale and `submitted_at` set, so about 4 % wait in `pending_approval`). Audit
events are COPYed as valid hash chains: each tenant's chain continues from its head (the
seed's events) with hashes from `audit.chain.row_hash`, and the head is moved to the last
event; the measured tenant's chain is verified with `audit.verify.verify_chain` in both
databases before anything is timed. `ANALYZE` runs after loading.

The sessions are made server-side: a row in the session store with the user's auth keys and
django-otp's verified device id, as `login()` and `django_otp.login()` leave them, so
`OTPMiddleware` and `StaffOTPRequiredMiddleware` let the requests through. The session rows
are part of the seed, so both databases hold the same ones.

Each database is served by its own gunicorn (`config.wsgi`, `bench.settings`, 2 sync workers,
connected as the restricted role under row-level security). Within each round the six
(database, page) pairs take turns request by request; each pair's p95 per round is kept and
medians over rounds are reported. Every answer must be a 200 (redirects are not followed) and
every checked page must show its full set of rows. The verdict uses the page whose large/small
p95 ratio is worst. The SQL statements each page issues are counted in-process, and
`EXPLAIN ANALYZE` of each page's main query (approval queue, account search, audit page) is
printed for both databases, run as the web role inside the tenant's scope.

    python bench/console_scale.py [--requests 60] [--rounds 5] [--concurrency 2]
                                  [--small-accounts 1000] [--accounts-per-tenant 2000]
                                  [--small-cases 1000] [--per-tenant 2000]
                                  [--small-events 1000] [--events-per-tenant 2000]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _cases
import _http
import _setup

NAME = "console_scale"
# Our choice: a console page may cost at most twice as much in a database a hundred times
# larger (the same target as case_list_scale).
TARGET = 2.0
TENANTS = _cases.TENANTS
QUEUE_ROWS = 25  # review_views.QUEUE_PAGE_SIZE
SEARCH_ROWS = 20  # cases.views.PAGE_SIZE
AUDIT_ROWS = 50  # audit.views.PAGE_SIZE
SEARCH = "acct-00"  # the measured tenant (index 0) is in every username and external id
EVENT_ACTIONS = (
    "case.opened",
    "verification.signal_accepted",
    "case.submitted",
    "approval.approved",
    "case.status_changed",
    "case.note_added",
    "case.closed",
)


@dataclass(frozen=True)
class Page:
    label: str
    path: str  # under /t/<slug>/
    user: str  # whose session requests it
    rows: int  # rows the page must show
    marks: str  # in the page's main statements (its count and its rows), for EXPLAIN


def pages() -> list[Page]:
    return [
        Page("approval queue", "review/", "supervisor", QUEUE_ROWS, "'pending_approval'"),
        Page("account search", f"workspace/?q={SEARCH}", "agent", SEARCH_ROWS, f"%{SEARCH}%"),
        Page("audit timeline", "audit/", "auditor", AUDIT_ROWS, 'FROM "audit_auditevent"'),
    ]


def rows_shown(page: Page, slug: str, html: str) -> list[int]:
    """The ids (case, account) or seqs (event) of the rows the page lists."""
    patterns = {
        "approval queue": rf'href="/t/{re.escape(slug)}/review/(\d+)/"',
        "account search": rf'href="/t/{re.escape(slug)}/workspace/accounts/(\d+)/"',
        "audit timeline": r"<tr>\s*<td>(\d+)</td>",
    }
    return [int(found) for found in re.findall(patterns[page.label], html)]


def check_html(page: Page, slug: str, status: int, html: str, head_seq: int, where: str) -> None:
    """Fail loudly unless the page is a 200 with its full set of rows (a benchmark of error
    pages or login redirects is worthless)."""
    shown = rows_shown(page, slug, html) if status == 200 else []
    problem = ""
    if status != 200:
        problem = f"answered {status}"
    elif len(shown) != page.rows or len(set(shown)) != page.rows:
        problem = f"shows {len(shown)} rows, not {page.rows}"
    elif page.label == "account search" and html.count(f"{SEARCH}-") < page.rows:
        problem = f"rows do not match {SEARCH!r}"
    elif page.label == "audit timeline" and max(shown) < head_seq:
        # Each view records its read, so the head moves on by one per view measured.
        problem = f"newest row is #{max(shown)}, older than the filled chain head #{head_seq}"
    if problem:
        raise SystemExit(f"{where} {page.label} /{page.path} {problem}:\n{html[:600]}")


# --- seed: staff users with verified sessions -----------------------------------------------


def staff_sessions(tenant, agent_pk: int) -> dict[str, str]:
    """A supervisor and an auditor in `tenant`, plus its agent, each with a confirmed TOTP
    device and a signed-in, OTP-verified session; returns the session keys by role."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tenants.choices import Role
    from tenants.models import User
    from tenants.otp import sign_in_completed, totp_enrolment_confirm
    from tenants.rls import system_scope
    from tenants.services import membership_create, user_create

    run = uuid.uuid4().hex[:6]
    store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = {}
    with system_scope():
        operator = User.objects.create_superuser(username=f"bench-staff-{run}", password=run * 3)
        users = {"agent": User.objects.get(pk=agent_pk)}
        for role in (Role.SUPERVISOR, Role.AUDITOR):
            user = user_create(actor=operator, username=f"{role}-{run}", password=run * 3)
            membership_create(actor=operator, user=user, role=role, tenant=tenant)
            users[str(role)] = user
        for role, user in users.items():
            device = TOTPDevice.objects.create(user=user, name="bench", confirmed=False)
            totp_enrolment_confirm(user=user, device=device)  # as the enrolment view does
            sign_in_completed(user=user, device=device)
            session = store()
            session[SESSION_KEY] = user._meta.pk.value_to_string(user)
            session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.create()
            keys[role] = session.session_key
    _setup.say(f"staff: agent, supervisor and auditor in {tenant.slug}, TOTP confirmed, signed in")
    return keys


# --- bulk loads -----------------------------------------------------------------------------


def load_accounts(tenants: list, per_tenant: int) -> float:
    """Add accounts until each tenant holds `per_tenant`, round-robin; seconds.

    `tenants` are in seed order (the index is part of each account's name). Every column
    but the four naming ones comes from one `ProtectedAccount` built with the model's
    defaults (and `created_at` from its own pre_save); rows are written with COPY, as
    `bulk_create` of 100,000 accounts takes 40 s on the 2-core machine."""
    from django.db import connection

    from recovery.models import ProtectedAccount

    started = time.perf_counter()
    fields = [field for field in ProtectedAccount._meta.concrete_fields if not field.primary_key]
    model = ProtectedAccount(tenant_id=tenants[0].pk, source="b")
    template = [field.get_db_prep_save(field.pre_save(model, True), connection) for field in fields]
    at = {field.attname: i for i, field in enumerate(fields)}
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    statement = f"COPY {ProtectedAccount._meta.db_table} ({columns}) FROM STDIN"
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection, for COPY
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(statement) as copy:
        for n in range(_cases.ACCOUNTS_PER_TENANT, per_tenant):
            for t, tenant in enumerate(tenants):
                name, row = _cases.account_id(t, n), list(template)
                row[at["tenant_id"]] = tenant.pk
                row[at["external_id"]] = name
                row[at["username"]] = f"{name}@bench.test"
                row[at["display_name"]] = f"Bench account {t}/{n}"
                copy.write_row(row)
    return time.perf_counter() - started


def load_events(tenants: list, agents: dict[int, tuple], per_tenant: int) -> tuple[float, dict]:
    """COPY `per_tenant` events onto each tenant's chain, round-robin across tenants, each
    chain continuing from its head (hashes by `audit.chain.row_hash`), and move the heads.
    Events are about the tenant's cases, by its agent. Returns seconds and the heads' seqs."""
    from django.db import connection

    from audit.chain import HASHED_FIELDS, chain_key, row_hash
    from audit.models import AuditChainHead, AuditEvent
    from recovery.cases.models import RecoveryCase
    from tenants.models import User
    from tenants.rls import system_scope

    started = time.perf_counter()
    columns = ", ".join((*HASHED_FIELDS, "hash"))
    with system_scope():
        heads = {
            head.tenant_id: [head.seq, head.hash]
            for head in AuditChainHead.objects.filter(key__in=[chain_key(t.pk) for t in tenants])
        }
        latest = AuditEvent.objects.order_by("-created_at").values_list("created_at", flat=True)[0]
        cases = {
            tenant.pk: list(
                RecoveryCase.objects.for_tenant(tenant)
                .order_by("pk")
                .values_list("pk", "case_type", "status")
            )
            for tenant in tenants
        }
        labels = dict(
            User.objects.filter(pk__in=[a[0] for a in agents.values()]).values_list(
                "pk", "username"
            )
        )
    if set(heads) != {t.pk for t in tenants}:
        raise SystemExit("a seeded tenant has no audit chain head")
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection, for COPY
    with raw.transaction(), raw.cursor() as cursor:
        with cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
            for i in range(per_tenant * len(tenants)):
                tenant = tenants[i % len(tenants)]
                head = heads[tenant.pk]
                seq, n = head[0] + 1, i // len(tenants)
                case_pk, case_type, status = cases[tenant.pk][n % len(cases[tenant.pk])]
                agent_pk = agents[tenant.pk][0]
                values = (
                    tenant.pk,
                    seq,
                    EVENT_ACTIONS[n % len(EVENT_ACTIONS)],
                    str(agent_pk),
                    labels[agent_pk],
                    "human",
                    "",
                    "recovery.RecoveryCase",
                    str(case_pk),
                    f"case {case_pk} ({case_type}, {status})",
                    {"channel": "phone", "ticket": f"INC-{i:08d}", "status": status},
                    f"{i:032x}",
                    f"10.{i % 250}.{i % 199}.{i % 97}",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                    latest + timedelta(microseconds=10 * (i + 1)),
                    head[1],
                )
                head[0], head[1] = seq, row_hash(values)
                copy.write_row((*values[:10], json.dumps(values[10]), *values[11:], head[1]))
        for tenant in tenants:
            seq, digest = heads[tenant.pk]
            cursor.execute(
                "UPDATE audit_auditchainhead SET seq = %s, hash = %s WHERE key = %s",
                [seq, digest, chain_key(tenant.pk)],
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    return time.perf_counter() - started, {pk: head[0] for pk, head in heads.items()}


def verify_measured(tenant, head_seq: int, database: str) -> None:
    from audit.verify import verify_chain
    from tenants.rls import system_scope

    with system_scope():
        report = verify_chain(tenant.pk, tenant.slug)
    if not report.intact or report.rows != head_seq:
        raise SystemExit(f"{database}: the measured tenant's chain does not verify: {report}")


def fill(database: str, tenants: list, agents: dict, accounts: int, cases: int, events: int):
    """Accounts, cases and events into `database` for `tenants`; the measured head seq."""
    _cases.use_database(database)
    spent = {"accounts": load_accounts(tenants, accounts)}
    spent["cases"] = _cases.load_cases(tenants, agents, cases, submitted=True)  # + ANALYZE
    spent["events"], heads = load_events(tenants, agents, events)  # + VACUUM ANALYZE
    verify_measured(tenants[0], heads[tenants[0].pk], database)
    n = len(tenants)
    _setup.say(
        f"{database}: {n * accounts:,} accounts, {n * cases:,} cases, {n * events:,} chained "
        f"events ({n} tenant{'s' if n > 1 else ''}) in "
        + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in spent.items())
        + f"; measured chain verified, {heads[tenants[0].pk]:,} events"
    )
    return heads[tenants[0].pk]


def database_totals() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM recovery_protectedaccount),"
            " (SELECT count(*) FROM recovery_recoverycase),"
            " (SELECT count(*) FROM audit_auditevent)"
        )
        accounts, cases, events = cursor.fetchone()
    return f"{accounts:,} accounts, {cases:,} cases, {events:,} audit events"


# --- in-process: statements and the main queries --------------------------------------------


def page_sql(
    slug: str, sessions: dict[str, str], head_seq: int
) -> dict[str, tuple[int, list[str]]]:
    """Per page: how many statements one request issues, and its main ones, in-process."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    found = {}
    for page in pages():
        client = Client(HTTP_HOST="127.0.0.1")
        client.cookies[settings.SESSION_COOKIE_NAME] = sessions[page.user]
        client.get(f"/t/{slug}/{page.path}")  # fill per-process caches
        with CaptureQueriesContext(connection) as captured:
            answer = client.get(f"/t/{slug}/{page.path}")
        check_html(page, slug, answer.status_code, answer.content.decode(), head_seq, "in-process")
        main = [q["sql"] for q in captured.captured_queries if page.marks in q["sql"]]
        if not main:
            raise SystemExit(f"no statement of {page.label} contains {page.marks!r}")
        found[page.label] = (len(captured), main)
    return found


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="per round, page, database")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="sync workers per gunicorn")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed requests per database and page"
    )
    parser.add_argument("--small-accounts", type=int, default=1_000, help="baseline database")
    parser.add_argument("--accounts-per-tenant", type=int, default=2_000, help=f"x {TENANTS}")
    parser.add_argument("--small-cases", type=int, default=_cases.SMALL_CASES)
    parser.add_argument(
        "--per-tenant", type=int, default=_cases.LARGE_CASES_PER_TENANT, help=f"cases x {TENANTS}"
    )
    parser.add_argument("--small-events", type=int, default=1_000)
    parser.add_argument("--events-per-tenant", type=int, default=2_000, help=f"x {TENANTS}")
    parser.add_argument("--database", default="vouchsafe_bench_console")
    args = parser.parse_args()
    small_db, large_db = f"{args.database}_small", f"{args.database}_large"
    began = time.perf_counter()

    with _http.Cleanup() as cleanup:
        role = _http.setup_django(small_db, cleanup, role=_http.app_role(args.database))
        tenants, _token, agents = _cases.seed(prefix="console")
        measured = tenants[0]
        sessions = staff_sessions(measured, agents[measured.pk][0])
        _cases.copy_database(small_db, large_db, cleanup)

        heads = {
            "small": fill(
                small_db,
                [measured],
                agents,
                args.small_accounts,
                args.small_cases,
                args.small_events,
            ),
            "large": fill(
                large_db,
                tenants,
                agents,
                args.accounts_per_tenant,
                args.per_tenant,
                args.events_per_tenant,
            ),
        }
        totals = {}
        for size, database in (("small", small_db), ("large", large_db)):
            _cases.use_database(database)
            totals[size] = database_totals()
            _setup.say(f"{size} database holds {totals[size]}")

        sql = page_sql(measured.slug, sessions, heads["large"])  # on the large database
        _setup.say(
            "SQL statements per page: "
            + ", ".join(f"{label} {count}" for label, (count, _sql) in sql.items())
        )
        for label, (_count, statements) in sql.items():
            for query in statements:
                kind = "count" if query.startswith("SELECT COUNT(*)") else "rows"
                for size, database in (("small", small_db), ("large", large_db)):
                    plan = _cases.explain(role, database, measured.pk, query)
                    _setup.say(f"  EXPLAIN {label} ({kind}) {size}: {plan}")
        servers = _cases.serve_small_and_large(
            role, small_db, large_db, workers=args.workers, cleanup=cleanup
        )

        import requests
        from django.conf import settings

        cookie = settings.SESSION_COOKIE_NAME
        for size, server in servers.items():
            for page in pages():
                answer = requests.get(
                    f"{server.base}/t/{measured.slug}/{page.path}",
                    cookies={cookie: sessions[page.user]},
                    allow_redirects=False,
                    timeout=30,
                )
                check_html(page, measured.slug, answer.status_code, answer.text, heads[size], size)
        # Every round sends the six (database, page) pairs in turn, request by request, so the
        # two databases see the same moments of a noisy machine.
        combos = [
            (size, page, f"{servers[size].base}/t/{measured.slug}/{page.path}")
            for size in servers
            for page in pages()
        ]

        def send(session, n: int):
            _size, page, url = combos[n % len(combos)]
            return session.get(
                url, cookies={cookie: sessions[page.user]}, allow_redirects=False, timeout=60
            )

        def tag(n: int) -> str:
            size, page, _url = combos[n % len(combos)]
            return f"{size}|{page.label}"

        p95, p50 = _http.interleaved_rounds(
            send,
            tag,
            combos=len(combos),
            requests_per_combo=args.requests,
            rounds=args.rounds,
            warmup=args.warmup,
            concurrency=args.concurrency,
        )
        # The pages once more after the load: still complete, still signed in.
        for size, server in servers.items():
            for page in pages():
                answer = requests.get(
                    f"{server.base}/t/{measured.slug}/{page.path}",
                    cookies={cookie: sessions[page.user]},
                    allow_redirects=False,
                    timeout=30,
                )
                check_html(page, measured.slug, answer.status_code, answer.text, heads[size], size)

    print(f"small: {totals['small']}; large: {totals['large']}")
    print(f"run time {time.perf_counter() - began:.0f} s")
    _cases.report_large_vs_small(NAME, [page.label for page in pages()], p95, p50, TARGET)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (databases, role and gunicorn cleaned up)")

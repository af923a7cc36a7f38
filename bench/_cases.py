"""The seed and the bulk case load shared by the at-scale benchmarks (case_list_scale,
console_scale): 50 tenants made through the services, copied into a second database with
`CREATE DATABASE … TEMPLATE`, then each database filled with bulk-inserted cases.

- `seed()`: 50 tenants (`tenant_create`), an agent each (`user_create`, `membership_create`),
  100 accounts each (`accounts_import`, the real audited import) and an integration key for the
  first tenant (`apikey_create`, scope cases:read).
- `copy_database()`: the second database from the first (seed, grants, RLS policies).
- `load_cases()`: `RecoveryCase` rows by `bulk_create` (no `case_open`, no audit events: the
  services run at about ten lifecycles a second), round-robin across tenants as they would
  arrive over a year, with a fixed, seeded mix of statuses, tiers and routes; then `ANALYZE`.
- `explain()`: `EXPLAIN ANALYZE` of a statement as the web role inside a tenant's scope.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

import _http
import _setup

TENANTS = 50
ACCOUNTS_PER_TENANT = 100
SMALL_CASES = 1_000
LARGE_CASES_PER_TENANT = 2_000
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


def account_id(tenant_index: int, n: int) -> str:
    """External id (and username stem) of a bench account: `acct-<tenant>-<n>`."""
    return f"acct-{tenant_index:02d}-{n:04d}"


def seed(prefix: str = "list") -> tuple[list, str, dict[int, tuple]]:
    """50 tenants with an agent and 100 accounts each; an integration key for the first.

    Returns the tenants, the key's token and, per tenant pk, its agent's (pk, person_id).
    """
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
            tenant = tenant_create(
                actor=operator, slug=f"{prefix}-{run}-{t:02d}", name=f"{prefix.title()} {t}"
            )
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
                external_id=account_id(t, n),
                username=f"{account_id(t, n)}@bench.test",
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


def copy_database(source: str, target: str, cleanup: _http.Cleanup) -> None:
    """`target` as a copy of `source` (dropped on exit); closes this process's connection."""
    from django.db import connection

    connection.close()  # nobody may be connected to a template database while it is copied
    cleanup.add(f"dropped database {target}", lambda: _http.drop_database(target))
    _http.drop_database(target)
    _http._admin(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    _setup.say(f"database {target}: copied from {source} (seed, grants, RLS)")


def use_database(name: str) -> None:
    """Point this process's Django connection at another bench database."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def load_cases(
    tenants: list, agents: dict[int, tuple], per_tenant: int, *, submitted: bool = False
) -> float:
    """Bulk-insert `per_tenant` cases for each tenant, round-robin, oldest first; seconds.

    With `submitted`, cases past evidence collection carry `submitted_at` (an hour or more
    after they were opened, before they ended), as the approval queue orders by it.
    """
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
            case = RecoveryCase(
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
            if submitted and status != "collecting_evidence":
                case.submitted_at = min(created + timedelta(minutes=60 + i % 60), ended or now)
            batch.append(case)
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
    analyze()
    return time.perf_counter() - started


def explain(role: str, database: str, tenant_id: int, sql: str) -> str:
    """The plan's first nodes and the execution time, as the web role in the tenant's scope."""
    import psycopg

    with psycopg.connect(_http.role_url(role, database)) as conn:
        conn.execute("SELECT set_config('vouchsafe.tenant_ids', %s, true)", [str(tenant_id)])
        lines = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
        conn.rollback()
    nodes = [line.strip().lstrip("-> ").split("  (")[0] for line in lines if "(cost=" in line]
    timing = next((line for line in lines if line.startswith("Execution Time")), "")
    return f"{' > '.join(nodes[:4])}; {timing}"


def report_large_vs_small(
    name: str,
    labels: list[str],
    p95: dict[str, list[float]],
    p50: dict[str, list[float]],
    target: float,
) -> None:
    """Each label's median p95 (and p50) in the large database against the small one, then the
    BENCH line on the label whose large/small ratio is worst."""
    ratios = {}
    for label in labels:
        small, large = (_setup.median(p95[f"{size}|{label}"]) for size in ("small", "large"))
        ratios[label] = (large, small, large / small)
        print(
            f"{label}: p95 {large:.1f} ms large vs {small:.1f} ms small "
            f"(ratio {large / small:.2f}); p50 {_setup.median(p50[f'large|{label}']):.1f} "
            f"vs {_setup.median(p50[f'small|{label}']):.1f} ms"
        )
    worst = max(ratios, key=lambda label: ratios[label][2])
    large, small, ratio = ratios[worst]
    print(f"verdict on the worst: {worst}")
    print(
        f"BENCH {name} p95_ms={large:.1f} baseline={small:.1f} ratio={ratio:.2f} "
        f"target={target} {_setup.verdict(ratio <= target)}"
    )


def serve_small_and_large(
    role: str, small_db: str, large_db: str, *, workers: int, cleanup: _http.Cleanup
) -> dict[str, _http.Server]:
    """A gunicorn per database, as the restricted role; this process's connection is closed
    first so the copies are not held open by the loader."""
    from django.db import connection

    connection.close()
    servers = {
        "small": _http.Server(_http.role_url(role, small_db), workers=workers),
        "large": _http.Server(_http.role_url(role, large_db), workers=workers),
    }
    for label, server in servers.items():
        cleanup.add(f"stopped gunicorn ({label}) on port {server.port}", server.stop)
        server.start()
        _setup.say(f"serving {label}: {server.describe()}")
    return servers

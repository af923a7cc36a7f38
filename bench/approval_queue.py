"""The approval queue: one page of a supervisor's queue with a 30,000-case backlog vs ~400.

Two tenants in one database, made through the services (`tenant_create`, `user_create`,
`membership_create`, `accounts_import`): "small" with `--small` cases pending approval and
"large" with `--large`, bulk-inserted (`bulk_create`, no audit events) with `submitted_at`
spread over the last days, on 100 accounts each, opened by the tenant's 20 agents in turn
(and taken by them); each tenant
also holds as many other cases again in other statuses. A supervisor of each tenant, who
opened none of them, reads the first page of the queue as the console does: the rows of
`approval_queue` (the cases `decidable_by` them, pending, oldest first) through the queue's
`CappedPaginator` (25 rows and the capped count), inside the tenant's row-level-security scope.
Rounds alternate which tenant goes first; the verdict compares the medians.

    python bench/approval_queue.py [--small 400] [--large 30000] [--reads 50] [--rounds 5]

Target: the large backlog's page costs at most 2x the small one's.
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

import _setup

NAME = "approval_queue"
TARGET = 2.0
ACCOUNTS = 100
AGENTS = 20
BATCH = 5_000
OTHER_STATUSES = ("collecting_evidence", "closed", "cancelled", "denied", "ready")
CASE_TYPES = ("password_reset", "mfa_reset", "unlock", "temporary_access")


def make_tenant(operator, label: str, run: str):
    """A tenant with AGENTS agents, a supervisor and ACCOUNTS accounts, through the services."""
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.services import accounts_import
    from tenants.choices import Role
    from tenants.rls import system_scope
    from tenants.services import membership_create, tenant_create, user_create

    with system_scope():
        tenant = tenant_create(actor=operator, slug=f"queue-{label}-{run}", name=f"Queue {label}")
        staff = []
        for n, role in enumerate([Role.SUPERVISOR] + [Role.AGENT] * AGENTS):
            name = f"{role}-{label}-{run}-{n}"
            user = user_create(actor=operator, username=name, password=run * 3)
            membership_create(actor=operator, user=user, role=role, tenant=tenant)
            staff.append(user)
    records = [
        AccountRecord(
            line=n + 1,
            external_id=f"acct-{label}-{n:04d}",
            username=f"acct-{label}-{n:04d}@bench.test",
            display_name=f"Bench account {label}/{n}",
        )
        for n in range(ACCOUNTS)
    ]
    accounts_import(actor=Actor.system("bench"), tenant=tenant, records=records, source="b")
    return tenant, staff[1:], staff[0]


def load(tenant, agents, pending: int) -> None:
    """`pending` cases waiting for approval and as many in other statuses, bulk-inserted."""
    from django.utils import timezone

    from recovery.cases.models import RecoveryCase
    from recovery.models import ProtectedAccount
    from recovery.policy.selectors import policy_active
    from tenants.rls import system_scope

    rng = random.Random(20261207)
    now = timezone.now()
    with system_scope():
        accounts = list(ProtectedAccount.objects.for_tenant(tenant).values_list("pk", flat=True))
        policy = policy_active(tenant)
        batch = []
        for i in range(2 * pending):
            waiting = i % 2 == 0
            tier = rng.choice(("T0", "T0", "T0", "T1"))
            agent = agents[i % len(agents)]
            batch.append(
                RecoveryCase(
                    tenant_id=tenant.pk,
                    account_id=rng.choice(accounts),
                    case_type=rng.choice(CASE_TYPES),
                    channel="phone",
                    status="pending_approval" if waiting else rng.choice(OTHER_STATUSES),
                    tier=tier,
                    route="standard",
                    policy_version=policy.number,
                    policy_source=policy.source,
                    opened_by_id=agent.pk,
                    opened_by_person=agent.person_id,
                    taken_by_id=agent.pk,
                    submitted_at=now - timedelta(minutes=rng.randint(1, 7 * 24 * 60)),
                )
            )
            if len(batch) == BATCH:
                RecoveryCase.objects.bulk_create(batch)
                batch = []
        if batch:
            RecoveryCase.objects.bulk_create(batch)


def read_page(tenant, supervisor, access) -> tuple[int, int]:
    """The queue's first page as the console reads it: its rows and its (capped) count."""
    from recovery.cases.review_selectors import approval_queue
    from recovery.cases.review_views import QUEUE_PAGE_SIZE, CappedPaginator
    from tenants.rls import tenant_scope

    with tenant_scope([tenant.pk]):
        cases = approval_queue(tenant=tenant, actor=supervisor, access=access)
        page = CappedPaginator(cases, QUEUE_PAGE_SIZE).get_page(1)
        rows = [(case.pk, case.account.display_name, case.approvals_given) for case in page]
        return len(rows), page.paginator.count


def time_reads(tenant, supervisor, access, reads: int) -> float:
    """Median milliseconds of `reads` page reads."""
    times = []
    for _ in range(reads):
        began = time.perf_counter()
        read_page(tenant, supervisor, access)
        times.append((time.perf_counter() - began) * 1000)
    return _setup.median(times)


def explain(tenant, supervisor, access) -> str:
    from django.db import connection

    from recovery.cases.review_selectors import approval_queue
    from recovery.cases.review_views import QUEUE_PAGE_SIZE
    from tenants.rls import tenant_scope

    with tenant_scope([tenant.pk]):
        rows = approval_queue(tenant=tenant, actor=supervisor, access=access)[:QUEUE_PAGE_SIZE]
        sql, params = rows.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}", params)
            plan = [line for (line,) in cursor.fetchall()]
    return "\n".join(plan[:12] + plan[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=400, help="pending cases, small tenant")
    parser.add_argument("--large", type=int, default=30_000, help="pending cases, large tenant")
    parser.add_argument("--reads", type=int, default=50, help="page reads per round and tenant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default="vouchsafe_bench_approval_queue")
    args = parser.parse_args()
    _setup.setup_django(args.database)

    from _cases import analyze

    from tenants.access import access_in
    from tenants.models import User
    from tenants.rls import system_scope

    run = uuid.uuid4().hex[:6]
    with system_scope():
        operator = User.objects.create_superuser(username=f"bench-op-{run}", password=run * 3)
    started = time.perf_counter()
    sides = {}
    for label, pending in (("small", args.small), ("large", args.large)):
        tenant, agents, supervisor = make_tenant(operator, label, run)
        load(tenant, agents, pending)
        sides[label] = (tenant, supervisor, access_in(supervisor, tenant))
    analyze()
    _setup.say(
        f"two tenants: {args.small} and {args.large} cases pending approval (and as many "
        f"others each), loaded in {time.perf_counter() - started:.1f} s"
    )
    for label, (tenant, supervisor, access) in sides.items():
        shown, counted = read_page(tenant, supervisor, access)
        _setup.say(f"{label}: first page {shown} rows, count {counted} (capped)")
        _setup.say(f"EXPLAIN {label}:\n{explain(tenant, supervisor, access)}")

    medians: dict[str, list[float]] = {"small": [], "large": []}
    for r in range(args.rounds):
        order = ("small", "large") if r % 2 == 0 else ("large", "small")
        for label in order:
            medians[label].append(time_reads(*sides[label], args.reads))
        _setup.say(
            f"round {r + 1}/{args.rounds}: page {medians['small'][-1]:.2f} ms with "
            f"{args.small} pending, {medians['large'][-1]:.2f} ms with {args.large}"
        )
    small, large = _setup.median(medians["small"]), _setup.median(medians["large"])
    ratio = large / small
    _setup.say(f"median page: {small:.2f} ms ({args.small} pending), {large:.2f} ms ({args.large})")
    _setup.say(
        f"BENCH {NAME} page_ms={large:.2f} baseline={small:.2f} ratio={ratio:.2f} "
        f"target={TARGET} {_setup.verdict(ratio <= TARGET)}"
    )


if __name__ == "__main__":
    main()

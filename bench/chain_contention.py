"""Case opens by 32 concurrent writers in one tenant (one audit chain) vs in 32 tenants.

Every audit event of a tenant is appended under that tenant's chain-head lock, which its
writer holds until it commits, so the writers of one tenant take turns for that stretch. The
measured path runs `--processes` x `--threads` writers (each its own connection and agent)
opening cases through `case_open` in **one** tenant; the baseline runs the same writers, the
same number of opens, each in a tenant of its own (no shared chain head). Both pay the same
CPU, the same connections and the same per-case work; what differs is the wait for the
chain head. Each open uses a fresh account (no repeat, no wait on an account lock). Rounds
alternate the two; medians of each round's p99 (and p50, opens/s) are reported.

    python bench/chain_contention.py [--processes 4] [--threads 8] [--opens 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "chain_contention"
# Our choice: with 32 writers in one tenant, the p99 of a case open stays within twice the
# p99 of the same writers spread over 32 tenants (the chain head is not the bottleneck).
TARGET = 2.0
IMPORT_BATCH = 500


def seed(writers: int):
    """One shared tenant and `writers` own tenants, an agent per writer in each."""
    from tenants.choices import Role
    from tenants.models import User
    from tenants.rls import system_scope
    from tenants.services import membership_create, tenant_create, user_create

    run = uuid.uuid4().hex[:8]

    def tenant(label: str):
        return tenant_create(actor=operator, slug=f"{label}-{run}", name=f"Bench {label} {run}")

    def agent(in_tenant, n: int):
        user = user_create(
            actor=operator, username=f"agent-{n}-{uuid.uuid4().hex[:6]}", password=run * 2
        )
        membership_create(actor=operator, user=user, role=Role.AGENT, tenant=in_tenant)
        return user.pk

    with system_scope():
        operator = User.objects.create_superuser(username=f"bench-op-{run}", password=run * 2)
        shared = tenant("shared")
        shared_agents = [agent(shared, n) for n in range(writers)]
        own = [tenant(f"own{n}") for n in range(writers)]
        own_agents = [agent(t, n) for n, t in enumerate(own)]
    return shared, shared_agents, own, own_agents


def accounts(tenant, count: int) -> list[int]:
    """`count` fresh accounts of `tenant` (no contacts), through `accounts_import`."""
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.models import ProtectedAccount
    from recovery.services import accounts_import
    from tenants.rls import system_scope

    prefix = f"acct-{uuid.uuid4().hex[:8]}-"
    for low in range(0, count, IMPORT_BATCH):
        records = [
            AccountRecord(
                line=n - low + 1,
                external_id=f"{prefix}{n:06d}",
                username=f"{prefix}{n:06d}@bench.test",
                display_name=f"Bench account {n}",
            )
            for n in range(low, min(low + IMPORT_BATCH, count))
        ]
        accounts_import(actor=Actor.system("bench"), tenant=tenant, records=records, source="b")
    with system_scope():
        rows = ProtectedAccount.objects.for_tenant(tenant).filter(external_id__startswith=prefix)
        return list(rows.order_by("external_id").values_list("pk", flat=True))


def writer_process(jobs: list[tuple[int, int, list[int]]], start_at: float, out) -> None:
    """One process: a thread per job (tenant id, agent id, account ids), each opening its
    cases one after the other; puts the latencies (seconds) of every open on `out`."""
    import django

    django.setup()
    from django.db import connection

    from recovery.cases.services import case_open
    from recovery.models import ProtectedAccount
    from tenants.models import Tenant, User
    from tenants.rls import system_scope

    def run(tenant_id: int, agent_id: int, account_ids: list[int], latencies: list[float]):
        with system_scope():
            tenant = Tenant.objects.get(pk=tenant_id)
            agent = User.objects.get(pk=agent_id)
            refs = [ProtectedAccount(pk=pk, tenant=tenant) for pk in account_ids]
        time.sleep(max(0.0, start_at - time.time()))
        for account in refs:
            began = time.perf_counter()
            with system_scope():
                case_open(actor=agent, account=account, case_type="unlock", channel="phone")
            latencies.append(time.perf_counter() - began)
        connection.close()

    results: list[list[float]] = [[] for _ in jobs]
    threads = [threading.Thread(target=run, args=(*job, results[n])) for n, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put([latency for latencies in results for latency in latencies])


def one_round(jobs: list[tuple[int, int, list[int]]], processes: int) -> tuple[float, ...]:
    """Run the jobs spread over `processes`; (p50 ms, p99 ms, opens/s) of all the opens."""
    from django.db import connections

    connections.close_all()  # nothing open is inherited by the forked writers
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start_at = time.time() + 3.0  # every writer set up (django, rows) before the first open
    workers = [
        context.Process(target=writer_process, args=(jobs[p::processes], start_at, out))
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    latencies = [x for _ in workers for x in out.get()]
    finished = time.time()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a writer process failed (exit {worker.exitcode})")
    if len(latencies) != sum(len(job[2]) for job in jobs):
        raise SystemExit("a writer thread failed: fewer opens than planned")
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99, len(latencies) / (finished - start_at)


def check_chains(tenants) -> None:
    from audit.verify import verify_chain
    from tenants.rls import system_scope

    with system_scope():
        for tenant in tenants:
            report = verify_chain(tenant.pk, tenant.slug)
            if not report.intact:
                raise SystemExit(f"chain of {tenant.slug} does not verify: {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8, help="writers per process")
    parser.add_argument("--opens", type=int, default=40, help="case opens per writer and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=f"vouchsafe_bench_{NAME}")
    args = parser.parse_args()
    writers = args.processes * args.threads

    _setup.setup_django(args.database)
    shared, shared_agents, own, own_agents = seed(writers)
    started = time.perf_counter()
    pools = {
        "one tenant": accounts(shared, writers * args.opens * args.rounds),
        "own tenants": [accounts(t, args.opens * args.rounds) for t in own],
    }
    _setup.say(
        f"seeded {writers} writers' agents and accounts in {time.perf_counter() - started:.1f} s"
    )
    figures: dict[str, list[tuple[float, ...]]] = {"one tenant": [], "own tenants": []}
    for r in range(args.rounds):
        for path in ("one tenant", "own tenants") if r % 2 == 0 else ("own tenants", "one tenant"):
            if path == "one tenant":
                chunk = pools[path][r * writers * args.opens : (r + 1) * writers * args.opens]
                jobs = [
                    (shared.pk, shared_agents[n], chunk[n * args.opens : (n + 1) * args.opens])
                    for n in range(writers)
                ]
            else:
                jobs = [
                    (t.pk, own_agents[n], pools[path][n][r * args.opens : (r + 1) * args.opens])
                    for n, t in enumerate(own)
                ]
            figures[path].append(one_round(jobs, args.processes))
        one, spread = figures["one tenant"][-1], figures["own tenants"][-1]
        _setup.say(
            f"round {r + 1}/{args.rounds}: one tenant p50 {one[0]:.1f} ms, p99 {one[1]:.1f} ms, "
            f"{one[2]:.0f} opens/s; {writers} tenants p50 {spread[0]:.1f} ms, "
            f"p99 {spread[1]:.1f} ms, {spread[2]:.0f} opens/s"
        )
    check_chains([shared, *own])
    _setup.say(f"chains of the {writers + 1} tenants verify")

    def med(path: str, i: int) -> float:
        return _setup.median([f[i] for f in figures[path]])

    p99, baseline = med("one tenant", 1), med("own tenants", 1)
    print(
        f"{writers} writers ({args.processes} processes x {args.threads} threads), "
        f"{args.opens} opens each per round, {args.rounds} rounds"
    )
    print(
        f"one tenant: p50 {med('one tenant', 0):.1f} ms, p99 {p99:.1f} ms, "
        f"{med('one tenant', 2):.0f} opens/s; {writers} tenants: p50 "
        f"{med('own tenants', 0):.1f} ms, p99 {baseline:.1f} ms, "
        f"{med('own tenants', 2):.0f} opens/s"
    )
    ratio = p99 / baseline
    print(
        f"BENCH {NAME} p99_ms={p99:.1f} baseline={baseline:.1f} ratio={ratio:.2f} "
        f"target={TARGET} {_setup.verdict(ratio <= TARGET)}"
    )


if __name__ == "__main__":
    main()

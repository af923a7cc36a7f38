"""Opening a case with every detection rule evaluated vs with none, same run (issue 16).

The tenant already holds `--history` recent cases on other accounts, each with a caller number
and a name, and a watch-list. Each timed case opens on a fresh account with a caller number and
a name, through `case_open` (the real service, audited, inside a request memo as a request
makes it), so every rule reads its facts and none fires. The baseline opens the same kind of case
with `findings_at_open` replaced by "no findings": everything else, including the caller
identifiers written, is the same. Rounds alternate which goes first; medians of cases/s.

    python bench/detection.py [--cases 300] [--rounds 5] [--history 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "detection_case_open"
TARGET = 1 / 1.25  # rules on cost at most 1.25x rules off: rate ratio >= 0.8


def accounts(tenant, count: int) -> list:
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.models import ProtectedAccount
    from recovery.services import accounts_import

    ids = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    records = [
        AccountRecord(line=n, external_id=i, username=f"{i}@x.test", display_name=i)
        for n, i in enumerate(ids, 1)
    ]
    accounts_import(actor=Actor.system("bench"), tenant=tenant, records=records, source="bench")
    return list(ProtectedAccount.objects.filter(tenant=tenant, external_id__in=ids))


def history(tenant, agent, count: int) -> None:
    """`count` recent cases on other accounts with caller identifiers, and 50 watched callers,
    written directly (the rules read them; how they were made does not matter)."""
    from django.utils import timezone

    from recovery.cases.models import RecoveryCase
    from recovery.detection.identifiers import caller_value
    from recovery.detection.models import CallerIdentifier, WatchedCaller

    template_account = accounts(tenant, 1)[0]
    now = timezone.now()
    cases = RecoveryCase.objects.bulk_create(
        RecoveryCase(
            tenant=tenant,
            account=template_account,
            case_type="password_reset",
            channel="phone",
            tier="T0",
            route="standard",
            policy_version=0,
            policy_source="platform",
            opened_by=agent,
            opened_by_person=agent.person_id,
            taken_by=agent,
            taken_at=now,
        )
        for _ in range(count)
    )
    identifiers = []
    for n, case in enumerate(cases):
        for kind, raw in (("number", f"+1555{n:07d}"), ("name", f"Caller {n}")):
            value = caller_value(kind, raw)
            identifiers.append(
                CallerIdentifier(
                    tenant=tenant, case=case, kind=kind, digest=value.digest, hint=value.hint
                )
            )
    CallerIdentifier.objects.bulk_create(identifiers, batch_size=5000)
    WatchedCaller.objects.bulk_create(
        WatchedCaller(
            tenant=tenant,
            kind="number",
            digest=caller_value("number", f"+1666{n:07d}").digest,
            hint="•••",
            reason="bench",
            flagged_by=agent,
            flagged_at=now,
            case=cases[n],
        )
        for n in range(50)
    )


def unique_name() -> str:
    return f"Caller {uuid.uuid4().hex[:12]}"


def open_cases(tenant, agent, fresh: list, *, rules: bool) -> float:
    """Cases per second opening one case on each of `fresh`, rules on or off."""
    from recovery.cases.services import case_open
    from tenants.memo import request_memo

    rules_off = mock.patch("recovery.cases.services.opening.findings_at_open", lambda **_: [])
    began = time.perf_counter()
    with nullcontext() if rules else rules_off:
        for account in fresh:
            with request_memo():
                case = case_open(
                    actor=agent,
                    account=account,
                    case_type="password_reset",
                    channel="phone",
                    caller={"number": f"+1{uuid.uuid4().int % 10**12:012d}", "name": unique_name()},
                )
            if case.route != "standard":
                raise SystemExit(f"a rule fired on bench case {case.pk}: {case.route}")
    return len(fresh) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="cases per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--database", default="vouchsafe_bench_detection")
    args = parser.parse_args()

    _setup.setup_django(args.database)
    from tenants.models import User
    from tenants.rls import system_scope
    from tenants.services import membership_create, user_create

    with system_scope():
        operator = User.objects.create_superuser(username="bench-op", password=uuid.uuid4().hex)
        tenant = _setup.make_tenant("detection")
        agent = user_create(actor=operator, username="bench-agent", password=uuid.uuid4().hex)
        membership_create(actor=operator, user=agent, role="agent", tenant=tenant)
        _setup.say(f"history: {args.history} earlier cases with caller identifiers")
        history(tenant, agent, args.history)
        needed = args.cases * 2 * args.rounds + 20
        fresh = accounts(tenant, needed)
    open_cases(tenant, agent, fresh[:10], rules=True)  # warm-up
    open_cases(tenant, agent, fresh[10:20], rules=False)
    fresh = fresh[20:]
    on_rates: list[float] = []
    off_rates: list[float] = []
    for r in range(args.rounds):
        for rules in (True, False) if r % 2 == 0 else (False, True):
            batch, fresh = fresh[: args.cases], fresh[args.cases :]
            (on_rates if rules else off_rates).append(open_cases(tenant, agent, batch, rules=rules))
        _setup.say(
            f"round {r + 1}/{args.rounds}: rules on {on_rates[-1]:6.1f} cases/s, "
            f"off {off_rates[-1]:6.1f} cases/s, ratio {on_rates[-1] / off_rates[-1]:.2f}"
        )
    on, off = _setup.median(on_rates), _setup.median(off_rates)
    ratio = on / off
    _setup.say(
        f"median over {args.rounds} rounds of {args.cases} cases: on {on:.1f}/s, off {off:.1f}/s "
        f"(rules on cost {off / on:.2f}x)"
    )
    print(
        f"BENCH {NAME} cases_per_s={on:.1f} baseline={off:.1f} ratio={ratio:.2f} "
        f"target={TARGET:.2f} {_setup.verdict(ratio >= TARGET)}"
    )


if __name__ == "__main__":
    main()

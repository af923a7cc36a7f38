"""Complete recovery lifecycles per second vs single-row inserts of one table, same run.

One lifecycle: open a case on a T2 account; collect two signals through their verifiers (S2: a
code emailed to the owner's registered address, read back from the outbox and checked; S3: the
manager's attestation, requested by email and confirmed from the manager's own session); submit;
two approvals by two security officers, each with a fresh passkey step-up over the case's
snapshot (the T2 floor; a soft authenticator signs the options the service issued); the
cooling-off released; ready — every step through the real services, each audited in its own
transaction and run as one request is (inside its request memo). Only the wait itself is
skipped: the T2 cooling-off (24 h) is moved to now, untimed, before the timed release. The
baseline inserts one row (a spent step-up record) per transaction. Rounds alternate; medians
are reported. Owner notices are planned by workers from the committed chain, outside this time.

    python bench/case_lifecycle.py [--cases 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "case_lifecycle"
# Our choice: a lifecycle is ~200 statements in 11 transactions (open, send, verify, request,
# confirm, submit, two step-ups, two approvals, release); it should cost no more than 100
# single-row inserts.
TARGET = 0.01
# Approvers change shift every few cases: the per-approver hourly cap and the velocity alert
# exist to stop one person clearing a queue, which is all a benchmark would do.
APPROVER_SHIFT = 8


# Each staff user's soft passkey (enrolled untimed through the services, as tests do).
PASSKEYS: dict[int, object] = {}


def staff(tenant, role: str, operator):
    from tenants.services import membership_create, user_create
    from tests.staffkey import staff_passkey_enrol

    user = user_create(
        actor=operator, username=f"{role}-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex
    )
    membership_create(actor=operator, user=user, role=role, tenant=tenant)
    PASSKEYS[user.pk] = staff_passkey_enrol(user)
    return user


def last_message_matching(pattern: str) -> str:
    """What the owner (or the manager) reads: the newest message in the local outbox."""
    from django.core import mail

    match = re.search(pattern, mail.outbox[-1].body)
    if match is None:
        raise SystemExit(f"no {pattern!r} in the last message sent")
    return match.group(1)


def manager_account(tenant, operator):
    """The subjects' manager: an account of the tenant whose person signs in to attest."""
    from audit.context import Actor
    from recovery.imports import AccountRecord
    from recovery.services import accounts_import
    from tenants.services import user_create

    person = uuid.uuid4()
    user = user_create(
        actor=operator,
        username=f"manager-{uuid.uuid4().hex[:8]}",
        password=uuid.uuid4().hex,
        person_id=str(person),
    )
    external_id = f"mgr-{uuid.uuid4().hex[:8]}"
    record = AccountRecord(
        line=1,
        external_id=external_id,
        username=f"{external_id}@x.test",
        display_name=external_id,
        person_id=person,
    )
    accounts_import(actor=Actor.system("bench"), tenant=tenant, records=[record], source="b")
    return user, external_id


def as_request(service, **arguments):
    """One service call as a request makes it: inside that request's memo (`tenants.memo`, what
    the API's dispatch and the console's tenant views open), so facts read once per request
    are read once here too."""
    from tenants.memo import request_memo

    with request_memo():
        return service(**arguments)


def lifecycle(tenant, people, n: int) -> float:
    """Seconds spent in the services for one complete lifecycle (set-up excluded)."""
    from django.utils import timezone

    from audit.context import Actor
    from recovery.cases.models import RecoveryCase
    from recovery.cases.services import (
        approval_decide,
        case_open,
        case_release_cooled,
        case_step_up_verify,
        case_submit,
        step_up_options,
    )
    from recovery.challenges.services import (
        attestation_confirm,
        attestation_request,
        challenge_send,
        challenge_verify,
    )
    from recovery.imports import AccountRecord, ContactRecord
    from recovery.models import ProtectedAccount
    from recovery.services import accounts_import

    external_id = f"adm-{n}-{uuid.uuid4().hex[:6]}"
    held_since = timezone.now() - timedelta(days=400)  # long past any quarantine
    record = AccountRecord(
        line=1,
        external_id=external_id,
        username=f"{external_id}@x.test",
        display_name=external_id,
        admin_roles=("Global Administrator",),
        manager_external_id=people["manager_external_id"],
        contacts=(
            ContactRecord(kind="email", value=f"{external_id}@home.test", registered_at=held_since),
            ContactRecord(kind="manager", value="boss@x.test", registered_at=held_since),
        ),
    )
    accounts_import(actor=Actor.system("bench"), tenant=tenant, records=[record], source="b")
    account = ProtectedAccount.objects.for_tenant(tenant).get(external_id=external_id)
    mailbox = account.contact_methods.get(kind="email")
    collector = people["collector"]

    started = time.perf_counter()
    case = as_request(
        case_open, actor=collector, account=account, case_type="mfa_reset", channel="phone"
    )
    challenge = as_request(challenge_send, actor=collector, case=case, contact_method=mailbox)
    code = last_message_matching(r"code(?: is|:) (\d[\d ]{5,})").replace(" ", "")
    as_request(challenge_verify, actor=collector, case=case, challenge=challenge, code=code)
    as_request(attestation_request, actor=collector, case=case)
    as_request(
        attestation_confirm,
        actor=people["manager"],
        token=last_message_matching(r"/attest/([A-Za-z0-9_-]+)/"),
    )
    as_request(case_submit, actor=collector, case=case)
    for who in ("approver1", "approver2"):
        options = as_request(step_up_options, actor=people[who], case=case, action="approve")
        proof = as_request(
            case_step_up_verify,
            actor=people[who],
            case=case,
            action="approve",
            credential_json=PASSKEYS[people[who].pk].get(options),
        )
        as_request(
            approval_decide,
            actor=people[who],
            case=case,
            decision="approved",
            reason="bench",
            step_up=proof,
        )
    elapsed = time.perf_counter() - started
    # The T2 wait itself is not measured: move its end to now, then time the release.
    RecoveryCase.objects.filter(pk=case.pk, status="cooling_off").update(
        cooling_off_until=timezone.now()
    )
    started = time.perf_counter()
    case = as_request(case_release_cooled, case=case)
    elapsed += time.perf_counter() - started
    if case.status != "ready":
        raise SystemExit(f"lifecycle {n} ended in {case.status}, not ready")
    if case.evidence.filter(result="accepted").count() != 2:
        raise SystemExit(f"lifecycle {n} did not have its two verified signals")
    return elapsed


def inserts(count: int, user) -> float:
    from django.db import transaction

    from tenants.models import StepUpUse

    started = time.perf_counter()
    for _ in range(count):
        with transaction.atomic():
            StepUpUse.objects.create(nonce=uuid.uuid4().hex, user=user)
    return count / (time.perf_counter() - started)


def approvers_shift(tenant, people, operator, n: int) -> None:
    """Fresh approvers every APPROVER_SHIFT lifecycles, untimed (see APPROVER_SHIFT)."""
    from tenants.rls import system_scope

    if n % APPROVER_SHIFT == 0:
        with system_scope():
            people["approver1"] = staff(tenant, "security_officer", operator)
            people["approver2"] = staff(tenant, "security_officer", operator)


def profile_lifecycles(tenant, people, operator, count: int) -> None:
    """cProfile and SQL statements of `count` lifecycles (set-up included, then subtracted by
    reading: it is the untimed part of `lifecycle`)."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lifecycle(tenant, people, 0)  # warm per-process caches
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        for n in range(1, count + 1):
            profiler.disable()
            approvers_shift(tenant, people, operator, n)
            profiler.enable()
            lifecycle(tenant, people, n)
        profiler.disable()
    _setup.say(
        f"SQL statements per lifecycle (with its untimed set-up): {len(queries) / count:.0f}"
    )
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(r"(/(recovery|audit|integrations|tenants|api)/|auditlog/receivers).*py", 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="lifecycles per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile N lifecycles, then exit"
    )
    parser.add_argument("--database", default="vouchsafe_bench_case_lifecycle")
    args = parser.parse_args()

    _setup.setup_django(args.database)
    from tenants.models import User
    from tenants.rls import system_scope

    with system_scope():
        operator = User.objects.create_superuser(username="bench-op", password=uuid.uuid4().hex)
        tenant = _setup.make_tenant("lifecycle")
        manager, manager_external_id = manager_account(tenant, operator)
        people = {
            "collector": staff(tenant, "security_officer", operator),
            "approver1": staff(tenant, "security_officer", operator),
            "approver2": staff(tenant, "security_officer", operator),
            "manager": manager,
            "manager_external_id": manager_external_id,
        }
    if args.profile:
        profile_lifecycles(tenant, people, operator, args.profile)
        return
    lifecycle_rates, insert_rates, n = [], [], 0
    for r in range(args.rounds):
        for path in ("lifecycles", "inserts") if r % 2 == 0 else ("inserts", "lifecycles"):
            if path == "inserts":
                insert_rates.append(inserts(args.cases * 20, operator))
                continue
            spent = 0.0
            for _ in range(args.cases):
                n += 1
                approvers_shift(tenant, people, operator, n)
                spent += lifecycle(tenant, people, n)
            lifecycle_rates.append(args.cases / spent)
        _setup.say(
            f"round {r + 1}/{args.rounds}: {lifecycle_rates[-1]:.1f} lifecycles/s, "
            f"{insert_rates[-1]:.0f} single-row inserts/s"
        )
    rate, baseline = _setup.median(lifecycle_rates), _setup.median(insert_rates)
    ratio = rate / baseline
    print(
        f"BENCH {NAME} lifecycles_per_s={rate:.1f} baseline={baseline:.0f} "
        f"ratio={ratio:.4f} target={TARGET} {_setup.verdict(ratio >= TARGET)}"
    )


if __name__ == "__main__":
    main()

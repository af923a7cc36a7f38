"""Complete recovery lifecycles per second vs single-row inserts of one table, same run.

One lifecycle: open a case on a T2 account, record two evidence signals (S2 to a registered
mobile, S5), submit, two approvals with fresh TOTP step-ups by two security officers, ready —
every step through the real services, each audited in its own transaction. The baseline inserts
one row (a spent step-up record) per transaction. Rounds alternate; medians are reported.

    python bench/case_lifecycle.py [--cases 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

NAME = "case_lifecycle"
# Our choice: a lifecycle is ~100 statements in 8 transactions; it should cost no more than
# 100 single-row inserts.
TARGET = 0.01
# Approvers change shift every few cases: the per-approver hourly cap and the velocity alert
# exist to stop one person clearing a queue, which is all a benchmark would do.
APPROVER_SHIFT = 8


def staff(tenant, role: str, operator):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tenants.services import membership_create, user_create

    user = user_create(
        actor=operator, username=f"{role}-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex
    )
    TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    membership_create(actor=operator, user=user, role=role, tenant=tenant)
    return user


def token_now(user) -> str:
    """A TOTP code the device accepts now (the bench lets each device reuse its window)."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user).update(last_t=-1)
    device = TOTPDevice.objects.get(user=user)
    return f"{totp(device.bin_key):06d}"


def lifecycle(tenant, people, n: int) -> float:
    """Seconds spent in the services for one complete lifecycle (set-up excluded)."""
    from django.utils import timezone

    from audit.context import Actor
    from recovery.cases.services import approval_decide, case_open, case_submit, evidence_record
    from recovery.imports import AccountRecord
    from recovery.models import ContactMethod
    from recovery.services import accounts_import
    from tenants.stepup import step_up_verify

    external_id = f"adm-{n}-{uuid.uuid4().hex[:6]}"
    record = AccountRecord(
        line=1,
        external_id=external_id,
        username=f"{external_id}@x.test",
        display_name=external_id,
        admin_roles=("Global Administrator",),
    )
    accounts_import(actor=Actor.system("bench"), tenant=tenant, records=[record], source="b")
    mobile = ContactMethod.objects.create(
        tenant=tenant,
        account_id=tenant_account_id(tenant, external_id),
        kind="mobile",
        value="+15550000001",
        source="hris",
        registered_at=timezone.now() - timedelta(days=400),
    )
    tokens = [token_now(people["approver1"]), token_now(people["approver2"])]
    account = mobile.account

    started = time.perf_counter()
    case = case_open(
        actor=people["collector"], account=account, case_type="mfa_reset", channel="phone"
    )
    evidence_record(
        actor=people["collector"],
        case=case,
        signal_class="S2",
        method="sms_code",
        verified=True,
        contact_method=mobile,
    )
    evidence_record(
        actor=people["collector"], case=case, signal_class="S5", method="push", verified=True
    )
    case_submit(actor=people["collector"], case=case)
    for who, token in zip(("approver1", "approver2"), tokens, strict=True):
        proof = step_up_verify(user=people[who], token=token)
        approval_decide(
            actor=people[who], case=case, decision="approved", reason="bench", step_up=proof
        )
    elapsed = time.perf_counter() - started
    case.refresh_from_db()
    if case.status != "ready":
        raise SystemExit(f"lifecycle {n} ended in {case.status}, not ready")
    return elapsed


def tenant_account_id(tenant, external_id: str) -> int:
    from recovery.models import ProtectedAccount

    return ProtectedAccount.objects.for_tenant(tenant).get(external_id=external_id).pk


def inserts(count: int, user) -> float:
    from django.db import transaction

    from tenants.models import StepUpUse

    started = time.perf_counter()
    for _ in range(count):
        with transaction.atomic():
            StepUpUse.objects.create(nonce=uuid.uuid4().hex, user=user)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="lifecycles per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="vouchsafe_bench_case_lifecycle")
    args = parser.parse_args()

    _setup.setup_django(args.database)
    from tenants.models import User
    from tenants.rls import system_scope

    with system_scope():
        operator = User.objects.create_superuser(username="bench-op", password=uuid.uuid4().hex)
        tenant = _setup.make_tenant("lifecycle")
        people = {
            "collector": staff(tenant, "security_officer", operator),
            "approver1": staff(tenant, "security_officer", operator),
            "approver2": staff(tenant, "security_officer", operator),
        }
    lifecycle_rates, insert_rates, n = [], [], 0
    for r in range(args.rounds):
        for path in ("lifecycles", "inserts") if r % 2 == 0 else ("inserts", "lifecycles"):
            if path == "inserts":
                insert_rates.append(inserts(args.cases * 20, operator))
                continue
            spent = 0.0
            for _ in range(args.cases):
                n += 1
                if n % APPROVER_SHIFT == 0:  # fresh approvers, untimed: see APPROVER_SHIFT
                    with system_scope():
                        people["approver1"] = staff(tenant, "security_officer", operator)
                        people["approver2"] = staff(tenant, "security_officer", operator)
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

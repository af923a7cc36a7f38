"""Property: no accepted S1 or S5 evidence exists without its verifier record.

Hypothesis drives an agent and a caller through any sequence of what they can do with saved
codes and in-app confirmations (right, wrong, used codes; right, wrong and mistyped numbers; a good
passkey, an unenrolled one, a clone, a wrong origin, a replayed assertion; "not me"). After
every step: each accepted `recovery_code` row is pointed at by a matched `RecoveryCodeCheck`
of its case whose code is used up for that case, and each accepted `passkey` row by a
confirmed `OwnerConfirmation` of its case holding the passkey and the assertion's hash; and
the other way round, no verifier record claims evidence that is not there.
"""

from __future__ import annotations

from contextlib import suppress

import pytest
from django.core import mail
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recovery.cases.choices import EvidenceResult, Verifier
from recovery.cases.models import Evidence, RecoveryCase
from recovery.owner.choices import ConfirmationStatus
from recovery.owner.confirmation import (
    confirmation_assert,
    confirmation_match,
    confirmation_repudiate,
    confirmation_request,
)
from recovery.owner.models import OwnerConfirmation, OwnerPasskey, RecoveryCodeCheck
from recovery.owner.signals import recovery_code_check
from tenants.exceptions import DomainError

from ..factories import make_tenant
from .case_owner import confirm_token, enrolled_owner, open_case, origin
from .softkey import SoftKey

STEPS = (
    "code_right",
    "code_again",
    "code_wrong",
    "ask",
    "number_wrong",
    "number_malformed",
    "assert_good",
    "assert_stranger",
    "assert_clone",
    "assert_origin",
    "assert_replay",
    "not_me",
)


def holds(case: RecoveryCase) -> None:
    accepted = Evidence.objects.filter(
        case=case, result=EvidenceResult.ACCEPTED, method__in=("recovery_code", "passkey")
    )
    for row in accepted:
        assert row.verifier == Verifier.OWNER_PORTAL, row
        if row.method == "recovery_code":
            check = RecoveryCodeCheck.objects.select_related("code").get(pk=row.verifier_ref)
            assert check.case_id == case.pk and check.matched and check.evidence_id == row.pk
            assert check.code is not None and check.code.used_for_id == case.pk
        else:
            confirmation = OwnerConfirmation.objects.get(pk=row.verifier_ref)
            assert confirmation.case_id == case.pk and confirmation.evidence_id == row.pk
            assert confirmation.status == ConfirmationStatus.CONFIRMED
            assert confirmation.passkey_id and len(confirmation.assertion_hash) == 64
    for check in RecoveryCodeCheck.objects.filter(case=case):
        assert check.matched == (check.evidence_id is not None)
    for confirmation in OwnerConfirmation.objects.filter(case=case):
        confirmed = confirmation.status == ConfirmationStatus.CONFIRMED
        assert confirmed == (confirmation.evidence_id is not None)


class World:
    def __init__(self, tenant) -> None:
        self.owner = enrolled_owner(tenant, passkeys=1)
        self.agent, self.case = open_case(self.owner)
        self.codes = list(self.owner.codes)
        self.used: list[str] = []
        self.token = ""
        self.number = ""
        self.last_credential = ""

    def run(self, step: str) -> None:
        case = RecoveryCase.objects.get(pk=self.case.pk)
        if step == "code_right" and self.codes:
            code = self.codes.pop()
            self.used.append(code)
            recovery_code_check(actor=self.agent, case=case, code=code)
        elif step == "code_again" and self.used:
            recovery_code_check(actor=self.agent, case=case, code=self.used[-1])
        elif step == "code_wrong":
            recovery_code_check(actor=self.agent, case=case, code="ZZZZ-ZZZZ-ZZZZZ")
        elif step == "ask":
            mail.outbox.clear()
            confirmation = confirmation_request(actor=self.agent, case=case)
            self.number = confirmation.number
            self.token = confirm_token(
                next(m.body for m in mail.outbox if "/owner/confirm/" in m.body)
            )
        elif step == "number_wrong" and self.token:
            wrong = f"{(int(self.number) + 1) % 100:02d}"
            confirmation_match(token=self.token, number=wrong)
        elif step == "number_malformed" and self.token:
            confirmation_match(token=self.token, number=self.number[:1])
        elif step.startswith("assert_") and self.token:
            self._assert(step)
        elif step == "not_me" and self.token:
            confirmation_repudiate(token=self.token)

    def _assert(self, step: str) -> None:
        key = self.owner.keys[0]
        if step == "assert_replay":
            credential = self.last_credential
        else:
            matched = confirmation_match(token=self.token, number=self.number)
            options = matched.options_json
            if step == "assert_stranger":
                credential = SoftKey(origin=origin(), rp_id=key.rp_id).get(options)
            elif step == "assert_clone":
                stored = OwnerPasskey.objects.get(pk=self.owner.passkeys[0].pk).sign_count
                credential = key.get(options, sign_count=max(stored - 1, 0))
            elif step == "assert_origin":
                credential = key.get(options, origin="https://elsewhere.example")
            else:
                credential = key.get(options)
        self.last_credential = credential or self.last_credential
        confirmation_assert(token=self.token, number=self.number, credential_json=credential)


@pytest.mark.django_db
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=10))
# Besides what Hypothesis draws, the sequences that reach every verifier path at least once.
@example(steps=["code_right", "code_again", "code_wrong", "code_right"])
@example(steps=["ask", "number_wrong", "assert_good", "assert_replay", "ask", "assert_replay"])
@example(steps=["ask", "number_malformed", "number_wrong", "number_wrong", "assert_good"])
@example(steps=["ask", "assert_good", "ask", "assert_clone", "ask", "assert_good"])
@example(steps=["ask", "assert_stranger", "assert_origin", "assert_good", "code_right"])
@example(steps=["code_right", "ask", "not_me", "assert_good", "code_right"])
def test_no_accepted_s1_or_s5_exists_without_its_verifier_record(steps):
    with transaction.atomic():
        world = World(make_tenant())
        for step in steps:
            # No savepoint of our own around a step: what a refused call commits before it
            # raises (its records, and anything a bug slipped in with them) must stay.
            with suppress(DomainError):
                world.run(step)
            holds(world.case)
        transaction.set_rollback(True)

"""An audit outage buys no extra guesses (R-44, issue 15 part 8): a wrong code read back, a
wrong saved recovery code and a wrong number on the owner's confirmation are counted, and lock
at the limit, even when their audit events cannot be written; the attempt is then refused with
`audit.attempt_not_recorded` (503 over the API), and the right answer is no use once locked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.core import mail

from audit.models import AuditEvent
from audit.signals import event_recorded
from recovery.cases.models import Evidence
from recovery.challenges.choices import ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import challenge_send, challenge_verify
from recovery.owner.choices import ConfirmationStatus
from recovery.owner.confirmation import confirmation_match, confirmation_request
from recovery.owner.models import OwnerConfirmation, RecoveryCodeCheck
from recovery.owner.signals import recovery_code_check
from tenants.exceptions import DomainError

from ..api.conftest import api, key_client
from ..owner.case_owner import confirm_token, enrolled_owner
from ..owner.case_owner import open_case as open_owner_case
from .challenges.helpers import code_in, last_email, open_case

pytestmark = pytest.mark.django_db

CODE = "audit.attempt_not_recorded"


class AuditDown(Exception):
    """What the audit store raises during the outage."""


@pytest.fixture
def outage() -> Iterator[set[str]]:
    """The actions whose recording fails (add them to the set: from then on, they fail)."""
    failing: set[str] = set()

    def receiver(sender, event, **kwargs) -> None:
        if event.action in failing:
            raise AuditDown(f"audit store unavailable for {event.action}")

    event_recorded.connect(receiver, weak=False)
    yield failing
    event_recorded.disconnect(receiver)


def refused(attempt: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as refusal:
        attempt()
    return refusal.value


def recorded(tenant, action: str) -> int:
    return AuditEvent.objects.filter(tenant=tenant, action=action).count()


def test_wrong_codes_read_back_count_and_disable_the_challenge_while_unrecorded(acme, outage):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    code = code_in(last_email().body)
    wrong = code[:-1] + ("1" if code[-1] == "0" else "0")
    outage.update(["verification.challenge_failed", "verification.challenge_disabled"])

    def guess(typed: str) -> str:
        return refused(
            lambda: challenge_verify(actor=s.agent, case=s.case, challenge=challenge, code=typed)
        ).code

    assert [guess(wrong) for _ in range(5)] == [CODE] * 5
    row = VerificationChallenge.objects.get(pk=challenge.pk)
    assert (row.attempts, row.status) == (5, ChallengeStatus.DISABLED)
    assert recorded(acme, "verification.challenge_failed") == 0
    outage.clear()  # the trail is back: the lock holds
    assert guess(code) == "challenge.locked"
    assert not Evidence.objects.filter(case=s.case).exists()


def test_wrong_saved_codes_count_and_lock_while_unrecorded(acme, outage):
    owner = enrolled_owner(acme)
    agent, case = open_owner_case(owner)
    outage.update(["owner.code_refused", "owner.codes_locked"])

    def check(typed: str) -> str:
        return refused(lambda: recovery_code_check(actor=agent, case=case, code=typed)).code

    assert [check("ZZZZ-ZZZZ-ZZZZZ") for _ in range(5)] == [CODE] * 5
    assert RecoveryCodeCheck.objects.filter(case=case, matched=False).count() == 5
    assert recorded(acme, "owner.codes_locked") == 0
    outage.clear()  # the trail is back: the lock holds
    assert check(owner.codes[0]) == "recovery_code.locked"
    assert not Evidence.objects.filter(case=case).exists()


def test_wrong_numbers_count_and_fail_the_confirmation_while_unrecorded(acme, outage):
    owner = enrolled_owner(acme, codes=False, passkeys=1)
    agent, case = open_owner_case(owner)
    mail.outbox.clear()
    confirmation = confirmation_request(actor=agent, case=case)
    (message,) = [m for m in mail.outbox if "/owner/confirm/" in m.body]
    token = confirm_token(message.body)
    outage.update(["owner.confirmation_failed"])

    for step in (1, 2):
        number = f"{(int(confirmation.number) + step) % 100:02d}"
        assert refused(lambda n=number: confirmation_match(token=token, number=n)).code == CODE
    row = OwnerConfirmation.objects.get(pk=confirmation.pk)
    assert (row.attempts, row.status) == (2, ConfirmationStatus.FAILED)
    assert recorded(acme, "owner.confirmation_failed") == 0
    outage.clear()
    refusal = refused(lambda: confirmation_match(token=token, number=confirmation.number))
    assert refusal.code != CODE  # failed for good: the right number opens nothing


def test_the_api_answers_503_with_the_code(acme, outage):
    s = open_case(acme)
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    outage.update(["verification.challenge_failed"])
    url = api(acme, f"cases/{s.case.pk}/challenges/{challenge.pk}/verify/")
    response = key_client(acme).post(url, {"code": "00000000"}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == CODE
    assert VerificationChallenge.objects.get(pk=challenge.pk).attempts == 1

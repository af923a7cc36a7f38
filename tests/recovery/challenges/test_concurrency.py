"""Two agents typing the same code at the same moment: exactly one success (R-30)."""

from __future__ import annotations

import threading

from django.core import mail
from django.db import connection

from audit.models import AuditEvent
from audit.verify import verify_chain
from recovery.cases.models import Evidence
from recovery.challenges.choices import ChallengeStatus
from recovery.challenges.models import VerificationChallenge
from recovery.challenges.services import challenge_send, challenge_verify
from tenants.choices import Role
from tenants.exceptions import DomainError

from ...factories import make_tenant, staff
from .helpers import code_in, open_case


def race(case, challenge, code, agents):
    start, outcomes = threading.Barrier(len(agents)), []

    def verify(agent):
        try:
            start.wait()
            challenge_verify(actor=agent, case=case, challenge=challenge, code=code)
            outcomes.append("verified")
        except DomainError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=verify, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_the_same_code_verified_twice_at_once_succeeds_exactly_once(committed):
    tenant = make_tenant()
    s = open_case(tenant)
    mail.outbox = []
    challenge = challenge_send(actor=s.agent, case=s.case, contact_method=s.email)
    code = code_in(mail.outbox[-1].body)
    agents = [s.agent, staff(Role.AGENT, tenant=tenant), staff(Role.SUPERVISOR, tenant=tenant)]

    outcomes = race(s.case, challenge, code, agents)

    assert outcomes == ["challenge.code_invalid", "challenge.code_invalid", "verified"]
    assert VerificationChallenge.objects.get(pk=challenge.pk).status == ChallengeStatus.VERIFIED
    assert Evidence.objects.filter(case=s.case).count() == 1
    reuse = AuditEvent.objects.filter(tenant=tenant, action="token.reuse_attempt")
    assert reuse.count() == 2
    assert verify_chain(tenant.pk, tenant.slug).intact

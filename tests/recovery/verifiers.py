"""S4 through its verifiers, for tests that need an accepted S4."""

from __future__ import annotations

from recovery.cases.models import Evidence, RecoveryCase
from recovery.models import ProtectedAccount
from recovery.proofing.providers import DevProofingProvider, provider_get
from recovery.proofing.services import proofing_start, proofing_verdict_receive
from tenants.models import User

from ..factories import unique


def enrolled(account: ProtectedAccount) -> str:
    """The account's enrolment reference, set first (as the system of record would) if empty."""
    if not account.enrolment_reference:
        account.enrolment_reference = unique("enrol")
        ProtectedAccount.objects.filter(pk=account.pk).update(
            enrolment_reference=account.enrolment_reference
        )
    return account.enrolment_reference


def dev_provider() -> DevProofingProvider:
    provider = provider_get("dev")
    assert isinstance(provider, DevProofingProvider), "the dev proofing provider is configured"
    return provider


def proofing_passed(case: RecoveryCase, actor: User) -> Evidence:
    """An S4 accepted from a passing verdict signed by the development proofing provider."""
    reference = enrolled(case.account)
    started = proofing_start(actor=actor, case=case, provider="dev")
    body, headers = dev_provider().verdict_for(
        started.session, outcome="pass", subject_reference=reference
    )
    session = proofing_verdict_receive(provider="dev", body=body, headers=headers)
    assert session.evidence is not None, session.status
    return session.evidence

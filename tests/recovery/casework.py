"""Cases built through the real services, at the stage a test needs (shared by test modules)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.core import mail
from django.utils import timezone

from recovery.cases.models import Evidence, RecoveryCase
from recovery.cases.services import approval_decide, case_open, case_submit
from recovery.models import ContactMethod, ProtectedAccount
from tenants.choices import Role
from tenants.models import Tenant, User

from ..factories import make_account_with, make_user, staff, step_up, unique


def code_in(text: str) -> str:
    """The one-time code in a message sent to the owner."""
    match = re.search(r"code(?: is|:) (\d[\d ]{5,})", text)
    assert match, text
    return match.group(1).replace(" ", "").rstrip(".")


def link_token_in(text: str, path: str = "verify") -> str:
    """The token of a confirmation (`verify`) or attestation (`attest`) link in a message."""
    match = re.search(rf"/{path}/([A-Za-z0-9_-]+)/", text)
    assert match, text
    return match.group(1)


def contact(
    account: ProtectedAccount,
    kind: str = "mobile",
    value: str = "+15550000001",
    *,
    age_days: int = 400,
    sim_days: int | None = None,
) -> ContactMethod:
    """A contact method the system of record has held for `age_days` (past any quarantine)."""
    now = timezone.now()
    return ContactMethod.objects.create(
        tenant=account.tenant,
        account=account,
        kind=kind,
        value=value,
        source="hris",
        registered_at=now - timedelta(days=age_days),
        sim_changed_at=now - timedelta(days=sim_days) if sim_days is not None else None,
    )


def signal(case: RecoveryCase, actor: User, signal_class: str) -> Evidence:
    """One signal of `signal_class`, produced by its verifier as the owner's side would:
    S2 a code emailed to a long-held address and read back, S3 the manager's attestation
    from their own session, S4 a passing verdict signed by the development proofing provider.
    S1 and S5 come from the owner portal: tests/owner/case_owner.py enrols an owner for them."""
    from recovery.challenges.services import (
        attestation_confirm,
        attestation_request,
        challenge_send,
        challenge_verify,
    )

    from .verifiers import proofing_passed

    if signal_class == "S2":
        mailbox = contact(case.account, "email", f"{unique('owner')}@example.test")
        challenge = challenge_send(actor=actor, case=case, contact_method=mailbox)
        return challenge_verify(
            actor=actor, case=case, challenge=challenge, code=code_in(mail.outbox[-1].body)
        )
    if signal_class == "S3":
        manager = _staff_manager(case.account)
        attestation_request(actor=actor, case=case)
        return attestation_confirm(
            actor=manager, token=link_token_in(mail.outbox[-1].body, "attest")
        )
    if signal_class == "S4":
        return proofing_passed(case, actor)
    raise AssertionError(f"{signal_class} has no verifier: it cannot be made to count")


def referee_certified(tenant: Tenant, *, days: int = 30) -> User:
    """A trusted referee of `tenant` (a new person), certified by a tenant admin for `days`."""
    from tenants.models import Membership
    from tenants.services import referee_certify

    from ..factories import member

    referee = make_user()
    member(referee, Role.TRUSTED_REFEREE, tenant=tenant)
    referee_certify(
        actor=staff(Role.TENANT_ADMIN, tenant=tenant),
        membership=Membership.objects.get(user=referee, tenant=tenant, role=Role.TRUSTED_REFEREE),
        until=timezone.now() + timedelta(days=days),
    )
    return referee


def attended_passed(
    case: RecoveryCase, *, mode: str = "onsite", referee: User | None = None
) -> Evidence:
    """An S4 from an attended session a certified referee (no party to the case) ran to the
    end: coercion question answered "no", live challenge passed, and onsite the biometric
    comparison with the enrolment reference (set first if the account had none)."""
    from recovery.proofing.attended import (
        attended_coercion_answer,
        attended_complete,
        attended_start,
    )

    from .verifiers import enrolled

    enrolled(case.account)
    referee = referee or referee_certified(case.tenant)
    session = attended_start(
        actor=referee, case=case, mode=mode, reason="The caller lost every device."
    )
    attended_coercion_answer(actor=referee, session=session, observed=False)
    evidence = attended_complete(
        actor=referee,
        session=session,
        documents_presented=["passport (chip read, photo matches)"],
        steps_completed=["document check", "live challenge", "coercion question"],
        live_challenge_passed=True,
        biometric_compared=mode == "onsite",
    )
    assert evidence is not None
    return evidence


def _staff_manager(account: ProtectedAccount) -> User:
    """The account's manager as staff with a sign-in (made on first use), and the manager
    contact the system of record held long before the case."""
    manager_account = (
        ProtectedAccount.objects.for_tenant(account.tenant)
        .filter(external_id=account.manager_external_id)
        .first()
    )
    if manager_account is None:
        person = uuid.uuid4()
        manager_account = make_account_with(
            account.tenant, external_id=unique("mgr"), person_id=person
        )
        ProtectedAccount.objects.filter(pk=account.pk).update(
            manager_external_id=manager_account.external_id
        )
        make_user(person_id=str(person))
        contact(account, "manager", f"{unique('boss')}@example.test")
    return User.objects.get(person_id=manager_account.person_id, kind="human")


def submitted(
    tenant: Tenant,
    agent: User,
    classes: tuple[str, ...],
    *,
    case_type: str = "unlock",
    **attributes,
) -> RecoveryCase:
    """A case on a new account with these attributes, its signals recorded, then submitted."""
    account = make_account_with(tenant, **attributes)
    case = case_open(actor=agent, account=account, case_type=case_type, channel="phone")
    for signal_class in classes:
        signal(case, agent, signal_class)
    return case_submit(actor=agent, case=case)


def approved(case: RecoveryCase, approver: User | None = None) -> RecoveryCase:
    """The case approved by `approver` (default: a new supervisor, so step-ups never clash)."""
    approver = approver or staff(Role.SUPERVISOR, tenant=case.tenant)
    approval_decide(
        actor=approver,
        case=case,
        decision="approved",
        reason="manager confirmed",
        step_up=step_up(approver, case=case),
    )
    return RecoveryCase.objects.get(pk=case.pk)


def decide(case: RecoveryCase, approver: User, reason: str = "ok", decision: str = "approved"):
    """`approver` decides `case` with a fresh step-up (the only way a decision is made)."""
    return approval_decide(
        actor=approver,
        case=case,
        decision=decision,
        reason=reason,
        step_up=step_up(approver, case=case, action="deny" if decision == "denied" else "approve"),
    )

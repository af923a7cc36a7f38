"""The approval queue (SQL) and the approval service (one case) agree: a property test.

`access_rules.DECIDE` is one list of rules with a SQL form (the queue's filter) and a one-case
form (`approval_refusal`). Hypothesis draws the actor's roles and the way they hold them (a
membership, or a provider grant limited to some tiers and case types) and a handful of pending
cases: tier, type, route, opener (the actor, another account of the actor's person, someone
else), taker, subject (the actor's own account, one that delegates to it, one it delegates to,
someone else's), evidence collected by whom, challenges requested by whom, earlier decisions by
the actor (live or voided). For every example, a case is in the actor's queue exactly when the
service would let them decide it. Derandomized: the same examples on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from recovery.cases.choices import CaseStatus, Decision, EvidenceResult, Route
from recovery.cases.models import Approval, Evidence, RecoveryCase
from recovery.cases.review_selectors import approval_queue
from recovery.cases.services import approval_refusal
from recovery.cases.services.base import requirements_for
from recovery.models import ProtectedAccount
from tenants.access import access_in
from tenants.choices import CaseType, GrantStatus, Role, Tier
from tenants.models import DelegationGrant, Membership, Tenant, User

from ..factories import make_account, make_provider, make_user, operator

pytestmark = pytest.mark.django_db

# Who a case's parties are, relative to the actor; the harmless choice first, as Hypothesis
# starts from (and shrinks towards) the first of each.
PEOPLE = ("none", "other", "actor", "twin")  # twin: another account of the actor's person
SUBJECTS = ("plain", "own", "delegates_to_actor", "actor_delegates_to")
ROLES = (
    Role.SUPERVISOR,
    Role.SECURITY_OFFICER,
    *(r for r in Role.values if r not in (Role.SUPERVISOR, Role.SECURITY_OFFICER)),
)


@dataclass(frozen=True)
class CaseSpec:
    tier: str
    case_type: str
    route: str
    opener: str
    taker: str
    subject: str
    collector: str
    collected: str
    challenger: str
    decided: str  # "no", "live", "voided"


@dataclass(frozen=True)
class ActorSpec:
    roles: frozenset[str]
    holds: str  # "member" of the tenant, through a provider's "grant", or "nothing"
    tiers: frozenset[str]
    case_types: frozenset[str]


actors = st.builds(
    ActorSpec,
    roles=st.frozensets(st.sampled_from(ROLES), min_size=1, max_size=3),
    holds=st.sampled_from(("grant", "member", "nothing")),
    tiers=st.frozensets(st.sampled_from(Tier.values), min_size=1),
    case_types=st.frozensets(st.sampled_from(CaseType.values), min_size=1),
)
cases = st.builds(
    CaseSpec,
    tier=st.sampled_from(Tier.values),
    case_type=st.sampled_from(CaseType.values),
    route=st.sampled_from(Route.values),
    opener=st.sampled_from(("other", "actor", "twin")),
    taker=st.sampled_from(PEOPLE),
    subject=st.sampled_from(SUBJECTS),
    collector=st.sampled_from(PEOPLE),
    collected=st.sampled_from(EvidenceResult.values),
    challenger=st.sampled_from(PEOPLE),
    decided=st.sampled_from(("no", "voided", "live")),
)


SUPERVISOR = ActorSpec(
    roles=frozenset({Role.SUPERVISOR}),
    holds="member",
    tiers=frozenset({Tier.T0}),
    case_types=frozenset({CaseType.PASSWORD_RESET}),
)
BENIGN = CaseSpec(
    tier=Tier.T0,
    case_type=CaseType.PASSWORD_RESET,
    route=Route.STANDARD,
    opener="other",
    taker="none",
    subject="plain",
    collector="none",
    collected=EvidenceResult.REJECTED,
    challenger="none",
    decided="no",
)


@dataclass
class Cast:
    tenant: Tenant
    users: dict[str, User]  # actor, twin, other
    accounts: dict[str, ProtectedAccount]
    provider: object


@pytest.fixture
def cast(acme) -> Cast:
    """The people and accounts every example draws from (built once per test)."""
    actor = make_user(totp=False)
    twin = make_user(person_id=str(actor.person_id), totp=False)
    other = make_user(totp=False)
    own, giver, taker_of, plain = (make_account(acme) for _ in range(4))
    # `delegations` lists the accounts that delegate *to* an account.
    ProtectedAccount.objects.filter(pk=own.pk).update(
        person_id=actor.person_id, delegations=[taker_of.external_id]
    )
    ProtectedAccount.objects.filter(pk=giver.pk).update(delegations=[own.external_id])
    accounts = {
        "own": own,
        "delegates_to_actor": giver,
        "actor_delegates_to": taker_of,
        "plain": plain,
    }
    return Cast(
        tenant=acme,
        users={"actor": actor, "twin": twin, "other": other},
        accounts={name: ProtectedAccount.objects.get(pk=a.pk) for name, a in accounts.items()},
        provider=make_provider(),
    )


def give_access(cast: Cast, spec: ActorSpec) -> None:
    actor = cast.users["actor"]
    if spec.holds == "nothing":
        return
    if spec.holds == "member":
        for role in spec.roles:
            Membership.objects.create(user=actor, tenant=cast.tenant, role=role)
        return
    for role in spec.roles:
        Membership.objects.create(user=actor, provider=cast.provider, role=role)
    now = timezone.now()
    DelegationGrant.objects.create(
        provider=cast.provider,
        tenant=cast.tenant,
        allowed_roles=sorted(spec.roles),
        allowed_tiers=sorted(spec.tiers),
        allowed_case_types=sorted(spec.case_types),
        valid_from=now - timedelta(minutes=5),
        valid_until=now + timedelta(days=1),
        status=GrantStatus.ACTIVE,
        requested_by=operator(),
        approved_by=operator(),
        approved_at=now,
    )


def make_case(cast: Cast, spec: CaseSpec) -> RecoveryCase:
    users = cast.users
    opener = users[spec.opener]
    case = RecoveryCase.objects.create(
        tenant=cast.tenant,
        account=cast.accounts[spec.subject],
        case_type=spec.case_type,
        channel="phone",
        status=CaseStatus.PENDING_APPROVAL,
        tier=spec.tier,
        route=spec.route,
        policy_version=0,
        policy_source="platform_default",
        opened_by=opener,
        opened_by_person=opener.person_id,
        taken_by=users.get(spec.taker),
        submitted_at=timezone.now(),
    )
    if spec.collector in users:
        Evidence.objects.create(
            tenant=cast.tenant,
            case=case,
            signal_class="S2",
            method="sms_code",
            result=spec.collected,
            verifier="legacy_assertion" if spec.collected == EvidenceResult.ACCEPTED else "",
            collected_by=users[spec.collector],
            digest="0" * 64,
        )
    if spec.challenger in users:
        from recovery.challenges.models import VerificationChallenge

        VerificationChallenge.objects.create(
            tenant=cast.tenant,
            case=case,
            kind="code",
            contact_method=_contact(cast, case),
            channel="email",
            contact_hint="a***@x.test",
            code_hash="0" * 64,
            max_attempts=3,
            requested_by=users[spec.challenger],
            expires_at=timezone.now() + timedelta(minutes=5),
        )
    actor = users["actor"]
    if spec.decided != "no" and opener.person_id != actor.person_id:
        Approval.objects.create(
            tenant=cast.tenant,
            case=case,
            approver=actor,
            approver_person=actor.person_id,
            case_opened_by=opener,
            case_opened_by_person=opener.person_id,
            roles=[Role.SUPERVISOR],
            via_grant=False,
            decision=Decision.APPROVED,
            reason="earlier",
            snapshot_hash="0" * 64,
            step_up={},
            expires_at=timezone.now() + timedelta(hours=1),
            invalidated_at=timezone.now() if spec.decided == "voided" else None,
        )
    return case


def _contact(cast: Cast, case: RecoveryCase):
    from ..recovery.casework import contact

    return contact(case.account, "email", "a@x.test")


@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actor=actors, specs=st.lists(cases, min_size=1, max_size=4))
# Each rule refuses at least once whatever Hypothesis draws, and one case is decidable.
@example(actor=SUPERVISOR, specs=[BENIGN, replace(BENIGN, decided="live")])
@example(actor=SUPERVISOR, specs=[replace(BENIGN, route=Route.SECURITY)])
@example(actor=replace(SUPERVISOR, holds="grant"), specs=[replace(BENIGN, tier=Tier.T1)])
@example(actor=replace(SUPERVISOR, holds="grant"), specs=[replace(BENIGN, case_type="unlock")])
def test_the_queue_holds_exactly_the_cases_the_service_lets_the_actor_decide(cast, actor, specs):
    with transaction.atomic():
        give_access(cast, actor)
        made = [make_case(cast, spec) for spec in specs]
        user = cast.users["actor"]
        access = access_in(user, cast.tenant)
        queued = (
            set()
            if access is None
            else set(
                approval_queue(tenant=cast.tenant, actor=user, access=access).values_list(
                    "pk", flat=True
                )
            )
        )
        for case, spec in zip(made, specs, strict=True):
            refusal = approval_refusal(case, user, access, requirements_for(case))
            event(refusal.code if refusal is not None else "decidable")
            assert (case.pk in queued) == (refusal is None), (actor, spec, refusal)
        transaction.set_rollback(True)

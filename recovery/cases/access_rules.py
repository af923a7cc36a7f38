"""Who may see, work, review and decide (approve) a recovery case: one list of rules per act.

Each `Rule` answers one question about one case for one actor, in two forms that must agree:

- `sql(who)`: a `Q` over `RecoveryCase` matching the cases the rule allows. The querysets
  (`RecoveryCase.objects.for_tenant(t).visible_to(access)`, `.workable_by(access)`,
  `.reviewable_by(access)`, `.decidable_by(actor, access, policy=…)`) AND the rules of a list,
  so every list, queue and API page shows what the rules allow and nothing else;
- `test(who, case)`: the same answer for one case in Python, for pages and services, which
  refuse with the first failing rule's `code` and `message` (`first_refusal`).

A rule whose facts live in other tables (who collected the evidence, the delegations around
the subject, earlier decisions) has no Python copy of its SQL (`test=None`): for one case its
SQL is run for that case, every such rule of a list in one query. The property test
`tests/recovery/test_access_rules_property.py` checks that the approval queue and the approval
service (`approval_refusal`) agree on random cases, roles and grants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from tenants.access import TenantAccess
from tenants.choices import CaseType, Role, Tier
from tenants.models import User
from tenants.policies import ALLOW, Decision

from ..challenges.models import VerificationChallenge
from ..models import ProtectedAccount
from ..owner.models import IdpSignIn, OwnerConfirmation, RecoveryCodeCheck
from ..policy.floors import APPROVER_ROLES
from ..proofing.models import AttendedSession, ProofingSession
from .choices import EvidenceResult, Route
from .models import Approval, Evidence, RecoveryCase

if TYPE_CHECKING:
    from ..policy.rules import Requirements

CASE_WORKERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER})
EVIDENCE_READERS = frozenset({Role.AUDITOR, Role.SECURITY_OFFICER})
REFEREES = frozenset({Role.TRUSTED_REFEREE})
# Who may open the security queue: its officers, and the tenant's admins to oversee.
SECURITY_QUEUE_ROLES = frozenset({Role.SECURITY_OFFICER, Role.TENANT_ADMIN})
REVIEWER_ROLES = APPROVER_ROLES | SECURITY_QUEUE_ROLES

NOTHING = Q(pk__in=[])  # matches no case
EVERYTHING = Q()


class CaseShape(Protocol):
    """What the rules read of a case's own row (a case, or one about to be opened)."""

    tier: str
    case_type: str
    route: str


@dataclass(frozen=True)
class Shape:
    """A case that does not exist yet: the tier, type and route it would be opened with."""

    tier: str
    case_type: str
    route: str = Route.STANDARD


@dataclass(frozen=True)
class Who:
    """The actor the rules are asked about: their access in the tenant, and for deciding the
    account acting and the requirements (by tier and case type) naming the approver roles."""

    access: TenantAccess | None
    actor: User | None = None
    requirements: Callable[[str, str], Requirements] | None = None

    @property
    def person(self) -> Any:
        return self.actor.person_id if self.actor is not None else None

    @property
    def roles(self) -> frozenset[str]:
        return self.access.roles if self.access is not None else frozenset()


@dataclass(frozen=True)
class Rule:
    """One condition a case must meet for an actor: its SQL, its Python form, why it refuses."""

    code: str
    message: Callable[[Who, CaseShape], str]
    sql: Callable[[Who], Q]
    test: Callable[[Who, CaseShape], bool] | None = None  # None: its SQL, run for the one case

    def refusal(self, who: Who, case: CaseShape) -> Decision:
        return Decision(False, self.code, str(self.message(who, case)))


def _said(text: Any) -> Callable[[Who, CaseShape], str]:
    return lambda who, case: str(text)


def _access_rule() -> Rule:
    return Rule(
        "tenant.no_access",
        _said(_("You have no access to this tenant.")),
        lambda who: EVERYTHING if who.access is not None else NOTHING,
        lambda who, case: who.access is not None,
    )


def _role_rule(roles: frozenset[str], code: str, message: Any) -> Rule:
    """The actor holds one of `roles` (a fact about the actor: all cases or none)."""
    return Rule(
        code,
        _said(message),
        lambda who: EVERYTHING if who.roles & roles else NOTHING,
        lambda who, case: bool(who.roles & roles),
    )


def _tier_sql(who: Who) -> Q:
    tiers = who.access.tiers if who.access is not None else None
    return EVERYTHING if tiers is None else Q(tier__in=sorted(tiers))


def _tier_test(who: Who, case: CaseShape) -> bool:
    tiers = who.access.tiers if who.access is not None else None
    return tiers is None or case.tier in tiers


def _case_type_sql(who: Who) -> Q:
    types = who.access.case_types if who.access is not None else None
    return EVERYTHING if types is None else Q(case_type__in=sorted(types))


def _case_type_test(who: Who, case: CaseShape) -> bool:
    types = who.access.case_types if who.access is not None else None
    return types is None or case.case_type in types


# A delegation grant may limit the tiers and case types its staff work on (own staff: all).
GRANT_TIER = Rule(
    "grant.tier_not_allowed",
    lambda who, case: (
        _("Your organisation's delegation grant does not cover %(tier)s accounts.")
        % {"tier": case.tier}
    ),
    _tier_sql,
    _tier_test,
)
GRANT_CASE_TYPE = Rule(
    "grant.case_type_not_allowed",
    lambda who, case: (
        _("Your organisation's delegation grant does not cover %(type)s cases.")
        % {"type": case.case_type}
    ),
    _case_type_sql,
    _case_type_test,
)


def _security_route_rule(roles: frozenset[str], message: Any) -> Rule:
    """A case in the security queue only for `roles`."""
    return Rule(
        "case.security_queue_only",
        _said(message),
        lambda who: EVERYTHING if who.roles & roles else Q(route=Route.STANDARD),
        lambda who, case: bool(who.roles & roles) or case.route == Route.STANDARD,
    )


def _referee_sql(who: Who) -> Q:
    return NOTHING if _referee_only_via_grant(who) else EVERYTHING


def _referee_only_via_grant(who: Who) -> bool:
    """A trusted referee's certification is the tenant's word about its own staff
    (`referee_certify`): a delegation grant cannot carry the role (R-09)."""
    return (
        who.access is not None
        and who.access.via_grant
        and not who.roles & (CASE_WORKERS | EVIDENCE_READERS)
    )


# --- see: lists, reads and the case page -------------------------------------------------------

SEE = (
    _access_rule(),
    _role_rule(
        CASE_WORKERS | EVIDENCE_READERS | REFEREES,
        "case.role_required",
        _("Case pages are for agents, supervisors, security officers and auditors."),
    ),
    Rule(
        "attended.referee_not_delegable",
        _said(
            _("Trusted referees are the tenant's own staff; a delegation grant cannot carry it.")
        ),
        _referee_sql,
        lambda who, case: not _referee_only_via_grant(who),
    ),
    GRANT_TIER,
    GRANT_CASE_TYPE,
)

# --- work: open, collect evidence, submit, cancel ---------------------------------------------

WORK = (
    _access_rule(),
    _role_rule(
        CASE_WORKERS,
        "case.role_required",
        _("Working recovery cases needs the agent, supervisor or security_officer role."),
    ),
    GRANT_TIER,
    GRANT_CASE_TYPE,
    _security_route_rule(
        frozenset({Role.SECURITY_OFFICER}),
        _("This case is in the security queue: only security officers work it."),
    ),
)

# --- review: the review page and the security queue's lists ------------------------------------

REVIEW = (
    _access_rule(),
    _role_rule(
        REVIEWER_ROLES,
        "review.role_required",
        _("Reviewing cases is for supervisors, security officers and tenant admins."),
    ),
    GRANT_TIER,
    GRANT_CASE_TYPE,
    _security_route_rule(
        SECURITY_QUEUE_ROLES,
        _("This case is in the security queue: security officers review it."),
    ),
)

# --- decide: approve or deny (R-20, R-21, R-59, R-66) ------------------------------------------


# The rules that read other tables are conjunctions of NOT EXISTS over rows of the case (never
# an OR of them, never NOT IN): PostgreSQL turns each into an anti-join it can estimate, so the
# approval queue walks its index in queue order and stops at a page, however long the backlog.


def _none_of(rows: QuerySet[Any]) -> Q:
    return ~Q(Exists(rows))


def _taker_is_person(who: Who) -> QuerySet[Any]:
    """SQL: the case's taker is an account of the actor's person (the actor included)."""
    return User.objects.filter(pk=OuterRef("taken_by"), person_id=who.person)


def _subject_or_delegate(who: Who) -> Q:
    """The person is the subject, or on either side of a delegation with the subject.

    `ProtectedAccount.delegations` lists the accounts that delegate *to* an account. The
    person's own accounts (`person_id`) match a case's subject when the subject's list names one
    of them (they delegate to the subject) or one of their lists names the subject (the subject
    delegates to them: they are the subject's delegate). One query reads the person's accounts.
    """
    assert who.access is not None
    accounts = ProtectedAccount.objects.filter(tenant_id=who.access.tenant_id)
    own = list(accounts.filter(person_id=who.person).values_list("external_id", "delegations"))
    subjects = Q(person_id=who.person)
    own_ids = [external_id for external_id, _delegations in own]
    if own_ids:
        subjects |= Q(delegations__has_any_keys=own_ids)
    delegated_to_them = sorted(
        {str(item) for _external_id, delegations in own for item in (delegations or []) if item}
    )
    if delegated_to_them:
        subjects |= Q(external_id__in=delegated_to_them)
    return _none_of(accounts.filter(subjects, pk=OuterRef("account_id")))


def _collector(who: Who) -> Q:
    """The person gathered any of the case's evidence, or worked it.

    The collector of an accepted or rejected verifier row, whoever asked a verifier for a
    check on the case (a code, an attestation, a proofing or owner session, a recovery-code
    check), the referee of its attended sessions, and the person who took it.
    """
    assert who.access is not None
    tenant_id, person, case = who.access.tenant_id, who.person, OuterRef("pk")
    checks: list[QuerySet[Any]] = [
        _taker_is_person(who),
        Evidence.objects.filter(
            tenant_id=tenant_id,
            case=case,
            result__in=(EvidenceResult.ACCEPTED, EvidenceResult.REJECTED),
            collected_by__person_id=person,
        ),
        VerificationChallenge.objects.filter(
            tenant_id=tenant_id, case=case, requested_by__person_id=person
        ),
        ProofingSession.objects.filter(
            tenant_id=tenant_id, case=case, started_by__person_id=person
        ),
        AttendedSession.objects.filter(tenant_id=tenant_id, case=case, referee_person=person),
        OwnerConfirmation.objects.filter(
            tenant_id=tenant_id, case=case, requested_by__person_id=person
        ),
        IdpSignIn.objects.filter(tenant_id=tenant_id, case=case, requested_by__person_id=person),
        RecoveryCodeCheck.objects.filter(
            tenant_id=tenant_id, case=case, checked_by__person_id=person
        ),
    ]
    condition = EVERYTHING
    for rows in checks:
        condition &= _none_of(rows)
    return condition


def _not_decided(who: Who) -> Q:
    assert who.access is not None
    return _none_of(
        Approval.objects.filter(
            tenant_id=who.access.tenant_id,
            case=OuterRef("pk"),
            approver_person=who.person,
            invalidated_at__isnull=True,
        )
    )


def _approver_role_sql(who: Who) -> Q:
    """The (tier, case type) pairs whose policy names one of the actor's roles as approver."""
    assert who.requirements is not None
    eligible = NOTHING
    for tier in Tier.values:
        types = [
            case_type
            for case_type in CaseType.values
            if who.roles & set(who.requirements(tier, case_type).approver_roles)
        ]
        if types:
            eligible |= Q(tier=tier, case_type__in=types)
    return eligible


def _approver_roles(who: Who, case: CaseShape) -> tuple[str, ...]:
    assert who.requirements is not None
    return who.requirements(case.tier, case.case_type).approver_roles


def _not_opener(who: Who) -> Q:
    assert who.actor is not None
    return ~Q(opened_by=who.actor.pk)


def _not_same_person(who: Who) -> Q:
    return ~Q(opened_by_person=who.person)


def _not_taker(who: Who) -> Q:
    return _none_of(_taker_is_person(who))


# The approver-role rules of DECIDE: also what the policy simulator counts a recorded approval by.
APPROVER_ROLE = Rule(
    "approval.role_required",
    lambda who, case: (
        _("Approving needs one of these roles: %(roles)s.")
        % {"roles": ", ".join(_approver_roles(who, case))}
    ),
    _approver_role_sql,
    lambda who, case: bool(who.roles & set(_approver_roles(who, case))),
)
APPROVER_ROUTE = _security_route_rule(
    frozenset({Role.SECURITY_OFFICER}),
    _("Cases in the security queue are approved by security officers."),
)

DECIDE = (
    _access_rule(),
    Rule(
        "sod.approver_is_opener",
        _said(_("You opened this case.")),
        _not_opener,
        lambda who, case: who.actor is not None and case.opened_by_id != who.actor.pk,
    ),
    Rule(
        "sod.same_person",
        _said(_("Another account of the person who opened this case cannot approve it.")),
        _not_same_person,
        lambda who, case: str(case.opened_by_person) != str(who.person),
    ),
    Rule(
        "sod.approver_is_taker",
        _said(
            _("You took this AI-drafted case, so you worked it; another person must approve it.")
        ),
        _not_taker,
    ),
    Rule(
        "sod.approver_is_subject",
        _said(
            _(
                "The subject of a case, a delegate of the subject, or someone who delegates to "
                "the subject cannot approve it."
            )
        ),
        _subject_or_delegate,
    ),
    Rule(
        "sod.evidence_collector",
        _said(
            _("You collected evidence for this case or worked it; another person must approve it.")
        ),
        _collector,
    ),
    GRANT_TIER,
    GRANT_CASE_TYPE,
    Rule(
        "approval.already_decided",
        _said(_("You have already decided this case.")),
        _not_decided,
    ),
    APPROVER_ROLE,
    APPROVER_ROUTE,
)


# --- evaluation -------------------------------------------------------------------------------


def matching(rules: Sequence[Rule], who: Who) -> Q:
    """SQL form of a list: the cases every rule allows."""
    condition = EVERYTHING
    for rule in rules:
        part = rule.sql(who)
        if part == NOTHING:
            return NOTHING
        condition &= part
    return condition


def _sql_for_one(rules: Sequence[Rule], who: Who, case: RecoveryCase) -> dict[str, bool]:
    """The SQL-only rules of `rules`, evaluated for `case` in one query: code -> allowed."""
    flags = {
        f"rule_{n}": ExpressionWrapper(rule.sql(who), output_field=BooleanField())
        for n, rule in enumerate(rules)
    }
    row = (
        RecoveryCase.objects.filter(tenant_id=case.tenant_id, pk=case.pk)
        .annotate(**flags)
        .values_list(*flags)
        .first()
    )
    hits = row if row is not None else (False,) * len(rules)
    return {rule.code: bool(hit) for rule, hit in zip(rules, hits, strict=True)}


def first_refusal(rules: Sequence[Rule], who: Who, case: CaseShape) -> Decision:
    """Python form of a list: ALLOW, or the first rule `case` fails for `who`.

    Rules with a Python test are evaluated in Python; the others (only for a saved case) are
    evaluated together in one query, when the first of them is reached.
    """
    in_sql: dict[str, bool] | None = None
    for rule in rules:
        if rule.test is not None:
            allowed = rule.test(who, case)
        else:
            if in_sql is None:
                assert isinstance(case, RecoveryCase)
                in_sql = _sql_for_one([r for r in rules if r.test is None], who, case)
            allowed = in_sql[rule.code]
        if not allowed:
            return rule.refusal(who, case)
    return ALLOW


def within_grant(access: TenantAccess | None, case: CaseShape) -> Decision:
    """Whether a delegation grant covers the case's tier and type (ALLOW for own staff)."""
    return first_refusal((GRANT_TIER, GRANT_CASE_TYPE), Who(access), case)


def grant_case_types(access: TenantAccess | None) -> list[str]:
    """The case types `GRANT_CASE_TYPE` lets the actor work (all of them for own staff)."""
    who = Who(access)
    return [
        value
        for value in CaseType.values
        if _case_type_test(who, Shape(tier=Tier.T0, case_type=value))
    ]


def tier_in_grant(access: TenantAccess | None, tier: str) -> Decision:
    """`GRANT_TIER` alone, before a case type is chosen (the account page)."""
    return first_refusal((GRANT_TIER,), Who(access), Shape(tier=tier, case_type=""))


def roles_may_decide(
    roles: frozenset[str], case: CaseShape, requirements: Callable[[str, str], Requirements]
) -> bool:
    """Whether `roles` pass the approver-role rules of `DECIDE` for `case` under
    `requirements` (the policy simulator weighs recorded approvals with it)."""
    access = TenantAccess(tenant_id=0, roles=roles)
    who = Who(access, requirements=requirements)
    return bool(first_refusal((APPROVER_ROLE, APPROVER_ROUTE), who, case))

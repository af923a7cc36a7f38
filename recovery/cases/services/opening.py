"""Opening a case and taking an AI-drafted one (R-66)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from audit.services import record
from tenants.access import access_in
from tenants.choices import CaseType, PrincipalKind
from tenants.exceptions import InvalidInput, PolicyDenied
from tenants.incident import freeze_refusal
from tenants.models import User
from tenants.policies import ALLOW, Decision, enforce

from ...delegation.policies import case_type_allowed
from ...delegation.services import delegation_request_open
from ...detection.choices import CallerKind
from ...detection.identifiers import CallerValue, caller_value
from ...detection.models import CallerIdentifier
from ...detection.rules import Response, correlation_of, findings_at_open, tier_after
from ...models import ProtectedAccount
from ...policy.explain import route_for
from ...policy.selectors import policy_active
from ...selectors import account_get_visible, account_locked
from ..choices import (
    Channel,
    Route,
)
from ..models import RecoveryCase
from ..policies import can_work_case
from ..transitions import Move, transition_require
from .base import alert_raise, audit_actor_of, case_locked, work_access
from .repudiation import case_open_refusal
from .roles import role_regrant_seconds, role_restore_open_check

MIN_JUSTIFICATION = 30


REPEAT_RULES = frozenset({"repeat_case", "after_denial"})  # the case's repeat flag
TIER_RESPONSES = frozenset({Response.RAISE_TIER, Response.RAISE_TO_T2})


def _caller_values(caller: Mapping[str, str]) -> list[CallerValue]:
    unknown = sorted(set(caller) - set(CallerKind.values))
    if unknown:
        raise InvalidInput(
            f"Unknown caller identifier {', '.join(unknown)}; use {', '.join(CallerKind.values)}.",
            code="case.caller_invalid",
            field_errors={"caller": [f"One of {', '.join(CallerKind.values)}."]},
        )
    values = (caller_value(kind, raw) for kind, raw in caller.items() if raw and raw.strip())
    return [value for value in values if value is not None]


def case_open(
    *,
    actor: User,
    account: ProtectedAccount,
    case_type: str,
    channel: str,
    claimant_statement: str = "",
    justification: str = "",
    mailbox: ProtectedAccount | None = None,
    delegation_seconds: int | None = None,
    regrant_seconds: int | None = None,
    caller: Mapping[str, str] | None = None,
) -> RecoveryCase:
    """Open a case; tier, route and repeat-attempt flag come from the server, never the caller.

    An exception request is its own case type and needs a written justification (R-24); the
    policy gives it two security-officer approvals and a waiting period, never lower floors.
    A shared or functional mailbox (by its kind in the system of record) refuses the case
    types that would recover its own credential (`case.type_not_for_account_kind`); a
    `mailbox_access` case is opened on the requester's account and names the `mailbox` (and
    how long, `delegation_seconds`), recorded as its delegation request (recovery.delegation).
    A `privileged_role_restore` case grants the suspended roles back for `regrant_seconds`
    (R-19: at most the policy's `role_regrant_max_seconds`, which it gets when None).

    `caller` says how the contact arrived (`CallerKind` → what the agent saw: the inbound
    number, the address, the chat handle, the name given). It is kept only as keyed hashes and
    masked hints, never as a channel, and the detection rules (recovery.detection) read it with
    the account's history: their responses (security queue, a higher tier) apply before the
    case is written, and each finding raises an alert linked by the case's correlation id.
    """
    callers = _caller_values(caller or {})
    if case_type == CaseType.EXCEPTION and len(justification.strip()) < MIN_JUSTIFICATION:
        raise InvalidInput(
            f"An exception request needs a written justification of at least "
            f"{MIN_JUSTIFICATION} characters.",
            code="case.justification_required",
            field_errors={"justification": ["Explain why the standard path cannot be used."]},
        )
    if channel not in Channel.values:
        raise InvalidInput(
            f"Unknown channel {channel!r}.",
            code="case.channel_invalid",
            field_errors={"channel": [f"One of {', '.join(Channel.values)}."]},
        )
    tenant = account.tenant
    with transaction.atomic():
        # Serialise case openings per account so two agents cannot both miss each other.
        account = account_locked(tenant=tenant, pk=account.pk)
        enforce(case_type_allowed(account, case_type))
        if mailbox is not None:  # read in the tenant: another tenant's is the same 404
            mailbox = account_get_visible(tenant=tenant, pk=mailbox.pk)
        access = access_in(actor, tenant)
        policy = policy_active(tenant)
        tier, tier_reasons = policy.compute_tier(account)
        computed_tier = tier
        req = policy.requirements(tier, case_type)
        route, route_reasons = route_for(account, tier, case_type)
        findings = findings_at_open(account=account, req=req, callers=callers, now=timezone.now())
        repeat = any(finding.rule in REPEAT_RULES for finding in findings)
        if (raised := tier_after(tier, findings)) != tier:
            raising = (f.rule for f in findings if set(f.responses) & TIER_RESPONSES)
            tier_reasons = [*tier_reasons, *(f"detection: {rule}" for rule in raising)]
            tier, req = raised, policy.requirements(raised, case_type)
            route, route_reasons = route_for(account, tier, case_type)
        if any(Response.REROUTE in finding.responses for finding in findings):
            route = Route.SECURITY
            route_reasons = [
                *route_reasons,
                *(f"detection: {f.rule}" for f in findings if Response.REROUTE in f.responses),
            ]
        # Whether the actor may open it is decided on the tier the account has: a case a rule
        # raised goes to the security queue instead of being refused, and its alert stands.
        enforce(
            can_work_case(access, route=Route.STANDARD, tier=computed_tier, case_type=case_type)
        )
        enforce(case_open_refusal(account, access))  # a frozen account: security officers only
        if account.frozen_at is not None:
            route = Route.SECURITY
            route_reasons = [
                *route_reasons,
                "the account is frozen (R-41): a security officer opened this case",
            ]
        if freeze_refusal(tenant) is not None:
            route = Route.SECURITY
            route_reasons = [*route_reasons, "recoveries in the tenant are frozen for an incident"]
        assert access is not None  # guaranteed by the policy above
        if case_type == CaseType.PRIVILEGED_ROLE_RESTORE:
            role_restore_open_check(account)  # only roles a T2 recovery suspended
        regrant = role_regrant_seconds(  # the re-grant is time-boxed
            case_type=case_type, requested_seconds=regrant_seconds, req=req
        )
        drafted = actor.kind == PrincipalKind.AI_ASSISTANT
        case = RecoveryCase.objects.create(
            tenant=tenant,
            account=account,
            case_type=case_type,
            channel=channel,
            claimant_statement=claimant_statement[:5000],
            justification=justification.strip()[:5000],
            tier=tier,
            tier_reasons=tier_reasons,
            route=route,
            repeat_attempt=repeat,
            policy_version=policy.number,
            policy_source=policy.source,
            opened_by=actor,
            opened_by_person=actor.person_id,
            opened_via_provider_id=access.provider_id,
            # an AI assistant's case is a draft nobody has taken yet; no notice or
            # challenge leaves for it until a person takes it (case_take).
            taken_by=None if drafted else actor,
            taken_at=None if drafted else timezone.now(),
            regrant_seconds=regrant,
            correlation_id=correlation_of(findings) or uuid.uuid4(),
        )
        CallerIdentifier.objects.bulk_create(
            CallerIdentifier(tenant=tenant, case=case, kind=c.kind, digest=c.digest, hint=c.hint)
            for c in callers
        )
        opened_by = audit_actor_of(actor, access, tenant)
        record(
            action="case.opened",
            actor=opened_by,
            tenant=tenant,
            target=case,
            data={
                "account": account.external_id,
                "case_type": case_type,
                "channel": channel,
                "tier": tier,
                "tier_reasons": tier_reasons,
                "route": route,
                "route_reasons": route_reasons,
                "repeat_attempt": repeat,
                "correlation_id": str(case.correlation_id),
                "caller": {c.kind: c.hint for c in callers},
                "policy_version": policy.number,
                "policy_source": policy.source,
                "drafted_by_ai": drafted,
                **({"regrant_seconds": regrant} if regrant is not None else {}),
            },
        )
        for finding in findings:
            alert_raise(case, finding.rule, **finding.alert_data(case.correlation_id))
        delegation_request_open(
            case=case,
            mailbox=mailbox,
            requested_seconds=delegation_seconds,
            policy=policy,
            actor=opened_by,
        )
    return case


def case_taken_decision(case: RecoveryCase) -> Decision:
    """R-66: nothing leaves for a case an AI assistant drafted until a person has taken it.

    For every side effect toward the owner or an attester (codes, attestation links, proofing
    sessions): `enforce(case_taken_decision(case))`, or record the refusal with its code.
    """
    if case.taken_by_id is None:
        return Decision(
            False,
            "case.not_taken",
            "An AI assistant drafted this case; a person must take it before anything is sent "
            "for it (R-66).",
        )
    return ALLOW


def case_take(*, actor: User, case: RecoveryCase) -> RecoveryCase:
    """A person takes a case an AI assistant drafted; its side effects may start (R-66).

    Only a human who may work the case, only once, only while it is open. Records
    `case.taken`; the owner's "case opened" notice goes out now (it was held back at opening).
    """
    if actor.kind != PrincipalKind.HUMAN:
        raise PolicyDenied(
            "A person must take a drafted case; no API key or assistant can (R-66).",
            code="case.taker_not_human",
        )
    with transaction.atomic():
        case = case_locked(case)
        access = work_access(actor, case)
        transition_require(case, Move.TAKE)
        if case.taken_by_id is not None:
            raise InvalidInput(
                "This case already has a person working it; only an AI-drafted case is taken.",
                code="case.already_taken",
            )
        case.taken_by, case.taken_at = actor, timezone.now()
        case.revision += 1
        case.save(update_fields=["taken_by", "taken_at", "revision", "updated_at"])
        record(
            action="case.taken",
            actor=audit_actor_of(actor, access, case.tenant),
            tenant=case.tenant,
            target=case,
            data={"drafted_by": case.opened_by_id, "taken_at": case.taken_at},
        )
    return case

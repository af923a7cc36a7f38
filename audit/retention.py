"""Retention, legal holds and dual-authorised purges of a tenant's trail (R-48, R-51).

Nothing is ever purged on a timer. The tenant's audit_admins set how long the trail stays
online (`retention_set`, never below six months), hold all of it or one case's events for a
legal matter (`legal_hold_place`), and remove its oldest events only together: one asks
(`purge_request`), another approves with a fresh passkey step-up (`purge_approve`).

A purge removes a prefix of the chain, never a gap: the events older than the retention, up to
the first event of any held case, and never part of a case (a case whose events continue past
the boundary keeps all of them, so its evidence bundle stays whole). Before anything is removed
the chain is verified in full, and the approval is signed into a checkpoint whose statement
carries `purge` (the last seq removed and its hash) and published to the checkpoint stores,
which the database's administrator does not control: `audit.verify` accepts a chain that starts
after seq 1 only from such a checkpoint, so rows deleted any other way are still found. The
rows go through `audit_purge_through`, the app role's only way to delete audit rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from tenants.access import access_in
from tenants.choices import StepUpKind
from tenants.exceptions import DomainError, InvalidInput
from tenants.models import Tenant, User
from tenants.policies import Decision, can_administer_audit, enforce
from tenants.reasons import reason_given
from tenants.rls import tenant_scope
from tenants.stepup import StepUpProof, require_fresh_step_up

from .chain import chain_key
from .checkpoints import CheckpointError, purge_checkpoint_sign
from .context import Actor
from .integrity import integrity_refusal
from .models import AuditChainHead, AuditEvent, AuditPurge, AuditRetention, LegalHold, PurgeStatus
from .services import record
from .verify import verify_chain

RETENTION_FLOOR_DAYS = 183  # six months online at least (R-51; CISA AA22-131A)
RETENTION_CEILING_DAYS = 36_500
PURGE_STEP_UP = (StepUpKind.PASSKEY.value,)  # phishing-resistant only
OPEN = (PurgeStatus.REQUESTED, PurgeStatus.APPROVED, PurgeStatus.SIGNED)

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class PurgeSubject:
    """A kind of thing whose events a purge keeps together (a case): events with this target
    type, or whose data names it under `data_key`. Registered by the layer that owns it."""

    target_type: str
    data_key: str


_SUBJECTS: list[PurgeSubject] = []
# Rows of higher layers that point at audit events (a webhook delivery): given the tenant and
# the last seq a purge removes, each drops its rows about those events in the purge's
# transaction, or refuses (a DomainError) and nothing is removed.
PurgeDependant = Callable[[int, int], None]
_DEPENDANTS: list[PurgeDependant] = []


def purge_dependant_register(dependant: PurgeDependant) -> None:
    if dependant not in _DEPENDANTS:
        _DEPENDANTS.append(dependant)


def purge_subject_register(subject: PurgeSubject) -> None:
    """Have purges keep every event of one such subject, or none, and let holds name one."""
    if subject not in _SUBJECTS:
        _SUBJECTS.append(subject)


def _subject_filter(subject: PurgeSubject, ids: set[str]) -> Q:
    numbers = [int(i) for i in ids if i.isdigit()]
    return Q(target_type=subject.target_type, target_id__in=ids) | Q(
        **{f"data__{subject.data_key}__in": [*ids, *numbers]}
    )


# reads


def retention_days(tenant: Tenant) -> int:
    """How many days the tenant's events stay online: its own choice, else the default."""
    kept = AuditRetention.objects.filter(tenant=tenant).values_list("days", flat=True).first()
    return kept or max(settings.AUDIT_RETENTION_DAYS, RETENTION_FLOOR_DAYS)


def active_holds(tenant: Tenant) -> QuerySet[LegalHold]:
    return LegalHold.objects.filter(tenant=tenant, released_at__isnull=True).order_by("placed_at")


@dataclass(frozen=True)
class PurgePlan:
    """What a purge could remove now: events up to `through_seq` (0: none), and why it stops
    short of `cutoff` when it does."""

    cutoff: datetime
    through_seq: int
    events: int
    held_back: str = ""


def purge_plan(tenant: Tenant, *, now: datetime | None = None) -> PurgePlan:
    """The longest prefix of the chain that is older than the retention, holds no held case's
    event and splits no case."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days(tenant))
    events = AuditEvent.objects.filter(tenant=tenant)
    holds = list(active_holds(tenant))
    if any(hold.case_id is None for hold in holds):
        return PurgePlan(cutoff, 0, 0, gettext("A legal hold covers the whole trail."))
    young = events.filter(created_at__gte=cutoff).aggregate(first=Min("seq"))["first"]
    last = events.aggregate(last=Max("seq"))["last"] or 0
    through = young - 1 if young is not None else last
    held_back = ""
    for hold in holds:
        first = _first_seq(events, {str(hold.case_id)})
        if first is not None and first <= through:
            through = first - 1
            held_back = gettext("Case %(case)s is on legal hold.") % {"case": hold.case_id}
    whole = _without_split_subjects(events, through)
    if whole < through and not held_back:
        held_back = gettext("A case with newer events keeps all of its events.")
    removed = events.filter(seq__lte=whole).count() if whole > 0 else 0
    return PurgePlan(cutoff, whole if removed else 0, removed, held_back)


def _first_seq(events: QuerySet[AuditEvent], ids: set[str]) -> int | None:
    matches = Q(pk__in=[])
    for subject in _SUBJECTS:
        matches |= _subject_filter(subject, ids)
    return events.filter(matches).aggregate(first=Min("seq"))["first"]


def _without_split_subjects(events: QuerySet[AuditEvent], through: int) -> int:
    """`through`, lowered until no subject has events on both sides of it."""
    while through > 0:
        later = events.filter(seq__gt=through)
        lowest = None
        for subject in _SUBJECTS:
            ids = set(
                later.filter(target_type=subject.target_type)
                .values_list("target_id", flat=True)
                .distinct()
            )
            named = later.filter(data__has_key=subject.data_key)
            ids |= {str(v) for v in named.values_list(f"data__{subject.data_key}", flat=True)}
            if not ids:
                continue
            first = (
                events.filter(seq__lte=through)
                .filter(_subject_filter(subject, ids))
                .aggregate(first=Min("seq"))["first"]
            )
            if first is not None:
                lowest = first if lowest is None else min(lowest, first)
        if lowest is None:
            return through
        through = lowest - 1
    return 0


def purge_challenge(purge: AuditPurge) -> bytes:
    """What the approver's passkey signs: this purge, as it was asked for, and no other."""
    text = (
        f"vouchsafe.audit-purge:{purge.pk}:{purge.tenant_id}:{purge.requested_by_id}:"
        f"{purge.through_seq}:{purge.requested_at.isoformat()}"
    )
    return hashlib.sha256(text.encode()).digest()


def may_administer_audit(actor: User, tenant: Tenant) -> Decision:
    return can_administer_audit(access_in(actor, tenant))


# writes


def _in_tenant(tenant: Tenant, act: Callable[[], _Result]) -> _Result:
    with tenant_scope([tenant.pk]):
        return act()


def _actor(actor: User, tenant: Tenant) -> Actor:
    return Actor.for_user(actor, organisation=tenant.name)


def retention_set(*, actor: User, tenant: Tenant, days: int) -> AuditRetention:
    """Keep the tenant's events online for `days` (at least six months)."""
    enforce(may_administer_audit(actor, tenant))
    if not RETENTION_FLOOR_DAYS <= days <= RETENTION_CEILING_DAYS:
        raise InvalidInput(
            f"Keep the trail between {RETENTION_FLOOR_DAYS} days (six months) and "
            f"{RETENTION_CEILING_DAYS} days.",
            code="audit.retention_out_of_range",
            field_errors={
                "days": [f"Between {RETENTION_FLOOR_DAYS} and {RETENTION_CEILING_DAYS}."]
            },
        )

    def act() -> AuditRetention:
        before = retention_days(tenant)
        kept, _created = AuditRetention.objects.update_or_create(
            tenant=tenant, defaults={"days": days, "set_by": actor, "set_at": timezone.now()}
        )
        record(
            action="audit.retention_set",
            actor=_actor(actor, tenant),
            tenant=tenant,
            data={"days": days, "before": before},
        )
        return kept

    return _in_tenant(tenant, act)


def legal_hold_place(
    *, actor: User, tenant: Tenant, reason: str, case_id: int | None = None
) -> LegalHold:
    """Hold the whole trail (no case) or one case's events until the hold is released."""
    enforce(may_administer_audit(actor, tenant))
    reason = reason_given(
        reason,
        minimum=1,
        code="audit.hold_reason_required",
        ask="Say why the trail is held (the matter or its reference).",
    )

    def act() -> LegalHold:
        if (
            case_id is not None
            and _first_seq(AuditEvent.objects.filter(tenant=tenant), {str(case_id)}) is None
        ):
            raise InvalidInput(
                f"This tenant's trail has no events of case {case_id}.",
                code="audit.hold_unknown_case",
                field_errors={"case_id": ["No such case in this trail."]},
            )
        hold = LegalHold.objects.create(
            tenant=tenant,
            case_id=case_id,
            reason=reason[:300],
            placed_by=actor,
            placed_at=timezone.now(),
        )
        record(
            action="audit.legal_hold_placed",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=hold,
            data={"hold": hold.pk, "held_case": case_id, "reason": hold.reason},
        )
        return hold

    return _in_tenant(tenant, act)


def legal_hold_release(*, actor: User, tenant: Tenant, hold_id: int) -> LegalHold:
    enforce(may_administer_audit(actor, tenant))

    def act() -> LegalHold:
        hold = LegalHold.objects.select_for_update().filter(tenant=tenant, pk=hold_id).first()
        if hold is None or not hold.active:
            raise InvalidInput(
                "This legal hold is not in force; reload the page.",
                code="audit.hold_not_active",
            )
        hold.released_by, hold.released_at = actor, timezone.now()
        hold.save(update_fields=["released_by", "released_at"])
        record(
            action="audit.legal_hold_released",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=hold,
            data={"hold": hold.pk, "held_case": hold.case_id},
        )
        return hold

    return _in_tenant(tenant, act)


def _nothing_to_purge(plan: PurgePlan) -> InvalidInput:
    why = f" {plan.held_back}" if plan.held_back else ""
    return InvalidInput(
        f"No event can be purged: none is older than the retention period and free of "
        f"legal holds.{why}",
        code="audit.purge_nothing",
    )


def purge_request(*, actor: User, tenant: Tenant, reason: str) -> AuditPurge:
    """Ask for the events `purge_plan` allows to be removed; another audit_admin approves."""
    enforce(may_administer_audit(actor, tenant))
    reason = reason_given(
        reason, minimum=1, code="audit.purge_reason_required", ask="Say why the events are purged."
    )

    def act() -> AuditPurge:
        if AuditPurge.objects.select_for_update().filter(tenant=tenant, status__in=OPEN).exists():
            raise InvalidInput(
                "A purge of this trail is already open; approve or cancel it first.",
                code="audit.purge_pending",
            )
        plan = purge_plan(tenant)
        if not plan.through_seq:
            raise _nothing_to_purge(plan)
        purge = AuditPurge.objects.create(
            tenant=tenant,
            status=PurgeStatus.REQUESTED,
            through_seq=plan.through_seq,
            cutoff=plan.cutoff,
            reason=reason[:300],
            requested_by=actor,
            requested_at=timezone.now(),
        )
        record(
            action="audit.purge_requested",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=purge,
            data=_purge_data(purge) | {"events": plan.events},
        )
        return purge

    return _in_tenant(tenant, act)


def _purge_data(purge: AuditPurge) -> dict[str, Any]:
    return {
        "purge": purge.pk,
        "through_seq": purge.through_seq,
        "cutoff": purge.cutoff.isoformat(),
        "reason": purge.reason,
    }


def _open_purge(tenant: Tenant, purge_id: int, status: str) -> AuditPurge:
    purge = (
        AuditPurge.objects.select_for_update(of=("self",))
        .select_related("requested_by", "decided_by")
        .filter(tenant=tenant, pk=purge_id)
        .first()
    )
    if purge is None or purge.status != status:
        raise InvalidInput(
            "This purge is not waiting for that any more; reload the page.",
            code="audit.purge_not_open",
        )
    return purge


def purge_cancel(*, actor: User, tenant: Tenant, purge_id: int) -> AuditPurge:
    """Drop a purge nobody has approved yet (either audit_admin may)."""
    enforce(may_administer_audit(actor, tenant))

    def act() -> AuditPurge:
        purge = _open_purge(tenant, purge_id, PurgeStatus.REQUESTED)
        purge.status, purge.decided_by, purge.decided_at = (
            PurgeStatus.CANCELLED,
            actor,
            timezone.now(),
        )
        purge.save(update_fields=["status", "decided_by", "decided_at"])
        record(
            action="audit.purge_cancelled",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=purge,
            data=_purge_data(purge),
        )
        return purge

    return _in_tenant(tenant, act)


def purge_approve(
    *, actor: User, tenant: Tenant, purge_id: int, step_up: StepUpProof | None
) -> AuditPurge:
    """The second audit_admin's approval with a fresh passkey step-up, then `purge_execute`.

    The chain is verified in full first; a purge of a trail that does not verify (or of a
    tenant failing closed) is refused, so a purge cannot remove the evidence of tampering.
    The boundary is planned again and only ever lowered (a hold placed since keeps its case).
    """
    enforce(may_administer_audit(actor, tenant))
    if refusal := integrity_refusal(tenant, what="Purging the audit trail"):
        raise refusal
    report = _in_tenant(tenant, lambda: verify_chain(tenant.pk, tenant.slug))
    if not report.intact:
        raise InvalidInput(
            f"The trail does not verify from entry {report.first_bad_seq} ({report.reason}); "
            f"it cannot be purged.",
            code="audit.purge_chain_broken",
        )

    def act() -> AuditPurge:
        purge = _open_purge(tenant, purge_id, PurgeStatus.REQUESTED)
        if actor.pk == purge.requested_by_id or actor.person_id == purge.requested_by.person_id:
            raise InvalidInput(
                "A purge needs a second audit admin: you asked for this one.",
                code="audit.purge_same_person",
            )
        plan = purge_plan(tenant)
        through = min(purge.through_seq, plan.through_seq)
        if not through:
            raise _nothing_to_purge(plan)
        proof = require_fresh_step_up(step_up, actor, kinds=PURGE_STEP_UP)
        purge.through_seq = through
        purge.through_hash = (
            AuditEvent.objects.filter(tenant=tenant, seq=through)
            .values_list("hash", flat=True)
            .get()
        )
        purge.status, purge.decided_by, purge.decided_at = (
            PurgeStatus.APPROVED,
            actor,
            timezone.now(),
        )
        purge.save(
            update_fields=["through_seq", "through_hash", "status", "decided_by", "decided_at"]
        )
        record(
            action="audit.purge_approved",
            actor=_actor(actor, tenant),
            tenant=tenant,
            target=purge,
            data=_purge_data(purge)
            | {
                "hash": purge.through_hash,
                "requested_by": purge.requested_by_id,
                "step_up": proof.audit_data(),
            },
        )
        return purge

    purge = _in_tenant(tenant, act)
    return purge_execute(actor=actor, tenant=tenant, purge_id=purge.pk)


def purge_execute(*, actor: User, tenant: Tenant, purge_id: int) -> AuditPurge:
    """Carry out an approved purge: sign its checkpoint unless it is signed, then remove the
    rows and record `audit.purged`, in one transaction. Run again after a failure (a store
    that kept nothing, a database error): each step is done once."""
    enforce(may_administer_audit(actor, tenant))
    purge = _in_tenant(
        tenant, lambda: AuditPurge.objects.filter(tenant=tenant, pk=purge_id).first()
    )
    if purge is not None and purge.status == PurgeStatus.APPROVED:
        _sign(actor, tenant, purge)
    return _in_tenant(tenant, lambda: _remove(actor, tenant, purge_id))


def _sign(actor: User, tenant: Tenant, purge: AuditPurge) -> None:
    head = _in_tenant(tenant, lambda: AuditChainHead.objects.get(key=chain_key(tenant.pk)))
    statement = {
        "purge": purge.pk,
        "through_seq": purge.through_seq,
        "hash": purge.through_hash,
        "requested_by": purge.requested_by_id,
        "approved_by": purge.decided_by_id,
    }
    try:  # the scope lets the checkpoint's record into the tenant's chain; no head is locked
        checkpoint, run = _in_tenant(
            tenant,
            lambda: purge_checkpoint_sign(head=head, purge=statement, actor=_actor(actor, tenant)),
        )
    except CheckpointError as error:
        raise DomainError(f"The purge could not be signed: {error}", code=error.code) from None
    if checkpoint is None:
        failures = "; ".join(f"{store}: {error}" for store, _chain, error in run.failures)
        raise DomainError(
            f"No checkpoint store kept the purge's signed checkpoint ({failures}); nothing was "
            f"removed. Run the purge again once a store is back.",
            code="audit.purge_not_signed",
        )

    def act() -> None:
        locked = _open_purge(tenant, purge.pk, PurgeStatus.APPROVED)
        locked.status, locked.checkpoint_digest = PurgeStatus.SIGNED, checkpoint.digest
        locked.save(update_fields=["status", "checkpoint_digest"])

    _in_tenant(tenant, act)


def _remove(actor: User, tenant: Tenant, purge_id: int) -> AuditPurge:
    purge = _open_purge(tenant, purge_id, PurgeStatus.SIGNED)
    for dependant in _DEPENDANTS:
        dependant(tenant.pk, purge.through_seq)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT audit_purge_through(%s)", [purge.pk])
            removed = int(cursor.fetchone()[0])
    else:  # the embedded SQLite default has no triggers to pass
        removed, _kinds = AuditEvent.objects.filter(
            tenant=tenant, seq__lte=purge.through_seq
        ).delete()
    purge.status, purge.removed, purge.executed_at = PurgeStatus.EXECUTED, removed, timezone.now()
    purge.save(update_fields=["status", "removed", "executed_at"])
    record(
        action="audit.purged",
        actor=_actor(actor, tenant),
        tenant=tenant,
        target=purge,
        data=_purge_data(purge)
        | {"removed": removed, "hash": purge.through_hash, "checkpoint": purge.checkpoint_digest},
    )
    return purge

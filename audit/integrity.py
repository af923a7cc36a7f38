"""Failing closed on a broken chain (R-44, R-46; issue 15 part 3).

The verifier's reports become one `ChainIntegrity` row per chain (`integrity_apply`, inside the
verifier's transaction). A new finding is recorded as `audit.integrity_violation` in the
platform chain (and `audit.integrity_failing` in the tenant's own chain, so its webhook
subscribers and SIEM stream hear of it), then paged to the audit_admins and the tenant's
security contact by the worker (`integrity_page_pending`).

While a finding of the tenant's chain, or of the platform chain, is not acknowledged
(`integrity_failing`), the services refuse T1/T2 executions and policy activations in that
tenant with `ChainIntegrityFailing` (`audit.integrity_failing`); T0 executions go on. Only an
audit_admin with a fresh passkey step-up acknowledges a finding (`integrity_acknowledge`,
recorded in the platform chain). The same finding reported again stays acknowledged; a
different one fails closed again. The rows a finding puts in doubt stay untrusted for good
(`untrusted_windows`), acknowledged or not.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext

from tenants.access import access_in
from tenants.choices import PrincipalKind, Role, StepUpKind
from tenants.exceptions import DomainError, InvalidInput, PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import Decision, can_acknowledge_integrity, enforce
from tenants.principals import ai_blocked
from tenants.rls import system_scope
from tenants.routes import security_contacts
from tenants.selectors import tenant_people
from tenants.stepup import StepUpProof, require_fresh_step_up

from .chain import chain_key
from .context import Actor
from .models import AuditEvent, ChainIntegrity
from .services import record
from .verify import ChainReport

logger = logging.getLogger(__name__)

PLATFORM = "platform"  # the platform chain's key, and its label in verification reports
VIOLATION = "audit.integrity_violation"
ACKNOWLEDGE_STEP_UP = (StepUpKind.PASSKEY.value,)  # phishing-resistant only
PLATFORM_PERMISSION = "acknowledge_platform_integrity"
_VERIFIER = Actor.system("audit-verifier")
_PAGER = Actor.system("audit-pager")


class ChainIntegrityFailing(PolicyDenied):
    """A privileged act refused because the tenant's trail (or the platform's) is not trusted."""

    code = "audit.integrity_failing"


# the verifier's reports


def _finding_data(state: ChainIntegrity, label: str) -> dict[str, Any]:
    return {
        "chain": label,
        "key": state.key,
        "first_bad_seq": state.first_bad_seq,
        "reason": state.reason,
        "window": list(state.window) if state.window else None,
    }


def _acknowledgement_clear(state: ChainIntegrity) -> None:
    state.acknowledged_by = state.acknowledged_at = state.acknowledged_event_seq = None
    state.acknowledged_seq, state.acknowledged_reason = None, ""


def acknowledged_findings() -> dict[str, set[tuple[int, str]]]:
    """Per chain key, the (first_bad_seq, reason) of every finding ever acknowledged (from the
    platform chain's `audit.integrity_acknowledged`): the verifier steps over them."""
    found: dict[str, set[tuple[int, str]]] = {}
    events = AuditEvent.objects.filter(tenant__isnull=True, action="audit.integrity_acknowledged")
    for data in events.values_list("data", flat=True):
        found.setdefault(data["key"], set()).add((data["first_bad_seq"], data["reason"]))
    return found


def _report_applied(
    report: ChainReport,
    tenant: Tenant | None,
    now: datetime,
    acknowledged: Collection[tuple[int, str]],
) -> ChainIntegrity | None:
    """Write one report on its chain's row; the row when it carries a new finding. A report of
    a finding acknowledged before (when nothing newer is wrong) leaves the row's finding be."""
    key = chain_key(tenant.pk if tenant else None)
    state = ChainIntegrity.objects.select_for_update().filter(key=key).first()
    finding = (report.first_bad_seq, report.reason)
    current = state is not None and (state.first_bad_seq, state.reason) == finding
    if report.intact or (state is not None and finding in acknowledged and not current):
        if state is not None:
            state.broken, state.checked_at = not report.intact, now
            state.save(update_fields=["broken", "checked_at"])
        return None
    created = state is None
    if state is None:
        state = ChainIntegrity(key=key, tenant=tenant)
    is_new = (state.first_bad_seq, state.reason) != (report.first_bad_seq, report.reason)
    state.broken, state.checked_at = True, now
    state.first_bad_seq, state.reason = report.first_bad_seq, report.reason
    first = report.first_bad_seq or 1
    state.window_start, state.window_end = report.window or (first, first)
    if is_new:
        violation = record(
            action=VIOLATION, actor=_VERIFIER, data=_finding_data(state, report.chain)
        )
        state.detected_at, state.finding_event_seq, state.paged_at = now, violation.seq, None
        _acknowledgement_clear(state)  # acknowledged before another came: needed again
        if tenant is not None:
            data = _finding_data(state, report.chain)
            record(action="audit.integrity_failing", actor=_VERIFIER, tenant=tenant, data=data)
    state.save(force_insert=created)
    return state if is_new else None


def integrity_apply(
    reports: Iterable[ChainReport],
    acknowledged: Mapping[str, Collection[tuple[int, str]]] | None = None,
) -> list[ChainIntegrity]:
    """Bring each chain's integrity row up to the verifier's reports; the rows with a new
    finding (each recorded as `audit.integrity_violation` in the platform chain).

    A broken report with the row's finding (acknowledged or not) changes only its window; an
    intact one never clears a finding (only an acknowledgement lifts the refusals). Runs in
    system scope: the tenant chains' events are written whatever scope the caller had.
    """
    reports = list(reports)
    found: list[ChainIntegrity] = []
    now = timezone.now()
    with system_scope():
        ids = [_tenant_id(report.key) for report in reports if report.key != PLATFORM]
        tenants = {tenant.pk: tenant for tenant in Tenant.objects.filter(pk__in=ids)}
        for report in reports:
            tenant = None if report.key == PLATFORM else tenants.get(_tenant_id(report.key))
            if report.key != PLATFORM and tenant is None:
                continue  # a chain whose tenant row is gone: reported, nobody to refuse
            earlier = (acknowledged or {}).get(report.key, ())
            state = _report_applied(report, tenant, now, earlier)
            if state is not None:
                found.append(state)
    return found


def _tenant_id(key: str) -> int:
    """The tenant of a `tenant:<id>` chain key."""
    return int(key.split(":", 1)[1])


# reads


def integrity_failing(tenant: Tenant) -> ChainIntegrity | None:
    """The unacknowledged finding that makes `tenant` fail closed: its own chain's first, else
    the platform chain's; None when both are trusted."""
    keys = [chain_key(tenant.pk), PLATFORM]
    states = ChainIntegrity.objects.filter(key__in=keys, first_bad_seq__isnull=False)
    failing = [state for state in states if state.failing]
    failing.sort(key=lambda state: keys.index(state.key))
    return failing[0] if failing else None


def integrity_refusal(tenant: Tenant, *, what: str) -> ChainIntegrityFailing | None:
    """The refusal of a privileged act (`what`) in `tenant` while it fails closed, or None."""
    state = integrity_failing(tenant)
    if state is None:
        return None
    chain = gettext("the platform") if state.key == PLATFORM else gettext("this tenant")
    return ChainIntegrityFailing(
        gettext(
            "The audit trail of %(chain)s failed verification (from entry %(seq)s): %(what)s "
            "is paused until an audit admin acknowledges the finding."
        )
        % {"chain": chain, "seq": state.first_bad_seq, "what": what}
    )


def untrusted_windows(tenant: Tenant) -> list[tuple[int, int]]:
    """The (first, last) seqs of the tenant's chain that a finding put in doubt, merged and in
    order: every finding ever recorded for it (acknowledging one does not make its rows
    trustworthy again), with the current finding's window as the last run reported it."""
    key = chain_key(tenant.pk)
    events = AuditEvent.objects.filter(tenant__isnull=True, action=VIOLATION).filter(
        Q(data__key=key) | Q(data__key__isnull=True, data__chain=tenant.slug)
    )
    windows = [tuple(data.get("window") or ()) for data in events.values_list("data", flat=True)]
    windows = [window for window in windows if len(window) == 2]  # older events have none
    current = ChainIntegrity.objects.filter(key=key).first()
    if current is not None and current.window:
        windows.append(current.window)
    merged: list[tuple[int, int]] = []
    for first, last in sorted((int(a), int(b)) for a, b in windows):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


# who is an audit_admin


def platform_audit_admins() -> QuerySet[User]:
    """Active people granted the platform chain's acknowledgement (a permission of their own
    or of a group they are in; being a superuser alone does not make one)."""
    permission = Permission.objects.filter(
        codename=PLATFORM_PERMISSION, content_type__app_label="audit"
    ).first()
    return User.objects.filter(
        Q(user_permissions=permission) | Q(groups__permissions=permission),
        is_active=True,
        kind=PrincipalKind.HUMAN,
    ).distinct()


def platform_audit_admin_set(*, actor: User, user: User, enabled: bool) -> None:
    """A platform operator makes `user` a platform audit admin, or ends it (R-48): recorded
    as `audit.platform_admin_changed`. Never for oneself, never for a non-human principal."""
    if not (actor.is_active and actor.is_superuser):
        raise PolicyDenied(
            "Only a platform operator may do this.", code="platform.operator_required"
        )
    if user.pk == actor.pk or user.person_id == actor.person_id:
        raise PolicyDenied(
            "A platform operator cannot make themselves a platform audit admin.",
            code="audit.admin_self_grant",
        )
    if not user.is_human:
        raise InvalidInput(
            "Only a person can be a platform audit admin.", code="audit.admin_not_human"
        )
    permission = Permission.objects.get(
        codename=PLATFORM_PERMISSION, content_type__app_label="audit"
    )
    with transaction.atomic():
        if enabled:
            user.user_permissions.add(permission)
        else:
            user.user_permissions.remove(permission)
        record(
            action="audit.platform_admin_changed",
            actor=Actor.for_user(actor, organisation=PLATFORM),
            target=user,
            data={"user": user.get_username(), "enabled": enabled},
        )


def may_acknowledge_integrity(actor: User, key: str, tenant: Tenant | None) -> Decision:
    """Whether `actor` may acknowledge a finding of chain `key` (of `tenant`): the tenant's own
    audit_admin for a tenant chain, a platform audit admin for the platform chain."""
    if key != PLATFORM:
        return can_acknowledge_integrity(access_in(actor, tenant))
    if platform_audit_admins().filter(pk=actor.pk).exists():
        return Decision(True, "ok")
    return Decision(
        False,
        "audit.platform_admin_required",
        gettext("Only a platform audit admin may acknowledge a finding of the platform chain."),
    )


# acknowledging


@contextmanager
def _refusal_recorded(actor: User, key: str):
    """Record a refused acknowledgement in the platform chain (after its rollback), re-raise."""
    try:
        yield
    except DomainError as refusal:
        with transaction.atomic():
            record(
                action="audit.integrity_acknowledge_refused",
                actor=Actor.for_user(actor, organisation=PLATFORM),
                data={"key": key[:40], "code": refusal.code},
            )
        raise


def integrity_acknowledge(
    *, actor: User, chain: str, finding: int, step_up: StepUpProof | None
) -> ChainIntegrity:
    """An audit_admin acknowledges the finding of `chain` (its key, `platform` or
    `tenant:<id>`) they were shown, `finding` being the platform seq of its
    `audit.integrity_violation`; the tenant works again.

    A tenant chain's finding is for the tenant's own audit_admin, the platform chain's for a
    platform audit admin; either proves a fresh passkey step-up (a TOTP code is refused),
    spent here. Recorded as `audit.integrity_acknowledged` in the platform chain; a refusal
    as `audit.integrity_acknowledge_refused`.
    """
    with _refusal_recorded(actor, chain), transaction.atomic():
        enforce(ai_blocked(actor, "acknowledge an audit integrity finding"))
        state = (
            ChainIntegrity.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .filter(key=chain, first_bad_seq__isnull=False)
            .first()
        )
        if state is None:
            raise InvalidInput(
                "This audit chain has no finding to acknowledge.", code="audit.integrity_no_finding"
            )
        enforce(may_acknowledge_integrity(actor, state.key, state.tenant))
        if state.finding_event_seq != finding:
            raise InvalidInput(
                "The chain has a newer finding than the one you saw; review it first.",
                code="audit.integrity_finding_changed",
            )
        if not state.failing:
            raise InvalidInput(
                "This finding is already acknowledged.",
                code="audit.integrity_already_acknowledged",
            )
        proof = require_fresh_step_up(step_up, actor, kinds=ACKNOWLEDGE_STEP_UP)
        organisation = state.tenant.name if state.tenant else PLATFORM
        event = record(
            action="audit.integrity_acknowledged",
            actor=Actor.for_user(actor, organisation=organisation),
            data={
                "key": state.key,
                "first_bad_seq": state.first_bad_seq,
                "reason": state.reason,
                "finding": state.finding_event_seq,
                "step_up": proof.audit_data(),
            },
        )
        state.acknowledged_by, state.acknowledged_at = actor, event.created_at
        state.acknowledged_seq, state.acknowledged_reason = state.first_bad_seq, state.reason
        state.acknowledged_event_seq = event.seq
        state.save(
            update_fields=[
                "acknowledged_by",
                "acknowledged_at",
                "acknowledged_seq",
                "acknowledged_reason",
                "acknowledged_event_seq",
            ]
        )
    return state


# paging


def _page_text(state: ChainIntegrity) -> tuple[str, str]:
    chain = state.tenant.slug if state.tenant else PLATFORM
    subject = gettext("Vouchsafe: the audit trail of %(chain)s failed verification") % {
        "chain": chain
    }
    body = gettext(
        "The audit verifier found the %(chain)s chain broken from entry %(seq)s "
        "(entries %(first)s to %(last)s can no longer be trusted): %(reason)s\n\n"
        "Until an audit admin acknowledges this finding in Vouchsafe with a passkey step-up, "
        "T1 and T2 recoveries and policy activations are refused%(where)s."
    ) % {
        "chain": chain,
        "seq": state.first_bad_seq,
        "first": state.window_start,
        "last": state.window_end,
        "reason": state.reason,
        "where": gettext(" in every tenant") if state.tenant is None else "",
    }
    return subject, body


def _page_recipients(state: ChainIntegrity, contacts: list[str]) -> list[tuple[str, str]]:
    """(address, language) of each audit_admin to page, then the tenant's security contact."""
    people = list(platform_audit_admins())
    if state.tenant_id is not None:
        people += list(tenant_people(state.tenant_id, [Role.AUDIT_ADMIN]))
    recipients = {person.email: person.language for person in people if person.email}
    for contact in contacts:
        recipients.setdefault(contact, "")
    return list(recipients.items())


def integrity_page(*, key: str) -> bool:
    """Page one chain's unpaged finding: e-mail each recipient, then mark it paged and record
    `audit.integrity_paged`, in one transaction under the row's lock. A send that fails rolls
    it back for the next run to retry (a page may repeat, never be lost). False when there
    was nothing to page (already paged, or being paged by another worker)."""
    with system_scope():
        state = (
            ChainIntegrity.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("tenant")
            .filter(key=key, paged_at__isnull=True, first_bad_seq__isnull=False)
            .first()
        )
        if state is None:
            return False
        contacts = security_contacts(state.tenant_id) if state.tenant_id is not None else []
        recipients = _page_recipients(state, contacts)
        for address, language in recipients:
            with translation.override(language or settings.LANGUAGE_CODE):
                subject, body = _page_text(state)
            if EmailMessage(subject=subject, body=body, to=[address]).send() != 1:
                raise ConnectionError(f"the mail server did not accept the page to {address}")
        state.paged_at = timezone.now()
        state.save(update_fields=["paged_at"])
        record(
            action="audit.integrity_paged",
            actor=_PAGER,
            data={
                "key": state.key,
                "finding": state.finding_event_seq,
                "recipients": len(recipients),
                "security_contacts": len(contacts),
            },
        )
    return True


def integrity_page_pending() -> int:
    """Page every finding not paged yet (the verifier calls it after each run, so a page that
    failed is retried); how many were paged."""
    pending = ChainIntegrity.objects.filter(paged_at__isnull=True, first_bad_seq__isnull=False)
    paged = 0
    for key in pending.values_list("key", flat=True):
        try:
            paged += integrity_page(key=key)
        except Exception:
            logger.exception("integrity finding of %s not paged; the next run retries", key)
    return paged

"""Enrolment in the owner portal: a one-time link to an address on record, and who may have one.

An owner enrols (passkeys, saved codes) in a session opened by a link sent to an email address
or mobile phone the system of record has held past the quarantine (R-03, R-04). No link is
sent, and none opens, while the account has a recovery case in progress, is frozen, or had a
contact added, removed or re-SIMmed inside its quarantine: that is when an attacker would enrol.
The link is single use (compare-and-set) and expires by database time; only its SHA-256 is kept.

An account-level "this wasn't me" (`account_repudiate`) freezes the account and takes back the
portal credentials registered in the last quarantine window.

Every function owns its transaction and records its audit events in it; refusals that must
stay on record commit before they are raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.context import Actor
from audit.services import record
from tenants.access import access_in
from tenants.choices import CaseType, Role
from tenants.exceptions import PolicyDenied
from tenants.models import Tenant, User
from tenants.policies import Decision, enforce
from tenants.rls import system_scope, tenant_scope

from ..cases.access_rules import tier_in_grant
from ..cases.choices import OPEN_STATUSES, CaseStatus
from ..cases.models import RecoveryCase
from ..choices import PHONE_KINDS, ContactKind
from ..messaging import message_send
from ..models import ContactMethod, ProtectedAccount
from ..notifications.models import OwnerNotice
from ..policy.selectors import policy_active
from .choices import PasskeyStatus, PortalSessionKind, PortalSessionStatus
from .models import OwnerPasskey, OwnerPortalSession, RecoveryCodeSet
from .sessions import OWNER, portal_session_activate

LINK_PATH = "owner/enrol"
TOKEN_BYTES = 32
# A case in these states holds the account: no enrolment until it has ended (an executed case
# still has its recovery access live).
HOLDING_STATUSES = frozenset({*OPEN_STATUSES, CaseStatus.EXECUTED})
LINK_KINDS = (ContactKind.EMAIL, ContactKind.MOBILE)  # what can carry a link, in this order
INVITERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SECURITY_OFFICER, Role.TENANT_ADMIN})

LINK_INVALID = "enrolment.link_invalid"


def _messages() -> dict[str, str]:
    return {
        "enrolment.open_case": _(
            "A recovery of this account is in progress. Enrolment is possible again once it "
            "has ended."
        ),
        "enrolment.account_frozen": _(
            "This account is frozen. Your security team must release it before you can enrol."
        ),
        "enrolment.contact_in_quarantine": _(
            "A contact method of this account was added or changed recently. For your "
            "protection, enrolment is possible again once the waiting period has passed."
        ),
        "enrolment.no_address": _(
            "No email address or mobile phone on record can receive an enrolment link."
        ),
        "enrolment.channel_not_allowed": _(
            "That contact method cannot receive an enrolment link: it must be an email address "
            "or mobile phone of this account, on record past the waiting period."
        ),
        "enrolment.delivery_failed": _("The enrolment link could not be delivered."),
        LINK_INVALID: _("This link is not valid, was already used or has expired."),
    }


class EnrolmentRefused(PolicyDenied):
    """A stable `code` (enrolment.*) and a sentence for the person."""

    code = "enrolment.refused"

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or _messages().get(code, _messages()[LINK_INVALID]), code=code)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _db_now(account: ProtectedAccount) -> datetime:
    """Database time (PostgreSQL or SQLite), so expiry is set by the clock that checks it."""
    return (
        ProtectedAccount.objects.for_tenant(account.tenant)
        .filter(pk=account.pk)
        .annotate(db_now=Now())
        .values_list("db_now", flat=True)
        .get()
    )


def account_quarantine_seconds(account: ProtectedAccount) -> int:
    """The account's quarantine (R-04): the longest the policy sets for its tier, any case type
    (an enrolment is not a case, so the strictest window applies)."""
    policy = policy_active(account.tenant)
    return max(policy.requirements(account.tier, t).quarantine_seconds for t in CaseType.values)


def _session_contacts(session: OwnerPortalSession | None) -> Q:
    """The portal credentials `session` itself registered (they do not block it)."""
    if session is None:
        return Q(pk__in=[])
    passkeys = OwnerPasskey.objects.for_tenant(session.tenant).filter(registered_in=session)
    code_sets = RecoveryCodeSet.objects.for_tenant(session.tenant).filter(registered_in=session)
    return Q(pk__in=passkeys.values("contact_id")) | Q(pk__in=code_sets.values("contact_id"))


def enrolment_problem(
    account: ProtectedAccount,
    *,
    session: OwnerPortalSession | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why the account may not enrol now (a stable code), or None. Pure read.

    A contact the enrolment `session` registered itself does not count as a change, so an owner
    can add a passkey and then saved codes in one sitting.
    """
    if account.frozen_at is not None:
        return "enrolment.account_frozen"
    cases = RecoveryCase.objects.for_tenant(account.tenant).filter(account=account)
    if cases.filter(status__in=HOLDING_STATUSES).exists():
        return "enrolment.open_case"
    start = (now or timezone.now()) - timedelta(seconds=account_quarantine_seconds(account))
    changed = (
        ContactMethod.objects.for_tenant(account.tenant)
        .filter(account=account)
        .filter(
            Q(registered_at__gt=start)
            | Q(replaced_at__gt=start)
            | Q(sim_changed_at__gt=start, kind__in=PHONE_KINDS)
        )
        .exclude(_session_contacts(session))
    )
    if changed.exists():
        return "enrolment.contact_in_quarantine"
    return None


def session_live(
    session: OwnerPortalSession, kinds: tuple[str, ...] | frozenset[str]
) -> OwnerPortalSession:
    """The session as the database has it now (active, unexpired, of one of `kinds`), or a
    refusal: a write re-reads it inside its own transaction rather than trust the request's."""
    live = (
        OwnerPortalSession.objects.for_tenant(session.tenant)
        .select_related("tenant", "account")
        .filter(pk=session.pk, status=PortalSessionStatus.ACTIVE, expires_at__gt=Now())
        .first()
    )
    if live is None or live.kind not in kinds:
        raise EnrolmentRefused("owner.session_expired", _("Your session has ended."))
    return live


def change_check(session: OwnerPortalSession, account: ProtectedAccount) -> None:
    """May this session add or remove a portal credential now? Enrolment sessions follow the
    enrolment rules (`enrolment_problem`, minus what the session itself registered); an
    artifact session is bound to its own executed case, so only a freeze stops it."""
    if session.kind == PortalSessionKind.ARTIFACT:
        if account.frozen_at is not None:
            raise EnrolmentRefused("enrolment.account_frozen")
        return
    if problem := enrolment_problem(account, session=session):
        raise EnrolmentRefused(problem)


def link_destinations(account: ProtectedAccount) -> list[ContactMethod]:
    """Addresses on record that may carry an enrolment link: email first, then mobile."""
    start = timezone.now() - timedelta(seconds=account_quarantine_seconds(account))
    rows = (
        ContactMethod.objects.for_tenant(account.tenant)
        .filter(
            account=account,
            kind__in=LINK_KINDS,
            replaced_at__isnull=True,
            is_notification=True,
            registered_at__lte=start,
        )
        .exclude(sim_changed_at__gt=start)
        .order_by("pk")
    )
    return sorted(rows, key=lambda c: LINK_KINDS.index(c.kind))


def _refusal(account: ProtectedAccount, who: Actor, code: str, **data: object) -> EnrolmentRefused:
    """Record a refused enrolment on the account and return the refusal to raise."""
    record(
        action="owner.enrolment_refused",
        actor=who,
        tenant=account.tenant,
        target=account,
        data={"account": account.pk, "code": code, **data},
    )
    return EnrolmentRefused(code)


def _message(account: ProtectedAccount, link: str, expires_at: datetime) -> tuple[str, str]:
    """The enrolment message: what it is for, until when, and what to do if unexpected."""
    subject = _("Set up account recovery")
    body = _(
        "Use this link to set up how you will prove it is you if you ever lose access to "
        "%(account)s (passkeys and saved recovery codes):\n\n%(link)s\n\n"
        "It works once, until %(until)s UTC. If you did not ask for it, ignore this message: "
        "nothing changes unless the link is opened. Nobody from the service desk will ever ask "
        "you for this link."
    ) % {"account": account.username, "link": link, "until": f"{expires_at:%Y-%m-%d %H:%M}"}
    return subject, body


def enrolment_link_send(
    *,
    account: ProtectedAccount,
    who: Actor,
    via: str,
    contact: ContactMethod | None = None,
) -> OwnerPortalSession:
    """Send a one-time enrolment link to an address on record (`contact`, chosen by id, or the
    first email, else mobile) and return the pending session. A newer link ends older ones.

    Refused (`EnrolmentRefused`, recorded as `owner.enrolment_refused`) while a case holds the
    account, it is frozen, a contact changed inside the quarantine, or no address can carry it.
    """
    refusal: EnrolmentRefused | None = None
    with tenant_scope([account.tenant_id]):
        account = (
            ProtectedAccount.objects.for_tenant(account.tenant)
            .select_for_update()
            .select_related("tenant")
            .get(pk=account.pk)
        )
        problem = enrolment_problem(account)
        destinations = link_destinations(account) if problem is None else []
        if problem is None and contact is not None:
            chosen = next((c for c in destinations if c.pk == contact.pk), None)
            if chosen is None:
                problem = "enrolment.channel_not_allowed"
        elif problem is None:
            chosen = destinations[0] if destinations else None
            if chosen is None:
                problem = "enrolment.no_address"
        if problem is not None:
            refusal = _refusal(account, who, problem, via=via)
        else:
            session = _link_create(account=account, contact=chosen, who=who, via=via)
            if session.status != PortalSessionStatus.PENDING:
                refusal = EnrolmentRefused("enrolment.delivery_failed")
    if refusal is not None:
        raise refusal
    return session


def _link_create(
    *, account: ProtectedAccount, contact: ContactMethod, who: Actor, via: str
) -> OwnerPortalSession:
    pending = OwnerPortalSession.objects.for_tenant(account.tenant).filter(
        account=account, kind=PortalSessionKind.ENROLMENT, status=PortalSessionStatus.PENDING
    )
    superseded = list(pending.values_list("pk", flat=True))
    pending.update(status=PortalSessionStatus.ENDED, ended_at=Now())
    lifetime = policy_active(account.tenant).owner_portal.enrolment_link_lifetime_seconds
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = _db_now(account)
    session = OwnerPortalSession.objects.create(
        tenant=account.tenant,
        account=account,
        kind=PortalSessionKind.ENROLMENT,
        link_hash=link_digest(token),
        sent_to=contact,
        created_at=now,
        link_expires_at=now + timedelta(seconds=lifetime),
    )
    link = f"{settings.PUBLIC_BASE_URL.rstrip('/')}/{LINK_PATH}/{token}/"
    subject, body = _message(account, link, session.link_expires_at)
    # Sent inside the transaction: the caller must know whether it left. A rollback after
    # this leaves a link that matches no row.
    delivery = message_send(contact, subject=subject, body=body)
    del token, link, body
    data = {
        "account": account.pk,
        "session": session.pk,
        "to": contact.masked,
        "contact_kind": contact.kind,
        "via": via,
        "expires_at": session.link_expires_at,
        "superseded": superseded,
        "provider": delivery.provider,
    }
    if not delivery.ok:
        session.status = PortalSessionStatus.ENDED
        session.ended_at = now
        session.save(update_fields=["status", "ended_at"])
        _refusal(account, who, "enrolment.delivery_failed", **data, error=delivery.error)
        return session
    record(
        action="owner.enrolment_link_sent",
        actor=who,
        tenant=account.tenant,
        target=account,
        data=data,
    )
    return session


def can_invite(access, account: ProtectedAccount) -> Decision:
    """Agents (and supervisors, security officers) and the tenant's admins send invitations,
    within a delegation grant's tiers."""
    if access is None:
        return Decision(False, "tenant.no_access", "You have no access to this tenant.")
    if not access.roles & INVITERS:
        return Decision(
            False,
            "enrolment.role_required",
            "Enrolment invitations are sent by agents and tenant admins.",
        )
    return tier_in_grant(access, account.tier)


def enrolment_invite(
    *, actor: User, account: ProtectedAccount, contact: ContactMethod | None = None
) -> OwnerPortalSession:
    """Staff side: send the owner an enrolment link (to `contact`, one of the account's own
    contact methods by id, or the default address). The staff member never sees the link."""
    access = access_in(actor, account.tenant)
    enforce(can_invite(access, account))
    who = Actor.for_user(actor, organisation=(access.organisation or account.tenant.name))
    return enrolment_link_send(account=account, who=who, via="staff_invite", contact=contact)


def enrolment_request(*, tenant: Tenant, username: str) -> None:
    """Owner self-service: send a link if `username` names an account that may enrol. Says
    nothing either way (the page answers alike); a refusal is recorded on the account."""
    username = username.strip()
    if not username:
        return
    with tenant_scope([tenant.pk]):
        matches = list(
            ProtectedAccount.objects.for_tenant(tenant).filter(username__iexact=username)[:2]
        )
    if len(matches) != 1:
        return
    with contextlib.suppress(EnrolmentRefused):  # recorded on the account; the page says nothing
        enrolment_link_send(account=matches[0], who=OWNER, via="self_service")


def enrolment_link_open(*, token: str, response: HttpResponse) -> OwnerPortalSession:
    """Consume an enrolment link (single use, expiry by database time) and start the portal
    session on `response`. Refused if the link is unknown, used or expired, or if the account
    may no longer enrol (a case opened since, frozen, a contact changed)."""
    digest = link_digest(token)
    with system_scope():  # the link, not a staff session, names the tenant
        found = (
            OwnerPortalSession.objects.select_related("tenant", "account")
            .filter(link_hash=digest, kind=PortalSessionKind.ENROLMENT)
            .first()
        )
    if found is None:
        raise EnrolmentRefused(LINK_INVALID)
    refusal: EnrolmentRefused | None = None
    with tenant_scope([found.tenant_id]):
        account = (  # the account first, as enrolment_link_send locks it
            ProtectedAccount.objects.for_tenant(found.tenant)
            .select_for_update()
            .get(pk=found.account_id)
        )
        rows = OwnerPortalSession.objects.for_tenant(found.tenant)
        won = rows.filter(
            pk=found.pk,
            link_hash=digest,
            status=PortalSessionStatus.PENDING,
            link_expires_at__gt=Now(),
        ).update(status=PortalSessionStatus.ACTIVE)  # compare-and-set: one POST wins
        if not won:
            refusal = _refusal(account, OWNER, LINK_INVALID, session=found.pk)
        elif problem := enrolment_problem(account):
            rows.filter(pk=found.pk).update(status=PortalSessionStatus.ENDED, ended_at=Now())
            refusal = _refusal(account, OWNER, problem, session=found.pk)
        else:
            session = rows.select_related("tenant", "account").get(pk=found.pk)
            portal_session_activate(session, response)
    if refusal is not None:
        raise refusal
    return session


# --- account-level "this wasn't me" ----------------------------------------------------------


@dataclass(frozen=True)
class TakenBack:
    """What a repudiation took back from the owner portal (primary keys)."""

    passkeys: list[int]
    code_sets: list[int]
    sessions: list[int]

    def as_data(self) -> dict[str, list[int]]:
        return {
            "passkeys_removed": self.passkeys,
            "code_sets_removed": self.code_sets,
            "sessions_ended": self.sessions,
        }


def portal_credentials_take_back(account: ProtectedAccount) -> TakenBack:
    """After a "this wasn't me": remove the passkeys and code sets registered inside the
    account's quarantine window (whoever added them, in enrolment or in a recovery session)
    and end every open portal session of the account. In the caller's transaction and scope,
    with the account locked."""
    now = timezone.now()
    start = now - timedelta(seconds=account_quarantine_seconds(account))
    passkeys = OwnerPasskey.objects.for_tenant(account.tenant).filter(
        account=account, status=PasskeyStatus.ACTIVE, contact__registered_at__gt=start
    )
    code_sets = RecoveryCodeSet.objects.for_tenant(account.tenant).filter(
        account=account, replaced_at__isnull=True, contact__registered_at__gt=start
    )
    sessions = OwnerPortalSession.objects.for_tenant(account.tenant).filter(
        account=account,
        status__in=[PortalSessionStatus.ACTIVE, PortalSessionStatus.PENDING],
    )
    taken = TakenBack(
        passkeys=list(passkeys.values_list("pk", flat=True)),
        code_sets=list(code_sets.values_list("pk", flat=True)),
        sessions=list(sessions.values_list("pk", flat=True)),
    )
    contacts = list(passkeys.values_list("contact_id", flat=True)) + list(
        code_sets.values_list("contact_id", flat=True)
    )
    passkeys.update(status=PasskeyStatus.REMOVED, removed_at=now)
    code_sets.update(replaced_at=now)
    ContactMethod.objects.for_tenant(account.tenant).filter(pk__in=contacts).update(replaced_at=now)
    sessions.update(status=PortalSessionStatus.ENDED, ended_at=now)
    return taken


def account_repudiate(*, notice: OwnerNotice) -> ProtectedAccount:
    """The owner's "this wasn't me" on an account notice (a passkey or codes added): freeze the
    account and every active recovery on it (revoked, and once committed reverted through the
    connector, as for a case's repudiation, R-41), take back the portal credentials registered
    in the last quarantine window, end its portal sessions and alert the security team.
    Idempotent."""
    from ..cases.services.repudiation import account_cases_locked, account_revert, case_frozen

    with tenant_scope([notice.tenant_id]):
        recoveries = account_cases_locked(tenant=notice.tenant, account_id=notice.account_id)
        account = (
            ProtectedAccount.objects.for_tenant(notice.tenant)
            .select_for_update()
            .select_related("tenant")
            .get(pk=notice.account_id)
        )
        taken = portal_credentials_take_back(account)
        was_frozen = account.frozen_at is not None
        if was_frozen and not (taken.passkeys or taken.code_sets or taken.sessions or recoveries):
            return account  # a second click changes nothing more
        if not was_frozen:
            account.frozen_at = timezone.now()
            account.save(update_fields=["frozen_at"])
        for recovery in recoveries:
            case_frozen(
                recovery,
                notice=notice,
                was_frozen=was_frozen,
                reason=f"Frozen: the account owner reported a change ({notice.event}) as not "
                "theirs.",
                extra={"via_account_notice": notice.event},
            )
        tenant, account_id = account.tenant, account.pk
        transaction.on_commit(
            lambda: account_revert(tenant=tenant, account_id=account_id), robust=True
        )
        record(
            action="owner.account_repudiated",
            actor=OWNER,
            tenant=account.tenant,
            target=account,
            data={
                "account": account.pk,
                "notice": notice.pk,
                "event": notice.event,
                **taken.as_data(),
                "was_frozen": was_frozen,
                "cases_frozen": [recovery.pk for recovery in recoveries],
            },
        )
        record(
            action="alert.raised",
            actor=Actor.system("detection"),
            tenant=account.tenant,
            target=account,
            data={"type": "account_repudiation", "notice": notice.pk, "event": notice.event},
        )
    return account

"""Issuing, consuming and revoking recovery artifacts (R-29 to R-33, R-10).

The agent never sees, types or chooses a secret: `artifact_issue` generates the token, keeps
only its sha256 and sends it to a contact the system of record held before the case opened.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from audit.context import Actor
from audit.services import record
from tenants.exceptions import DomainError, InvalidInput
from tenants.rls import system_scope

from ..cases.channels import channel_problem
from ..cases.models import RecoveryCase
from ..choices import ContactKind
from ..messaging import message_send
from ..models import ContactMethod
from ..policy.rules import Requirements
from .models import ArtifactKind, ArtifactPurpose, ArtifactStatus, RecoveryArtifact

TOKEN_BYTES = 16  # 128 bits from the OS CSPRNG
# R-31 ceilings, whatever a tenant's policy says.
MAX_SECONDS = {"sms": 600, "voice": 600, "email": 86_400, "temporary_access_pass": 8 * 3600}
PURPOSE_OF = {
    "password_reset": ArtifactPurpose.PASSWORD,
    "unlock": ArtifactPurpose.PASSWORD,
    "mfa_reset": ArtifactPurpose.MFA,
    "temporary_access": ArtifactPurpose.MFA,
    "mailbox_access": ArtifactPurpose.MAILBOX,
    "exception": ArtifactPurpose.PASSWORD,
}
# A privileged role restore issues nothing: the connector grants the roles back.
PASS_CASE_TYPES = frozenset({"mfa_reset", "temporary_access"})
SWEEP_BATCH = 200


class ArtifactRefused(DomainError):
    """Unknown, used, revoked, expired or presented for the wrong purpose: one answer for all."""

    code = "artifact.invalid"

    def __init__(self) -> None:
        super().__init__("This recovery link or pass is not valid. Ask the service desk again.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def artifact_delivery_contact(case: RecoveryCase, req: Requirements) -> ContactMethod:
    """Where the case's artifact goes: an email for a link, a mobile for a pass, else the next
    eligible one of the two; only a contact the shared channel rule allows now (R-03, R-04,
    R-10): on record before the case opened, out of quarantine, no recent SIM change or port.

    Raises InvalidInput `artifact.no_channel` when the account has no email or mobile on
    record at all, `artifact.no_eligible_channel` when R-04 excludes every one of them now.
    """
    wanted = ContactKind.MOBILE if case.case_type in PASS_CASE_TYPES else ContactKind.EMAIL
    held = ContactMethod.objects.for_tenant(case.tenant).filter(
        account=case.account,
        replaced_at__isnull=True,
        kind__in=[ContactKind.EMAIL, ContactKind.MOBILE],
    )
    now = timezone.now()
    excluded: list[str] = []
    for contact in sorted(held, key=lambda c: (c.kind != wanted, c.registered_at, c.pk)):
        problem = channel_problem(case, contact, req.quarantine_seconds, now=now)
        if problem is None:
            return contact
        excluded.append(f"{contact.masked}: {problem}")
    if not excluded:
        raise InvalidInput(
            "The account has no email or mobile number that was on record before the case "
            "opened, so no recovery link or pass can be sent.",
            code="artifact.no_channel",
        )
    raise InvalidInput(
        "No contact method on record may carry the recovery link or pass now (R-04: "
        f"{'; '.join(excluded)}); nothing was changed or sent.",
        code="artifact.no_eligible_channel",
    )


def _lifetime(req: Requirements, kind: str, contact: ContactMethod) -> timedelta:
    if kind == ArtifactKind.TEMPORARY_ACCESS_PASS:
        channel = "temporary_access_pass"
    else:
        channel = "email" if contact.kind == ContactKind.EMAIL else "sms"
    return timedelta(seconds=min(getattr(req.lifetimes, channel), MAX_SECONDS[channel]))


def _revoke(artifact: RecoveryArtifact, reason: str, actor: Actor) -> None:
    """Revoke one locked, active artifact and record it (one event per revocation)."""
    from ..connectors import connector_for  # the connector layer sits beside, not below

    artifact.status, artifact.revoked_at, artifact.revoke_reason = (
        ArtifactStatus.REVOKED,
        timezone.now(),
        reason,
    )
    artifact.save(update_fields=["status", "revoked_at", "revoke_reason"])
    ended = None
    if artifact.kind == ArtifactKind.TEMPORARY_ACCESS_PASS:
        result = connector_for(artifact.tenant).revoke_temporary_access(account=artifact.account)
        ended = {"connector": result.connector, "ok": result.ok, "error": result.error}
    record(
        action="artifact.revoked",
        actor=actor,
        tenant=artifact.tenant,
        target=artifact.case,
        data={"artifact": artifact.pk, "reason": reason, "temporary_access_ended": ended},
    )


def artifacts_revoke_for_case(*, case: RecoveryCase, reason: str, actor: Actor) -> int:
    """Revoke every active artifact of `case` (closure, cancellation, repudiation: R-33).

    Runs inside the caller's transaction.
    """
    active = (
        RecoveryArtifact.objects.for_tenant(case.tenant)
        .filter(case=case, status=ArtifactStatus.ACTIVE)
        .select_related("tenant", "account", "case")
        .select_for_update()
    )
    count = 0
    for artifact in active:
        _revoke(artifact, reason, actor)
        count += 1
    return count


def _message(kind: str, token: str, expires_at: datetime) -> tuple[str, str]:
    until = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    if kind == ArtifactKind.TEMPORARY_ACCESS_PASS:
        return (
            "Your temporary access pass",
            f"Your temporary access pass is {token}. Enter it at {base}/owner/pass/ to add "
            f"your new sign-in method. It works once, until {until}. "
            "If you did not ask the service desk for this, use the 'this wasn't me' link in "
            "the notice we sent you.",
        )
    url = f"{base}/recover/{token}/"
    return (
        "Your account recovery link",
        f"Open {url} to choose your new password. The link works once, until {until}. "
        "Nobody from the service desk will ever ask you for it.",
    )


def artifact_issue(*, case: RecoveryCase, req: Requirements, actor: Actor) -> RecoveryArtifact:
    """Create the case's artifact, revoke any older one of the account, and send it to the
    owner. Runs inside the caller's (execution's) transaction; if the message cannot be sent,
    it raises and nothing is issued. The token never leaves this function but in the message.
    A mailbox access case is a delegation (recovery.delegation): it never gets an artifact.
    """
    if case.case_type == "mailbox_access":
        raise InvalidInput(
            "A mailbox access case grants a delegation; no artifact or reset link is issued.",
            code="artifact.not_for_mailbox_access",
        )
    contact = artifact_delivery_contact(case, req)
    kind = (
        ArtifactKind.TEMPORARY_ACCESS_PASS
        if case.case_type in PASS_CASE_TYPES
        else ArtifactKind.RESET_LINK
    )
    older = (
        RecoveryArtifact.objects.for_tenant(case.tenant)
        .filter(account=case.account, status=ArtifactStatus.ACTIVE)
        .select_related("tenant", "account", "case")
        .select_for_update()
    )
    for artifact in older:
        _revoke(artifact, "superseded", actor)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = timezone.now() + _lifetime(req, kind, contact)
    artifact = RecoveryArtifact.objects.create(
        tenant=case.tenant,
        account=case.account,
        case=case,
        kind=kind,
        purpose=PURPOSE_OF[case.case_type],
        secret_hash=token_hash(token),
        sent_to=contact,
        expires_at=expires_at,
    )
    subject, body = _message(kind, token, expires_at)
    delivery = message_send(contact, subject=subject, body=body)
    if not delivery.ok:
        raise DomainError(
            f"The recovery {kind.replace('_', ' ')} could not be sent ({delivery.error}); "
            "nothing was issued.",
            code="artifact.delivery_failed",
        )
    record(
        action="artifact.issued",
        actor=actor,
        tenant=case.tenant,
        target=case,
        data={
            "artifact": artifact.pk,
            "kind": kind,
            "purpose": artifact.purpose,
            "sent_to": contact.masked,
            "expires_at": expires_at,
        },
    )
    return artifact


def _refusal_recorded(artifact: RecoveryArtifact, purpose: str) -> None:
    """Why a known token was refused, in its tenant's trail (R-30, R-32)."""
    owner = Actor.system("artifact-presenter")
    if artifact.status != ArtifactStatus.ACTIVE:
        record(
            action="token.reuse_attempt",
            actor=owner,
            tenant=artifact.tenant,
            target=artifact.case,
            data={"artifact": artifact.pk, "status": artifact.status},
        )
        record(
            action="alert.raised",
            actor=Actor.system("detection"),
            tenant=artifact.tenant,
            target=artifact.case,
            data={"type": "token_reuse", "artifact": artifact.pk},
        )
    elif artifact.purpose != purpose:
        record(
            action="token.purpose_mismatch",
            actor=owner,
            tenant=artifact.tenant,
            target=artifact.case,
            data={"artifact": artifact.pk, "presented_for": purpose},
        )
    else:
        record(
            action="token.expired_presented",
            actor=owner,
            tenant=artifact.tenant,
            target=artifact.case,
            data={"artifact": artifact.pk},
        )


def artifact_consume(*, token: str, purpose: str) -> RecoveryArtifact:
    """Use an artifact once: compare-and-set in one statement, expiry by database time.

    Of two concurrent presentations exactly one wins; the other, and any later one, gets the
    same refusal as an unknown token and is recorded as `token.reuse_attempt` (R-30).
    """
    digest = token_hash(token)
    with system_scope():  # the token, not a session, names the tenant
        won = RecoveryArtifact.objects.filter(
            secret_hash=digest,
            status=ArtifactStatus.ACTIVE,
            purpose=purpose,
            expires_at__gt=Now(),
        ).update(status=ArtifactStatus.CONSUMED, consumed_at=Now())
        artifact = (
            RecoveryArtifact.objects.filter(secret_hash=digest)
            .select_related("tenant", "case", "account")
            .first()
        )
        if artifact is not None and won:
            record(
                action="artifact.consumed",
                actor=Actor.system("account-owner"),
                tenant=artifact.tenant,
                target=artifact.case,
                data={"artifact": artifact.pk, "purpose": purpose},
            )
        elif artifact is not None:
            _refusal_recorded(artifact, purpose)
    if artifact is None or not won:
        raise ArtifactRefused()
    return artifact


def artifact_sweep(*, batch: int = SWEEP_BATCH) -> int:
    """Revoke every active artifact past expiry (by database time), a batch per transaction.

    Rows are claimed with SKIP LOCKED, so two sweeps never revoke the same artifact twice and a
    sweep that dies mid-batch leaves its rows to the next one.
    """
    revoked = 0
    while True:
        with system_scope():
            due = list(
                RecoveryArtifact.objects.filter(status=ArtifactStatus.ACTIVE, expires_at__lte=Now())
                .select_related("tenant", "account", "case")
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("expires_at")[:batch]
            )
            # Chain heads are locked tenant by tenant in one order, so two sweeps never deadlock.
            due.sort(key=lambda artifact: (artifact.tenant_id, artifact.expires_at))
            for artifact in due:
                _revoke(artifact, "expired", Actor.system("artifact-sweep"))
        revoked += len(due)
        if len(due) < batch:
            return revoked

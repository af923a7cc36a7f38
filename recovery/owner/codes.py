"""Saved recovery codes (S1), enrolment side: ten codes of 65 bits, shown once, kept hashed.

A code is 13 characters of Crockford's base32 (no I, L, O or U: nothing to misread), drawn
from `secrets`: 65 bits each. Only an HMAC-SHA256 digest keyed from `settings.SECRET_KEY` is
stored (R-29), so a copy of the table alone cannot be searched offline. `code_normalise` and
`code_digest` are what the read-back check (S1 verifier) uses to find a code.

A set is also a `ContactMethod` (kind recovery_codes, source owner_portal, registered now), so
the quarantine applies to it (R-04). Issuing a set replaces the whole current one and records
`owner.codes_issued` (never a code), which notifies every address on record (R-38).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone

from audit.services import record
from tenants.rls import tenant_scope

from ..choices import ContactKind
from ..models import ContactMethod, ProtectedAccount
from .enrolment import change_check, session_live
from .models import OWNER_PORTAL_SOURCE, OwnerPortalSession, RecoveryCode, RecoveryCodeSet
from .sessions import ENROLLED_KINDS, OWNER

CODE_COUNT = 10
CODE_LENGTH = 13  # 13 x 5 bits = 65 bits
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
GROUPS = (4, 4, 5)
# What people type for what they read (Crockford): O is zero, I and L are one.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", " -_.\t\n")


def code_new() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def code_display(code: str) -> str:
    """`ABCD-EFGH-JKMNP`: grouped to read and type (the dashes are ignored when checked)."""
    parts, start = [], 0
    for size in GROUPS:
        parts.append(code[start : start + size])
        start += size
    return "-".join(parts)


def code_normalise(text: str) -> str:
    """What was typed or read back, as stored: upper case, no spaces or dashes, O→0, I/L→1."""
    return str(text or "").upper().translate(_IGNORED).translate(_CONFUSABLE)


def code_well_formed(normalised: str) -> bool:
    return len(normalised) == CODE_LENGTH and all(c in ALPHABET for c in normalised)


def _key() -> bytes:
    return hmac.new(
        settings.SECRET_KEY.encode(), b"vouchsafe.saved-recovery-codes", hashlib.sha256
    ).digest()


def code_digest(code: str) -> str:
    """The stored form of a code (normalised first): HMAC-SHA256, hex."""
    return hmac.new(_key(), code_normalise(code).encode(), hashlib.sha256).hexdigest()


def code_set_current(*, account: ProtectedAccount) -> RecoveryCodeSet | None:
    return (
        RecoveryCodeSet.objects.for_tenant(account.tenant)
        .filter(account=account, replaced_at__isnull=True)
        .first()
    )


def codes_remaining(code_set: RecoveryCodeSet) -> int:
    return (
        RecoveryCode.objects.for_tenant(code_set.tenant)
        .filter(code_set=code_set, used_at__isnull=True)
        .count()
    )


def codes_issue(*, session: OwnerPortalSession) -> tuple[RecoveryCodeSet, list[str]]:
    """Issue a new set of ten codes for the session's account, replacing the current set.

    Returns the set and the codes in clear, to show once: nothing keeps them after this.
    Refused (`EnrolmentRefused`) when the account may not enrol now, or for an artifact session.
    """
    with tenant_scope([session.tenant_id]):
        session = session_live(session, ENROLLED_KINDS)
        account = (
            ProtectedAccount.objects.for_tenant(session.tenant)
            .select_for_update()
            .select_related("tenant")
            .get(pk=session.account_id)
        )
        change_check(session, account)
        now = timezone.now()
        old = (
            RecoveryCodeSet.objects.for_tenant(account.tenant)
            .select_for_update()
            .filter(account=account, replaced_at__isnull=True)
            .first()
        )
        if old is not None:
            old.replaced_at = now
            old.save(update_fields=["replaced_at"])
            ContactMethod.objects.for_tenant(account.tenant).filter(pk=old.contact_id).update(
                replaced_at=now
            )
        contact = ContactMethod.objects.create(
            tenant=account.tenant,
            account=account,
            kind=ContactKind.RECOVERY_CODES,
            value="codes:new",
            source=OWNER_PORTAL_SOURCE,
            registered_at=now,
            is_notification=False,
        )
        code_set = RecoveryCodeSet.objects.create(
            tenant=account.tenant, account=account, contact=contact, registered_in=session
        )
        contact.value = f"codes:{code_set.pk}"
        contact.save(update_fields=["value"])
        codes: list[str] = []
        while len(codes) < CODE_COUNT:
            code = code_new()
            if code not in codes:
                codes.append(code)
        RecoveryCode.objects.bulk_create(
            RecoveryCode(tenant=account.tenant, code_set=code_set, code_hash=code_digest(code))
            for code in codes
        )
        record(
            action="owner.codes_issued",
            actor=OWNER,
            tenant=account.tenant,
            target=account,
            data={
                "account": account.pk,
                "code_set": code_set.pk,
                "contact": contact.pk,
                "count": CODE_COUNT,
                "replaced": old.pk if old is not None else None,
                "session": session.pk,
            },
        )
    return code_set, codes

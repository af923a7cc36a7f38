"""Reads of verification challenges: from the tenant and case, or (for a link) from its token."""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now

from tenants.exceptions import CrossTenantNotFound
from tenants.models import Tenant
from tenants.rls import system_scope

from ..cases.choices import CaseStatus
from ..cases.models import RecoveryCase
from .choices import ChallengeStatus
from .models import VerificationChallenge
from .tokens import link_digest

CHALLENGE_LABEL = VerificationChallenge._meta.label


def expired_now() -> ExpressionWrapper:
    """`expires_at` against database time, evaluated in the query that reads the row (R-31)."""
    return ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField())


def challenge_list(*, tenant: Tenant, case: RecoveryCase) -> QuerySet[VerificationChallenge]:
    """The case's challenges, newest first (one query)."""
    return (
        VerificationChallenge.objects.for_tenant(tenant)
        .filter(case=case)
        .select_related("contact_method")
        .order_by("-created_at", "-pk")
    )


def challenge_get_visible(*, tenant: Tenant, case: RecoveryCase, pk: int) -> VerificationChallenge:
    """One challenge of this case; another tenant's or another case's id is a 404."""
    challenge = challenge_list(tenant=tenant, case=case).filter(pk=pk).first()
    if challenge is None:
        raise CrossTenantNotFound(CHALLENGE_LABEL, pk)
    return challenge


def challenge_find_by_link(*, token: str, kind: str) -> VerificationChallenge | None:
    """The challenge a confirmation link names, across tenants (the token names the tenant,
    as an API key does), with `expired` by database time; None for an unknown token."""
    with system_scope():
        return (
            VerificationChallenge.objects.select_related("tenant", "case", "case__account")
            .annotate(expired=expired_now())
            .filter(link_hash=link_digest(token), kind=kind)
            .first()
        )


def challenge_link_usable(challenge: VerificationChallenge | None) -> bool:
    """Whether a link's challenge could still be confirmed (for the page a GET shows)."""
    return (
        challenge is not None
        and challenge.status == ChallengeStatus.OPEN
        and not challenge.expired
        and challenge.case.status == CaseStatus.COLLECTING_EVIDENCE
    )

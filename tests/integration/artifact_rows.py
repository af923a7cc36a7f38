"""Many recovery artifacts at once, for sweep tests and the revocation benchmark.

One case goes through the real services (ready, executed, its link sent to the owner) and is
the template; every other artifact is a bulk-created copy: its own account, owner email, an
`executed` case and an active artifact with the expiry asked for. The copies skip the services
on purpose (no `case.*` or `artifact.issued` events, no owner notices): the sweep, which is
what these rows are for, reads nothing else. Each account holds one artifact, as the
one-active-per-account constraint requires.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db import models, transaction

from recovery.artifacts.models import ArtifactKind, RecoveryArtifact
from recovery.artifacts.services import token_hash
from recovery.cases.models import RecoveryCase
from recovery.models import ContactMethod, ProtectedAccount
from tenants.choices import Role
from tenants.models import Tenant

from ..factories import execute, staff
from ..recovery.execution.helpers import owner_email, ready_case


def _fields(row: models.Model, **changes) -> dict:
    values = {
        f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if not f.primary_key
    }
    return {**values, **changes}


def template_case(tenant: Tenant) -> RecoveryCase:
    """A T0 password reset, executed through the services (its artifact is active, 24 h)."""
    case = ready_case(tenant, case_type="password_reset")
    owner_email(case)
    return execute(case, staff(Role.AGENT, tenant=tenant))


def artifacts_expiring(
    tenant: Tenant,
    expires: Sequence[datetime],
    *,
    template: RecoveryCase | None = None,
    tap_every: int = 4,
) -> list[int]:
    """Ids of `len(expires)` active artifacts of `tenant`, the i-th expiring at `expires[i]`.

    Every `tap_every`-th one is a temporary access pass (its revocation asks the tenant's
    connector to end the temporary access), the rest reset links.
    """
    template = template or template_case(tenant)
    account = template.account
    contact = ContactMethod.objects.get(account=account, kind="email")
    run = uuid.uuid4().hex[:8]
    with transaction.atomic():
        accounts = ProtectedAccount.objects.bulk_create(
            ProtectedAccount(
                **_fields(
                    account,
                    external_id=f"bulk-{run}-{i}",
                    username=f"bulk-{run}-{i}@example.test",
                    display_name=f"bulk {run} {i}",
                )
            )
            for i in range(len(expires))
        )
        contacts = ContactMethod.objects.bulk_create(
            ContactMethod(**_fields(contact, account_id=a.pk, value=f"owner-{a.pk}@example.test"))
            for a in accounts
        )
        cases = RecoveryCase.objects.bulk_create(
            RecoveryCase(**_fields(template, account_id=a.pk)) for a in accounts
        )
        artifacts = RecoveryArtifact.objects.bulk_create(
            RecoveryArtifact(
                tenant=tenant,
                account=a,
                case=c,
                kind=(
                    ArtifactKind.TEMPORARY_ACCESS_PASS
                    if i % tap_every == 0
                    else ArtifactKind.RESET_LINK
                ),
                purpose="mfa" if i % tap_every == 0 else "password",
                secret_hash=token_hash(secrets.token_urlsafe(16)),
                sent_to=m,
                expires_at=expires_at,
            )
            for i, (a, m, c, expires_at) in enumerate(
                zip(accounts, contacts, cases, expires, strict=True)
            )
        )
    return [a.pk for a in artifacts]

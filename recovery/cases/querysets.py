"""The recovery case queryset: who may see, work, review and decide which cases, in SQL.

Every method ANDs one list of `access_rules` (the same list the pages and services refuse
with), so a list, a queue or an API page can show only what the rules allow. The rules are
imported when a method runs: they read the models of the verifiers' records, which import
`RecoveryCase`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from tenants.access import TenantAccess
from tenants.querysets import TenantOwnedQuerySet

if TYPE_CHECKING:
    from tenants.models import User

    from ..policy.rules import TenantPolicy


class RecoveryCaseQuerySet(TenantOwnedQuerySet):
    def _allowed(self, rules_name: str, who_kwargs: dict) -> RecoveryCaseQuerySet:
        from . import access_rules

        rules = getattr(access_rules, rules_name)
        condition = access_rules.matching(rules, access_rules.Who(**who_kwargs))
        return self.filter(condition)

    def visible_to(self, access: TenantAccess | None) -> RecoveryCaseQuerySet:
        """Cases the actor may list and read (`access_rules.SEE`)."""
        return self._allowed("SEE", {"access": access})

    def workable_by(self, access: TenantAccess | None) -> RecoveryCaseQuerySet:
        """Cases the actor may work: collect evidence on, submit, cancel (`access_rules.WORK`)."""
        return self._allowed("WORK", {"access": access})

    def reviewable_by(self, access: TenantAccess | None) -> RecoveryCaseQuerySet:
        """Cases whose review page the actor may open (`access_rules.REVIEW`)."""
        return self._allowed("REVIEW", {"access": access})

    def decidable_by(
        self, actor: User, access: TenantAccess | None, *, policy: TenantPolicy
    ) -> RecoveryCaseQuerySet:
        """Cases `actor` may approve or deny under `policy`, whatever their status
        (`access_rules.DECIDE`)."""
        return self._allowed(
            "DECIDE", {"access": access, "actor": actor, "requirements": policy.requirements}
        )


RecoveryCaseManager = models.Manager.from_queryset(RecoveryCaseQuerySet)

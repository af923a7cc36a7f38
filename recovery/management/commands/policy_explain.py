import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recovery.models import ProtectedAccount
from recovery.policy.explain import policy_explain
from tenants.choices import CaseType
from tenants.exceptions import DomainError
from tenants.models import Tenant
from tenants.rls import tenant_scope


class Command(BaseCommand):
    help = (
        "Say what a recovery case needs under the tenant's active policy: tier (and why), "
        "route, evidence, approvals, waiting periods, lifetimes and the policy version. "
        "Exits 2 for an unknown tenant, account or case type."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--account", required=True, metavar="EXTERNAL_ID")
        parser.add_argument(
            "--case-type", required=True, metavar="TYPE", help=", ".join(CaseType.values)
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options) -> None:
        case_type = options["case_type"]
        if case_type not in CaseType.values:
            raise CommandError(
                f"Unknown case type {case_type!r}; use one of {', '.join(CaseType.values)}.",
                returncode=2,
            )
        tenant = Tenant.objects.filter(slug=options["tenant"], is_active=True).first()
        if tenant is None:
            raise CommandError(f"No active tenant with slug {options['tenant']!r}.", returncode=2)
        with tenant_scope([tenant.pk]):
            account = (
                ProtectedAccount.objects.for_tenant(tenant)
                .filter(external_id=options["account"])
                .first()
            )
            if account is None:
                raise CommandError(
                    f"No account {options['account']!r} in tenant {tenant.slug!r}.", returncode=2
                )
            try:
                result = policy_explain(account, case_type)
            except DomainError as refusal:
                raise CommandError(f"{refusal.code}: {refusal.message}", returncode=1) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
            return
        self.stdout.write(
            f"{result['tenant']} / {result['account']} / {result['case_type']}: "
            f"tier {result['tier']}, route {result['route']}"
        )
        for line in result["summary"]:
            self.stdout.write(f"  - {line}")

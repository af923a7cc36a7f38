import json
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recovery.policy.errors import PolicyInvalid
from recovery.policy.simulate import SimulationReport, policy_simulate
from tenants.exceptions import DomainError
from tenants.models import Tenant
from tenants.rls import tenant_scope


class Command(BaseCommand):
    help = (
        "Replay the tenant's cases of the last DAYS days under a draft policy FILE and report "
        "which decisions (tier, route, evidence, approval, cooling-off) would change and why. "
        "Changes nothing. Exits 1 for an invalid draft (each error as FILE:LINE: path: message "
        "[rule]), 2 for an unknown tenant, an unreadable file or a non-positive DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The draft policy (YAML or JSON).")
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--since", required=True, type=int, metavar="DAYS")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        days: int = options["since"]
        if days <= 0:
            raise CommandError("--since must be a positive number of days.", returncode=2)
        tenant = Tenant.objects.filter(slug=options["tenant"], is_active=True).first()
        if tenant is None:
            raise CommandError(f"No active tenant with slug {options['tenant']!r}.", returncode=2)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as unreadable:
            raise CommandError(f"Cannot read {path}: {unreadable}", returncode=2) from None
        try:
            with tenant_scope([tenant.pk]):
                report = policy_simulate(tenant=tenant, draft_text=text, since=timedelta(days=days))
        except PolicyInvalid as invalid:
            for error in invalid.errors:
                self.stderr.write(
                    f"{path}:{error.line}: {error.path}: {error.message} [{error.rule}]"
                )
            raise CommandError(
                f"{len(invalid.errors)} problem(s) in the draft; nothing was simulated.",
                returncode=1,
            ) from None
        except DomainError as refusal:
            raise CommandError(f"{refusal.code}: {refusal.message}", returncode=1) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            self.stdout.write("\n".join(_text(report, days)))


def _text(report: SimulationReport, days: int) -> list[str]:
    """A header with the totals, then one block per case whose decisions would change."""
    by_kind = ", ".join(f"{kind} {count}" for kind, count in report.by_kind.items())
    lines = [
        f"{report.tenant}: draft {report.draft_sha256[:12]} replayed over the cases opened in "
        f"the last {days} day(s) (since {report.window_start:%Y-%m-%d %H:%M} UTC)",
        f"  cases replayed: {report.cases_replayed}; cases that would change: "
        f"{len(report.changed)}; decisions that would change: {report.decisions_changed}",
        f"  by kind: {by_kind}",
        *(f"  note: {note}" for note in report.notes),
    ]
    if not report.changed:
        lines += ["", "No decision would change."]
    for case in report.changed:
        lines += [
            "",
            f"case {case.case_id} · {case.account} · {case.case_type} · {case.status} "
            f"(opened {case.created_at:%Y-%m-%d %H:%M} UTC under policy v{case.decided_under})",
            *(f"  - {change.detail}" for change in case.changes),
        ]
    return lines

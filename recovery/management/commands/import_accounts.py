from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import Actor
from recovery.imports import parse_accounts
from recovery.services import accounts_import
from tenants.models import Tenant
from tenants.rls import tenant_scope


class Command(BaseCommand):
    help = (
        "Import or sync protected accounts and their contact methods from a CSV or JSON file "
        "exported by the tenant's system of record. The whole file is checked first: any bad "
        "row is reported by line with the reason, and then nothing is applied (exit 1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV (with a header row) or JSON array.")
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--source", default="", help="System of record (default: file name).")
        parser.add_argument("--format", choices=["csv", "json"], help="Default: file extension.")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        tenant = Tenant.objects.filter(slug=options["tenant"], is_active=True).first()
        if tenant is None:
            raise CommandError(f"No active tenant with slug {options['tenant']!r}.", returncode=2)
        fmt = options["format"] or path.suffix.lstrip(".").lower()
        if fmt not in {"csv", "json"}:
            raise CommandError("Use a .csv or .json file, or say --format.", returncode=2)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as unreadable:
            raise CommandError(f"Cannot read {path}: {unreadable}", returncode=2) from None
        records, errors = parse_accounts(text, fmt)
        if errors:
            for error in errors:
                self.stderr.write(f"{path.name} {error}")
            raise CommandError(f"{len(errors)} problem(s) found; nothing was imported.")
        self.stderr.write(f"{len(records)} account(s) valid; applying …")
        source = options["source"] or path.name
        with tenant_scope([tenant.pk]):
            summary = accounts_import(
                actor=Actor.system(f"import_accounts:{source}"[:200]),
                tenant=tenant,
                records=records,
                source=source,
            )
        self.stdout.write(
            f"{tenant.slug}: {summary.created} created, {summary.updated} updated, "
            f"{summary.unchanged} unchanged; contacts {summary.contacts_added} added, "
            f"{summary.contacts_replaced} replaced."
        )

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verify import verify_all


class Command(BaseCommand):
    help = (
        "Recompute every audit hash chain (or one tenant's) and report the first tampered "
        "row. Exits 0 when all chains are intact, 1 when one is broken, 2 on a usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="Verify only this tenant's chain.")

    def handle(self, *args, **options) -> None:
        try:
            reports = verify_all(
                tenant_slug=options["tenant"], progress=lambda line: self.stderr.write(line)
            )
        except LookupError as missing:
            raise CommandError(str(missing), returncode=2) from None
        broken = [r for r in reports if not r.intact]
        for report in reports:
            if report.intact:
                self.stdout.write(f"OK      {report.chain}: {report.rows} events")
            else:
                self.stdout.write(
                    f"BROKEN  {report.chain}: first bad seq {report.first_bad_seq}"
                    f" ({report.reason})"
                )
        if broken:
            raise CommandError(f"{len(broken)} audit chain(s) failed verification.", returncode=1)

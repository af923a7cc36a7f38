from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.checkpoints import DirectoryStore, trusted_keys
from audit.verify import CheckpointSource, verify_all


class Command(BaseCommand):
    help = (
        "Recompute every audit hash chain (or one tenant's), compare it with its signed "
        "checkpoints and report the first tampered row and the window it puts in doubt. Exits 0 "
        "when all chains are intact, 1 when one is broken, 2 on a usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="Verify only this tenant's chain.")
        parser.add_argument(
            "--checkpoints",
            metavar="DIR",
            action="append",
            help=(
                "Verify against the checkpoints in this folder (your own copies, laid out as the "
                "directory store writes them) instead of the configured stores. Repeatable."
            ),
        )
        parser.add_argument(
            "--keys",
            metavar="PATH",
            action="append",
            help="Trust these public keys (PEM files or folders) instead of AUDIT_TRUSTED_KEYS.",
        )
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="Walk each chain only from its newest genuine checkpoint on (what the hourly "
            "job does); without it every row is recomputed.",
        )

    def handle(self, *args, **options) -> None:
        source = CheckpointSource.configured()
        if options["checkpoints"]:
            folders = [Path(folder) for folder in options["checkpoints"]]
            missing = [str(folder) for folder in folders if not folder.is_dir()]
            if missing:
                raise CommandError(f"No such folder: {', '.join(missing)}.", returncode=2)
            source = CheckpointSource(
                [DirectoryStore(folder, name=str(folder)) for folder in folders],
                source.keys,
                complete=False,
            )
        if options["keys"]:
            keys = trusted_keys(options["keys"])
            if not keys:
                raise CommandError("No Ed25519 public key found in --keys.", returncode=2)
            source = CheckpointSource(source.stores, keys, source.complete)
        try:
            reports = verify_all(
                tenant_slug=options["tenant"],
                progress=lambda line: self.stderr.write(line),
                checkpoints=source,
                incremental=options["incremental"],
            )
        except LookupError as missing:
            raise CommandError(str(missing), returncode=2) from None
        broken = [r for r in reports if not r.intact]
        for report in reports:
            signed = f", {report.checkpoints} checkpoints" if report.checkpoints else ""
            if report.intact:
                self.stdout.write(f"OK      {report.chain}: {report.rows} events{signed}")
            else:
                window = f" [untrusted: seq {report.window[0]}-{report.window[1]}]"
                self.stdout.write(
                    f"BROKEN  {report.chain}: first bad seq {report.first_bad_seq}"
                    f" ({report.reason}){window if report.window else ''}"
                )
        if broken:
            raise CommandError(f"{len(broken)} audit chain(s) failed verification.", returncode=1)

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.checkpoints import file_write_new, key_pair_new


class Command(BaseCommand):
    help = (
        "Generate a new Ed25519 checkpoint signing key: the private key to --private (mode 0600, "
        "never overwritten) and its public key into --trusted-dir as <key id>.pem. To rotate, "
        "generate the new key, deploy its public key to every verifier, then point "
        "AUDIT_SIGNING_KEY_FILE at it; keep the old public key trusted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--private", default=settings.AUDIT_SIGNING_KEY_FILE, help="Private key file to create."
        )
        trusted = settings.AUDIT_TRUSTED_KEYS[0] if settings.AUDIT_TRUSTED_KEYS else ""
        parser.add_argument(
            "--trusted-dir", default=trusted, help="Folder of trusted public keys to add it to."
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Do nothing (exit 0) when the private key file exists already.",
        )

    def handle(self, *args, **options) -> None:
        private, trusted = options["private"], options["trusted_dir"]
        if not private or not trusted:
            raise CommandError("Give --private and --trusted-dir.", returncode=2)
        private_path, trusted_dir = Path(private), Path(trusted)
        if options["if_missing"] and private_path.exists():
            return
        private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        trusted_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        key_id, private_pem, public_pem = key_pair_new()
        try:
            file_write_new(private_path, private_pem, mode=0o600)
            file_write_new(trusted_dir / f"{key_id.replace(':', '-')}.pem", public_pem, mode=0o644)
        except FileExistsError as exists:
            raise CommandError(f"{exists.filename} exists; keys are never overwritten.") from None
        self.stdout.write(f"New checkpoint key {key_id}: {private_path}")

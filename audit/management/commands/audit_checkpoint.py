from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import CheckpointError, checkpoints_sign
from audit.context import Actor


class Command(BaseCommand):
    help = (
        "Sign every audit chain head that moved since its last checkpoint and publish it to "
        "the configured checkpoint stores (the beat does this every "
        "AUDIT_CHECKPOINT_INTERVAL_SECONDS). Exits 0 when every store kept every checkpoint, "
        "1 otherwise."
    )

    def handle(self, *args, **options) -> None:
        try:
            run = checkpoints_sign(actor=Actor.system("audit_checkpoint command"))
        except CheckpointError as error:
            raise CommandError(f"{error} ({error.code})", returncode=1) from None
        for checkpoint in run.signed:
            self.stdout.write(
                f"SIGNED  {checkpoint.chain} at seq {checkpoint.seq} "
                f"(key {checkpoint.key_id}, digest {checkpoint.digest[:16]}…)"
            )
        for store, chain, error in run.failures:
            self.stdout.write(f"FAILED  {chain} in store {store}: {error}")
        if not run.signed and not run.failures:
            self.stdout.write("Nothing to sign: every chain is at its last checkpoint.")
        if run.failures:
            raise CommandError(f"{len(run.failures)} checkpoint write(s) failed.", returncode=1)

import getpass
import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.exceptions import DomainError
from tenants.rls import system_scope
from tenants.services import platform_operator_bootstrap


class Command(BaseCommand):
    help = (
        "Create the first platform operator (audited). Refused once one exists. The password "
        "comes from VOUCHSAFE_OPERATOR_PASSWORD or an interactive prompt; the operator enrols "
        "TOTP at first sign-in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)

    def handle(self, *args, **options) -> None:
        password = os.environ.get("VOUCHSAFE_OPERATOR_PASSWORD") or getpass.getpass(
            "Password for the platform operator: "
        )
        if len(password) < 12:
            raise CommandError("Choose a password of at least 12 characters.", returncode=2)
        try:
            with system_scope():
                platform_operator_bootstrap(username=options["username"], password=password)
        except DomainError as refused:
            raise CommandError(f"{refused.message} ({refused.code})") from None
        self.stdout.write(self.style.SUCCESS(f"Platform operator {options['username']} created."))

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from tenants.rls import app_role_sql


class Command(BaseCommand):
    help = (
        "Create (if missing) the restricted application role and grant it exactly what it "
        "needs: DML on domain tables, INSERT/SELECT only on audit tables, no BYPASSRLS. "
        "Run as the owner role after every migrate. Give the role LOGIN and a password "
        "yourself (ALTER ROLE ... LOGIN PASSWORD ...)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--app-role",
            default="vouchsafe_app",
            help="Name of the restricted role the web app and workers use.",
        )

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Database roles and row-level security need PostgreSQL.")
        try:
            statements = app_role_sql(options["app_role"])
        except ValueError as invalid:
            raise CommandError(str(invalid)) from None
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(self.style.SUCCESS(f"Role {options['app_role']} is configured."))

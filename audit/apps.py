from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from tenants.jobs import register_job_kind

        from .jobs import EXPORT_KIND, audit_export_run

        register_job_kind(EXPORT_KIND, audit_export_run)

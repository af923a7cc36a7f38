from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery"

    def ready(self) -> None:
        from django.core.checks import Tags, register

        from .cases.storage import check_storage_outside_web_root

        register(check_storage_outside_web_root, Tags.security)

        from audit.signals import event_recorded

        from .notifications.services import on_event_recorded

        event_recorded.connect(on_event_recorded, dispatch_uid="recovery-owner-notices")

        from .cases.access_receivers import on_access_removed

        event_recorded.connect(on_access_removed, dispatch_uid="recovery-approvals-r62")

        from .detection.alerts import on_alert_raised

        event_recorded.connect(on_alert_raised, dispatch_uid="recovery-alerts")

        from audit.verify import record_check_register

        from .cases.services.step_up import step_up_records_verify

        record_check_register(step_up_records_verify)

        from audit.retention import PurgeSubject, purge_subject_register

        from .bundle import CASE_DATA_KEY
        from .cases.models import RecoveryCase

        purge_subject_register(PurgeSubject(RecoveryCase._meta.label, CASE_DATA_KEY))

        from tenants.jobs import register_job_kind

        from .policy.jobs import SIMULATE_KIND, simulation_run

        register_job_kind(SIMULATE_KIND, simulation_run)

        from .detection import jobs as detection_jobs

        register_job_kind(detection_jobs.SIMULATE_KIND, detection_jobs.simulation_run)

from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery"

    def ready(self) -> None:
        from django.core.checks import Tags, register

        from .cases.storage import check_storage_outside_web_root

        register(check_storage_outside_web_root, Tags.security)

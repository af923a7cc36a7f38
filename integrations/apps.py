from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations: webhooks out, events in"

    def ready(self) -> None:
        from audit.signals import event_recorded

        from .outbox import on_event_recorded

        event_recorded.connect(on_event_recorded, dispatch_uid="integrations.webhook_outbox")

        from .siem.stream import on_event_recorded as siem_on_event_recorded

        event_recorded.connect(siem_on_event_recorded, dispatch_uid="integrations.siem_stream")

        from recovery.connectors.webhook import outbox_register

        from .outbox import connector_request_enqueue

        outbox_register(connector_request_enqueue)  # the recovery webhook connector's requests

        from audit.retention import purge_dependant_register

        from .outbox import deliveries_of_purged_events_drop

        purge_dependant_register(deliveries_of_purged_events_drop)

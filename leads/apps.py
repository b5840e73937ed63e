from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        _register_outbox_dispatcher()
        setting_changed.connect(_on_setting_changed)
        # health imports no app: the pipeline hands it what the probes and /metrics must see.
        from leads import monitoring  # the models are loaded only now

        monitoring.register()


def _register_outbox_dispatcher() -> None:
    """The in-process bus receives committed outbox rows when there is no Kafka; with Kafka the
    relay publishes them and nobody in this process does."""
    from leads.outbox import outbox_dispatcher_set
    from leads.pipeline.inprocess import deliver

    outbox_dispatcher_set(None if settings.KAFKA_BOOTSTRAP_SERVERS else deliver)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "KAFKA_BOOTSTRAP_SERVERS":  # tests switch shapes with override_settings
        _register_outbox_dispatcher()

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed

from pipeline_whisperer.env import SettingsError

if TYPE_CHECKING:
    from leads.models import OutboxEvent


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        _check_pacing()
        _register_outbox_dispatcher()
        _connect_webhooks()
        setting_changed.connect(_on_setting_changed)
        # health imports no app: the pipeline hands it what the probes and /metrics must see,
        # imported when they first look (~0.08 s of start-up a management command does not need).
        from health.registry import register_module

        register_module("leads.monitoring")


def _check_pacing() -> None:
    """A send window, zone or warm-up date that cannot be read stops start-up with one line
    (manage.py prints a SettingsError so), rather than the first batch the outreach stage meets."""
    from leads.pacing import InvalidPacing
    from leads.services.pacing import pacing_configured

    try:
        pacing_configured()
    except InvalidPacing as error:
        raise SettingsError(str(error)) from None


def _register_outbox_dispatcher() -> None:
    """The in-process bus receives committed outbox rows when there is no Kafka; with Kafka the
    relay publishes them and nobody in this process does."""
    from leads.outbox import outbox_dispatcher_set

    outbox_dispatcher_set(None if settings.KAFKA_BOOTSTRAP_SERVERS else _deliver_in_process)


def _deliver_in_process(rows: Sequence[OutboxEvent]) -> int:
    """The in-process bus, imported at the first delivery: a process that commits no outbox row
    (most management commands) does not import every stage (~0.09 s of start-up)."""
    from leads.pipeline.inprocess import deliver

    return deliver(rows)


def _connect_webhooks() -> None:
    """Inbound mail posted by an email provider (anymail parses and authenticates it) is recorded
    by our receiver; the uid keeps a second ready() from connecting it twice."""
    from anymail.signals import inbound

    inbound.connect(_inbound_received, dispatch_uid="leads.webhooks.inbound")


def _inbound_received(sender: Any, **kwargs: Any) -> None:
    """The receiver is imported at the first inbound mail (~0.07 s of start-up otherwise)."""
    from leads.webhooks.inbound import inbound_received

    inbound_received(sender, **kwargs)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == "KAFKA_BOOTSTRAP_SERVERS":  # tests switch shapes with override_settings
        _register_outbox_dispatcher()

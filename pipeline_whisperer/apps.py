from django.apps import AppConfig


class PipelineWhispererConfig(AppConfig):
    """The project package is an app only for the infrastructure models it owns (API keys)."""

    name = "pipeline_whisperer"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        # Not schema: its OpenAPI auth extension registers when DEFAULT_SCHEMA_CLASS (same module) is
        # first loaded, by the schema view or `manage.py spectacular`, so other processes skip drf-spectacular.
        from pipeline_whisperer import checks, lockouts  # noqa: F401  (register a system check, a lockout receiver)
        from pipeline_whisperer.auth import api_key_changed_receiver
        from pipeline_whisperer.models import ApiKey

        # Workers remember verified keys until the keys change (pipeline_whisperer.auth).
        post_save.connect(api_key_changed_receiver, sender=ApiKey, dispatch_uid="api-key-saved")
        post_delete.connect(api_key_changed_receiver, sender=ApiKey, dispatch_uid="api-key-deleted")

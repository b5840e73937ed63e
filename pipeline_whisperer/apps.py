from django.apps import AppConfig


class PipelineWhispererConfig(AppConfig):
    """The project package is an app only for the infrastructure models it owns (API keys)."""

    name = "pipeline_whisperer"
    verbose_name = "Access"

    def ready(self) -> None:
        from pipeline_whisperer import checks, lockouts, schema  # noqa: F401  (register a system check, a lockout receiver, the OpenAPI auth extension)

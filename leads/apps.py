from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        # health imports no app: the pipeline hands it what the probes and /metrics must see.
        from leads import monitoring  # the models are loaded only now

        monitoring.register()

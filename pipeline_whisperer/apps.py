from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.core import checks

# Cache backends whose close() does nothing (django-redis unless told to close its connections):
# closing them after every request, as Django does, only costs the walk over the aliases.
_NOTHING_TO_CLOSE = {
    "django_redis.cache.RedisCache",
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


class AdminConfig(admin_apps.SimpleAdminConfig):
    """The admin without autodiscovery at start-up: the root URLconf imports the apps' admin
    modules, so a management command that never routes a request does not pay for them. Its checks
    import them first: the check registry is a set, so the URL check may well run after them."""

    default = False  # named in INSTALLED_APPS; PipelineWhispererConfig stays this module's default

    def ready(self) -> None:
        from django.contrib.admin.checks import check_dependencies

        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(_check_every_model_admin, checks.Tags.admin)


def _check_every_model_admin(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.contrib import admin
    from django.contrib.admin.checks import check_admin_app

    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)


class PipelineWhispererConfig(AppConfig):
    """The project package is an app only for the infrastructure models it owns (API keys)."""

    name = "pipeline_whisperer"
    verbose_name = "Access"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_save

        # Not schema: its OpenAPI auth extension registers when DEFAULT_SCHEMA_CLASS (same module) is
        # first loaded, by the schema view or `manage.py spectacular`, so other processes skip drf-spectacular.
        from pipeline_whisperer import checks  # noqa: F401  (registers a system check)
        from pipeline_whisperer.models import ApiKey

        # Workers remember verified keys until the keys change (pipeline_whisperer.auth).
        post_save.connect(_on_api_key_changed, sender=ApiKey, dispatch_uid="api-key-saved")
        post_delete.connect(_on_api_key_changed, sender=ApiKey, dispatch_uid="api-key-deleted")
        user_locked_out.connect(_on_user_locked_out, dispatch_uid="pipeline_whisperer.lockouts")
        if any(database["ENGINE"] == "django.db.backends.postgresql" for database in settings.DATABASES.values()):
            from pipeline_whisperer.postgres import use_fast_timestamp_loader

            connection_created.connect(use_fast_timestamp_loader, dispatch_uid="fast-timestamp-loader")

        # Django closes every cache after each request: about 2% of a cached API request, and with
        # these backends there is nothing to close (with any other backend, Django keeps closing).
        if _caches_have_nothing_to_close(settings.CACHES):
            from django.core.cache import close_caches
            from django.core.signals import request_finished

            request_finished.disconnect(close_caches)


def _caches_have_nothing_to_close(aliases: dict[str, dict[str, Any]]) -> bool:
    closes_redis = getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False)
    return not closes_redis and all(
        alias["BACKEND"] in _NOTHING_TO_CLOSE and not alias.get("OPTIONS", {}).get("CLOSE_CONNECTION")
        for alias in aliases.values()
    )


# The receivers import their modules when first called: auth and lockouts bring DRF and axes'
# handlers, ~0.12 s of the start-up of every management command that never uses them.


def _on_api_key_changed(**_: Any) -> None:
    from pipeline_whisperer.auth import api_keys_changed

    api_keys_changed()


def _on_user_locked_out(sender: Any, **kwargs: Any) -> None:
    from pipeline_whisperer.lockouts import on_user_locked_out

    on_user_locked_out(sender, **kwargs)

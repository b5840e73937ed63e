"""API keys in the admin: the full key is shown once, in a message, when a key is created."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from pipeline_whisperer.models import ApiKey

# The library registers its own concrete model; ours (with scope and last use) replaces it.
admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    # The library's admin is typed by inference, as tuples of exactly its own length.
    list_display = ("prefix", "name", "scope", "created", "last_used_at", "expiry_date", "_has_expired", "revoked")  # type: ignore[assignment]
    list_filter = ("scope", "revoked", "created")  # type: ignore[assignment]
    readonly_fields = ("last_used_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        # The library's `obj: Model = None` means Model | None (an implicit Optional mypy rejects).
        return (*super().get_readonly_fields(request, obj), "last_used_at")  # type: ignore[arg-type]

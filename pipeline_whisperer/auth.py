"""Who may call the API: API keys in `X-API-Key` for systems, the session for staff.

A missing or unknown key is 401; a read-only key asking to write, or a signed-in user who is
not staff, is 403.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from pipeline_whisperer.logging import bind_request_field
from pipeline_whisperer.models import ApiKey

API_KEY_HEADER = "X-API-Key"
# last_used_at is written at most this often per key, so reads do not all turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        raw_key = request.META.get("HTTP_X_API_KEY")
        if raw_key is None:
            return None
        try:
            api_key = ApiKey.objects.get_from_key(raw_key.strip())
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.") from None
        # The library types get_from_key as its abstract model; our manager returns ApiKeys.
        assert isinstance(api_key, ApiKey)  # noqa: S101  # nosec B101  # narrowing for the type checker
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("The API key has expired.")
        _touch(api_key)
        bind_request_field("api_key_name", api_key.name)  # the name only: the key never reaches a log
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Request) -> str:
        return API_KEY_HEADER


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


class HasApiAccess(permissions.BasePermission):
    """Read keys may read; write keys and staff sessions may do anything the view allows."""

    message = "This API key may only read; writing needs a key with the write scope."

    def has_permission(self, request: Request, view: object) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.method in permissions.SAFE_METHODS or request.auth.scope == ApiKey.Scope.WRITE
        user = request.user
        if user is None or not user.is_authenticated:
            # NotAuthenticated (401) rather than False (403) for anonymous callers.
            raise exceptions.NotAuthenticated(f"Send an API key in the {API_KEY_HEADER} header.")
        if not user.is_staff:
            self.message = "Only staff may use the API with a session."
            return False
        return True

"""Who may call the API: API keys in `X-API-Key` for systems, the session for staff.

A missing or unknown key is 401; a read-only key asking to write, or a signed-in user who is
not staff, is 403.

Looking a key up and hashing it cost more than the rest of a cached request, so each process
remembers the keys it verified. A remembered key is used only while the API keys' generation is
unchanged: every change to a key (saved, deleted, revoked by `manage.py apikey`) gives it a new
generation after commit (`api_keys_changed`), and the rate-limit middleware reads the generation
in the same Redis round trip as its counters, so a revocation is refused by every worker from
its next request on. Without that reading (rate limits off, Redis down) keys are looked up every
time. A remembered key is also forgotten after VERIFIED_KEY_MAX_AGE, which bounds a change made
behind the model's back (raw SQL).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from pipeline_whisperer.logging import bind_request_field
from pipeline_whisperer.models import ApiKey

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
# last_used_at is written at most this often per key, so reads do not all turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
VERIFIED_KEY_MAX_AGE = 60.0  # seconds
# The generation's key in the rate-limit cache, whose middleware reads it with the counters.
API_KEY_GENERATION_KEY = "api-key-generation"
_VERIFIED_KEYS_MAX = 1000  # keys remembered per process; past that the memory starts afresh


@dataclass(frozen=True)
class _Verified:
    api_key: ApiKey
    generation: int
    at: float  # time.monotonic()


# The full key (as sent) to the key it verified as; in this process's memory only, as the key
# itself is while its request lasts.
_verified: dict[str, _Verified] = {}


def api_keys_changed() -> None:
    """Give the API keys a new generation now and again once the current transaction commits,
    so every process forgets the keys it verified. The first renewal makes the change count at
    once for whoever reads it uncommitted (this connection); the second stops another worker from
    remembering, under the first, a key it read before the commit. A failure to reach the cache
    is logged: remembered keys then last at most VERIFIED_KEY_MAX_AGE."""
    _new_generation()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    _verified.clear()
    cache = caches[settings.RATELIMIT_USE_CACHE]
    try:
        cache.add(API_KEY_GENERATION_KEY, 0, timeout=None)
        cache.incr(API_KEY_GENERATION_KEY)
    except (RedisError, ConnectionInterrupted, ValueError) as error:
        logger.error("API keys changed but their generation could not be renewed (%s: %s)", type(error).__name__, error)


def _verify(raw_key: str, generation: int | None) -> ApiKey:
    """The usable key `raw_key` is, remembered or looked up; raises ApiKey.DoesNotExist."""
    now = time.monotonic()
    remembered = _verified.get(raw_key)
    if (
        generation is not None
        and remembered is not None
        and remembered.generation == generation
        and now - remembered.at < VERIFIED_KEY_MAX_AGE
    ):
        return remembered.api_key
    api_key = ApiKey.objects.get_from_key(raw_key)
    # The library types get_from_key as its abstract model; our manager returns ApiKeys.
    assert isinstance(api_key, ApiKey)  # noqa: S101  # nosec B101  # narrowing for the type checker
    if generation is not None:
        if len(_verified) >= _VERIFIED_KEYS_MAX:
            _verified.clear()
        _verified[raw_key] = _Verified(api_key, generation, now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        raw_key = request.META.get("HTTP_X_API_KEY")
        if raw_key is None:
            return None
        try:
            api_key = _verify(raw_key.strip(), getattr(request, "api_key_generation", None))
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("The API key is unknown or revoked.") from None
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
        api_key.last_used_at = now  # the remembered key too, so it is not written on every request


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

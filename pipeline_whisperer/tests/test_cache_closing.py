"""Caches are not closed after every request when their backends have nothing to close."""

from __future__ import annotations

from django.core.cache import close_caches
from django.core.signals import request_finished

from pipeline_whisperer.apps import _caches_have_nothing_to_close

REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}


def test_the_configured_caches_are_not_closed_after_each_request():
    assert close_caches not in [receiver() for _, receiver, _ in request_finished.receivers]


def test_redis_and_local_memory_have_nothing_to_close():
    assert _caches_have_nothing_to_close(
        {"default": REDIS, "ratelimit": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    )


def test_a_redis_cache_told_to_close_its_connections_is_closed(settings):
    assert not _caches_have_nothing_to_close({"default": {**REDIS, "OPTIONS": {"CLOSE_CONNECTION": True}}})
    settings.DJANGO_REDIS_CLOSE_CONNECTION = True
    assert not _caches_have_nothing_to_close({"default": REDIS})


def test_another_backend_is_closed_as_django_does():
    memcached = {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": "127.0.0.1:11211"}
    assert not _caches_have_nothing_to_close({"default": REDIS, "sessions": memcached})

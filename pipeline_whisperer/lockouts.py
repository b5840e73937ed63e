"""Admin login lockouts: django-axes counts failures and refuses; this module shows and lifts them.

Axes (cache handler; settings section "Login lockouts") counts failed logins per username and
client address under hashed keys in the shared cache, so a lockout holds across workers and
ends by itself when its key expires, but the keys cannot be listed. When axes locks a pair out,
`login_lockout_record` also writes a readable record (username, address, until) with the same
lifetime, numbered by an atomic counter so staff can list current lockouts without scanning the
cache. A record counts only while axes' own counter still says locked: a lockout lifted with
axes' `axes_reset_ip_username` drops out of the list too.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cache, get_client_cache_keys, get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from pipeline_whisperer.exceptions import InvalidInput, NotFound
from pipeline_whisperer.ratelimit import client_ip, ip_identity

SEQUENCE_KEY = "login-lockouts:sequence"
# How many of the most recent lockouts the list looks at; older ones still hold, unlisted.
LISTED_AT_MOST = 1000


@dataclass(frozen=True)
class LoginLockout:
    """One (username, address) pair refused until `expires_at`."""

    username: str
    ip_address: str
    locked_at: datetime
    expires_at: datetime

    def retry_after_seconds(self, now: datetime | None = None) -> int:
        return max(1, math.ceil((self.expires_at - (now or timezone.now())).total_seconds()))


def login_client_address(request: HttpRequest) -> str:
    """The address axes counts (AXES_CLIENT_IP_CALLABLE): the one the API rate limits count."""
    return ip_identity(client_ip(request))


def _record_key(username: str, ip_address: str) -> str:
    return "login-lockout:" + sha256(f"{username}\n{ip_address}".encode()).hexdigest()


def _cool_off() -> timedelta:
    return settings.AXES_COOLOFF_TIME


def _axes_locked(username: str, ip_address: str) -> bool:
    keys = get_client_cache_keys(AccessAttempt(username=username, ip_address=ip_address))
    return max(get_cache().get_many(keys).values(), default=0) >= settings.AXES_FAILURE_LIMIT


def login_lockout_record(*, username: str, ip_address: str, now: datetime | None = None) -> LoginLockout:
    """Note that axes has just locked the pair out, for the list and the lockout page."""
    cache, now = get_cache(), now or timezone.now()
    lockout = LoginLockout(username, ip_address, locked_at=now, expires_at=now + _cool_off())
    timeout = math.ceil(_cool_off().total_seconds())
    record_key = _record_key(username, ip_address)
    cache.set(record_key, lockout, timeout=timeout)
    cache.add(SEQUENCE_KEY, 0, timeout=None)
    cache.set(f"login-lockouts:{cache.incr(SEQUENCE_KEY)}", record_key, timeout=timeout)
    return lockout


def login_lockout_get(*, username: str, ip_address: str) -> LoginLockout | None:
    """The pair's current lockout, or None."""
    lockout = get_cache().get(_record_key(username, ip_address))
    return lockout if lockout is not None and _axes_locked(username, ip_address) else None


def login_lockout_list() -> list[LoginLockout]:
    """Current lockouts, the most recent first (three cache round trips)."""
    cache = get_cache()
    last = cache.get(SEQUENCE_KEY, 0)
    slots = cache.get_many([f"login-lockouts:{n}" for n in range(max(1, last - LISTED_AT_MOST + 1), last + 1)])
    record_keys = list(dict.fromkeys(slots[key] for key in sorted(slots, key=lambda k: -int(k.rsplit(":", 1)[1]))))
    records = cache.get_many(record_keys)
    lockouts = [records[key] for key in record_keys if key in records]
    return [lockout for lockout in lockouts if _axes_locked(lockout.username, lockout.ip_address)]


def login_lockout_lift(*, username: str, ip_address: str | None = None) -> list[LoginLockout]:
    """Lift the user's lockout from one address (the one axes counts it under), or from every
    address when none is given; raises InvalidInput or NotFound. Safe under concurrent workers."""
    if not username:
        raise InvalidInput("a username is required")
    if ip_address is None:
        lockouts = [lockout for lockout in login_lockout_list() if lockout.username == username]
        for lockout in lockouts:
            _forget(lockout.username, lockout.ip_address)
    else:
        try:
            ip_address = ip_identity(str(ipaddress.ip_address(ip_address)))
        except ValueError:
            raise InvalidInput(f"{ip_address!r} is not an IP address") from None
        current = login_lockout_get(username=username, ip_address=ip_address)
        lockouts = [current] if current else []
        _forget(username, ip_address)  # also the failures short of a lockout
    if not lockouts:
        where = f" from {ip_address}" if ip_address else ""
        raise NotFound(f"no current login lockout for {username!r}{where}")
    return lockouts


def _forget(username: str, ip_address: str) -> None:
    AxesProxyHandler.reset_attempts(ip_address=ip_address, username=username)
    get_cache().delete(_record_key(username, ip_address))


def on_user_locked_out(sender: Any, request: HttpRequest, username: str | None, ip_address: str, **_: Any) -> None:
    # Axes sends this on the failure that locks the pair out (the one it has just counted) and
    # again on every attempt refused while the lockout holds; only the first starts a lockout.
    if getattr(request, "axes_failures_since_start", None) is not None:
        login_lockout_record(username=username or "", ip_address=ip_address)


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """The page a refused login gets (AXES_LOCKOUT_CALLABLE): 429, when to retry, who can help."""
    username = get_client_username(request, credentials) or ""
    ip_address = request.axes_ip_address  # type: ignore[attr-defined]  # set by axes' middleware
    now = timezone.now()
    lockout = login_lockout_get(username=username, ip_address=ip_address) or LoginLockout(
        username, ip_address, locked_at=now, expires_at=now + _cool_off()
    )
    retry_after = lockout.retry_after_seconds(now)
    context = {
        **admin.site.each_context(request),
        "title": "Login locked",
        "username": username,
        "expires_at": lockout.expires_at,
        "retry_minutes": math.ceil(retry_after / 60),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    response = TemplateResponse(request, "pipeline_whisperer/login_locked.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response.render()

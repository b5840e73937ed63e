"""django-csp's middleware with the policy built once instead of on every response.

django-csp 4 builds the Content-Security-Policy header from the settings on each response
(a dataclass copied to a dict, every directive joined again): about a tenth of a cached API
request's CPU, for a header that is the same every time. Nothing here asks for a nonce or a
per-view policy, so this builds each header once per settings (as django-permissions-policy
does) and leaves any response that does ask, with a nonce or django-csp's decorators, to
django-csp itself.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase

# What django-csp's decorators set on a response to change its policy.
_PER_RESPONSE_POLICY = tuple(
    f"_csp_{part}{suffix}" for part in ("config", "update", "replace") for suffix in ("", "_ro")
)
_POLICY_SETTINGS = ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")


class ConstantPolicyCSPMiddleware(CSPMiddleware):
    """CSPMiddleware, with the headers of a response that has no nonce and no per-view policy
    built once per settings; the same headers, exemptions and excluded prefixes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        setting_changed.connect(self._settings_changed)

    @cached_property
    def _policies(self) -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
        """(header, value, the response attribute that exempts from it, excluded path prefixes)."""
        policies: list[tuple[str, str, str, tuple[str, ...]]] = []
        for header, setting, exempt, report_only in (
            (HEADER, "CONTENT_SECURITY_POLICY", "_csp_exempt", False),
            (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", "_csp_exempt_ro", True),
        ):
            value = build_policy(report_only=report_only)
            prefixes = tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
            if value:
                policies.append((header, value, exempt, prefixes))
        return tuple(policies)

    def _settings_changed(self, *, setting: str, **_: Any) -> None:
        if setting in _POLICY_SETTINGS:
            self.__dict__.pop("_policies", None)

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        per_response = any(hasattr(response, name) for name in _PER_RESPONSE_POLICY)
        if per_response or getattr(request, "_csp_nonce", None) is not None or settings.DEBUG:
            return super().process_response(request, response)
        for header, value, exempt, prefixes in self._policies:
            wanted = not getattr(response, exempt, False) and not request.path_info.startswith(prefixes)
            if wanted and header not in response:
                response[header] = value
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

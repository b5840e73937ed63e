"""Gzip for responses worth compressing.

Django's GZipMiddleware starts at 200 bytes; below about 1 KB the saving is a few hundred
bytes at best and not worth the CPU, so this subclass leaves smaller bodies alone.
"""

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware


class GZipAbove1KBMiddleware(GZipMiddleware):
    """GZipMiddleware for bodies of at least `minimum_size` bytes (streamed bodies always)."""

    minimum_size = 1024

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not response.streaming and len(response.content) < self.minimum_size:  # type: ignore[attr-defined]
            return response
        return super().process_response(request, response)

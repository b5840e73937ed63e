"""The wrapper around each anymail webhook view: our guards before it, our one write after it.

Before anymail sees a post: in production (debug off) no post is taken without
ANYMAIL["WEBHOOK_SECRET"] (anymail would only warn, and anyone could post bounces); a body over
WEBHOOK_MAX_BODY_BYTES gets 413 unread.

anymail then authenticates (basic auth, the provider's signature where it has one), parses, and
sends each tracking event on its `tracking` signal. Our receiver only collects them in this
request's buffer (a context variable); when anymail answered 2xx, the buffer is recorded in one
transaction (`provider_events_record`), so the provider's post is taken whole or not at all. A
database outage there becomes 503 with Retry-After (handler500), and the provider retries.

anymail's refusals (bad auth, bad signature) stay 400 (401 for SES's first, unauthenticated post)
with its one-line reason; a payload anymail cannot read (truncated JSON, another provider's
format) is a 400 too, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, tracking
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from leads.services.provider_events import provider_events_record
from pipeline_whisperer.exceptions import problem_response

logger = logging.getLogger(__name__)

# What anymail's parsers raise on a payload that is not what they expect.
_UNREADABLE = (ValueError, LookupError, TypeError, AttributeError, MultiPartParserError, AnymailError)

Buffer = list[tuple[str, AnymailTrackingEvent]]
_buffer: ContextVar[Buffer | None] = ContextVar("provider_tracking_events", default=None)


@receiver(tracking, dispatch_uid="leads.webhooks.collect_tracking_event")
def collect_tracking_event(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """Keep the event for the request's one write; outside a webhook request nothing would record it."""
    events = _buffer.get()
    if events is None:
        raise RuntimeError("an anymail tracking event outside a webhook request would be lost")
    events.append((esp_name, event))


def provider_webhook(view_class: Any) -> Callable[..., HttpResponse]:
    """`view_class` (an anymail webhook view) behind our guards, its tracking events recorded."""
    anymail_view = view_class.as_view()
    provider = str(view_class.esp_name)

    @csrf_exempt
    @never_cache
    def webhook(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and (refusal := _refusal(request)) is not None:
            return refusal
        events: Buffer = []
        token = _buffer.set(events)
        try:
            response = anymail_view(request, *args, **kwargs)
        except AnymailWebhookValidationFailure as error:
            return _bad_request(request, provider, _first_line(error))
        except ImproperlyConfigured as error:  # anymail's "this is the inbound webhook's payload", a missing key
            return _bad_request(request, provider, _first_line(error))
        except _UNREADABLE as error:
            detail = f"The body is not a {provider} webhook payload ({type(error).__name__})."
            return _bad_request(request, provider, detail)
        finally:
            _buffer.reset(token)
        if 200 <= response.status_code < 300 and events:
            if _unrecognised(events):
                return _bad_request(request, provider, f"Nothing in the body is a {provider} tracking event.")
            provider_events_record(events=events)
        return response

    return webhook


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """403 while production has no webhook secret; 413 for a body over the limit. Read per request,
    so a changed setting holds at once."""
    if not settings.DEBUG and not (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET"):
        logger.warning("webhook refused: ANYMAIL_WEBHOOK_SECRET is not set")
        return problem_response(
            status=403, detail="Webhooks are disabled until ANYMAIL_WEBHOOK_SECRET is set.", request=request
        )
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return problem_response(status=400, detail="Content-Length is not a number.", request=request)
    if length > limit:
        return problem_response(
            status=413, detail=f"The webhook body is {length} bytes; the limit is {limit}.", request=request
        )
    return None


def _unrecognised(events: Buffer) -> bool:
    """No event anymail could name, for no message: the body is some other provider's."""
    return all(event.event_type == EventType.UNKNOWN and not event.message_id for _, event in events)


def _bad_request(request: HttpRequest, provider: str, detail: str) -> HttpResponse:
    logger.warning("%s webhook refused: %s", provider, detail)
    return problem_response(status=400, detail=detail, request=request)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]

"""The console's view of sending: the deliverability rates, the banner while sending is paused,
and staff's pause and resume (POST, CSRF-checked, through `leads.services.brake`).

Pausing needs `leads.add_sendingpause`, resuming `leads.change_sendingpause` (a resume lifts a
pause the brake may have set for a reason: give it to those who should weigh that reason).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from leads.services.brake import deliverability_rates, sending_pause, sending_paused, sending_resume

PAUSE_PERMISSION = "leads.add_sendingpause"
RESUME_PERMISSION = "leads.change_sendingpause"


def sending_context(request: HttpRequest) -> dict[str, Any]:
    """What the banner and the deliverability panel show (five small queries)."""
    rates = deliverability_rates(now=timezone.now())
    return {
        "sending": {
            "pause": sending_paused(),
            "rates": rates,
            "bounce_rate": f"{rates.bounce_rate:.2%}",
            "complaint_rate": f"{rates.complaint_rate:.2%}",
            "max_bounce_rate": f"{settings.OUTREACH_MAX_BOUNCE_RATE:.2%}",
            "max_complaint_rate": f"{settings.OUTREACH_MAX_COMPLAINT_RATE:.2%}",
            "min_sample": settings.OUTREACH_BRAKE_MIN_SAMPLE,
            "can_pause": request.user.has_perm(PAUSE_PERMISSION),
            "can_resume": request.user.has_perm(RESUME_PERMISSION),
        }
    }


@require_POST
def pause(request: HttpRequest) -> HttpResponseRedirect:
    """Staff pause sending, with the reason they give."""
    if not request.user.has_perm(PAUSE_PERMISSION):
        raise PermissionDenied
    reason = request.POST.get("reason", "").strip()[:500] or "Paused by staff from the console."
    paused = sending_paused()
    if paused is not None:
        messages.warning(request, f"Sending was paused already: {paused.reason}")
    else:
        sending_pause(by=request.user.get_username(), reason=reason)
        messages.success(request, "Sending is paused. Nothing is sent until it is resumed.")
    return HttpResponseRedirect(reverse("console:dashboard"))


@require_POST
def resume(request: HttpRequest) -> HttpResponseRedirect:
    """Staff lift the pause in force; the brake counts afresh from now."""
    if not request.user.has_perm(RESUME_PERMISSION):
        raise PermissionDenied
    if sending_resume(by=request.user.get_username()) is None:
        messages.info(request, "Sending was not paused.")
    else:
        messages.success(request, "Sending resumed. The deliverability rates count afresh from now.")
    return HttpResponseRedirect(reverse("console:dashboard"))

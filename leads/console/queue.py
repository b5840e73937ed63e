"""The console's outreach queue (/admin/console/queue/): what is due now, later today and by
recipient domain, the next rows with "send now" and "cancel", and whether sending is paused.

Reads are a constant number of queries; the two buttons are POSTs (CSRF-checked by the admin's
view wrapper, staff with permission to change outreach) that call `leads.services.queue`, so
staff go through the same rules as the API would: only a still-scheduled row can be changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from leads.console.sending import sending_context
from leads.models import Outreach
from leads.services.brake import sending_paused
from leads.services.queue import outreach_cancel, outreach_send_now
from pipeline_whisperer.exceptions import Conflict

NEXT_ROWS = 50  # the rows listed with their buttons
TOP_DOMAINS = 20


def queue_overview(*, now: datetime, rows: int = NEXT_ROWS) -> dict[str, Any]:
    """Counts of the scheduled mail (due now, later today in the console's time zone, by domain),
    the next `rows` of it with their leads, and the pause in force if any."""
    scheduled = Outreach.objects.filter(status=Outreach.Status.SCHEDULED)
    end_of_day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    counts = scheduled.aggregate(
        due_now=Count("pk", filter=Q(scheduled_for__lte=now)),
        later_today=Count("pk", filter=Q(scheduled_for__gt=now, scheduled_for__lt=end_of_day)),
        total=Count("pk"),
    )
    by_domain = list(
        scheduled.order_by()
        .values_list("recipient_domain")
        .annotate(n=Count("pk"), due=Count("pk", filter=Q(scheduled_for__lte=now)))
        .order_by("-n", "recipient_domain")[:TOP_DOMAINS]
    )
    next_rows = list(
        scheduled.select_related("lead", "variant")
        .only("pk", "to_email", "subject", "scheduled_for", "recipient_domain", "lead__company_name", "variant__name")
        .order_by("scheduled_for", "pk")[:rows]
    )
    return {
        **counts,
        "in_flight": Outreach.objects.filter(status=Outreach.Status.PENDING).count(),
        "by_domain": [{"domain": domain or "(unknown)", "count": n, "due": due} for domain, n, due in by_domain],
        "next_rows": next_rows,
        "pause": sending_paused(),
        "now": now,
    }


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def queue(request: HttpRequest) -> TemplateResponse:
    """The queue page."""
    _require(request, "leads.view_outreach")
    context = {
        **admin.site.each_context(request),
        "title": "Outreach queue",
        **queue_overview(now=timezone.now()),
        "can_change": request.user.has_perm("leads.change_outreach"),
        **sending_context(request),
    }
    return TemplateResponse(request, "admin/leads/console/queue.html", context)


@require_POST
def queue_send_now(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Make one scheduled mail due now; the next dispatch sends it."""
    _require(request, "leads.change_outreach")
    outreach = get_object_or_404(Outreach, pk=pk)
    try:
        outreach_send_now(outreach=outreach)
    except Conflict as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Outreach {pk} to {outreach.to_email} goes out with the next dispatch.")
    return HttpResponseRedirect(reverse("console:queue"))


@require_POST
def queue_cancel(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Cancel one scheduled mail, with the reason staff gave."""
    _require(request, "leads.change_outreach")
    outreach = get_object_or_404(Outreach, pk=pk)
    try:
        outreach_cancel(outreach=outreach, reason=request.POST.get("reason", ""), by=request.user.get_username())
    except Conflict as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Outreach {pk} to {outreach.to_email} is cancelled.")
    return HttpResponseRedirect(reverse("console:queue"))

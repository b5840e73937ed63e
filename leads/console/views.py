"""The console's views under the admin: the dashboard (/admin/console/) and the fragment it refreshes from.

Both views go through `admin.site.admin_view`, so only active staff reach them (anyone else
is sent to the admin login), and they also need permission to view leads.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from leads.console.dashboard import console_dashboard, console_period
from leads.console.experiments import SHIP_PERMISSION
from leads.console.providers import providers_context
from leads.console.sending import sending_context

PERIOD_LABELS = {"today": "Today", "7d": "7 days", "30d": "30 days", "all": "All time"}


def _context(request: HttpRequest) -> dict[str, Any]:
    if not request.user.has_perm("leads.view_lead"):
        raise PermissionDenied
    period = console_period(request.GET.get("period"))
    return {
        **console_dashboard(period=period),
        "period_label": PERIOD_LABELS[period],
        "periods": PERIOD_LABELS,
        "refresh_seconds": settings.CONSOLE_REFRESH_SECONDS,
        "can_ship": request.user.has_perm(SHIP_PERMISSION),
        **sending_context(request),
        **providers_context(),
    }


def dashboard(request: HttpRequest) -> TemplateResponse:
    """The whole page; its script swaps in `panels` every CONSOLE_REFRESH_SECONDS."""
    context = {**admin.site.each_context(request), "title": "Pipeline console", **_context(request)}
    return TemplateResponse(request, "admin/leads/console/dashboard.html", context)


def panels(request: HttpRequest) -> TemplateResponse:
    """The panels alone, as an HTML fragment, for the page's live refresh."""
    return TemplateResponse(request, "admin/leads/console/panels.html", _context(request))

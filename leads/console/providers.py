"""The console's view of the email providers: engagement events each reported in the last 24
hours, by type, and the latest webhook events that named no outreach of ours (three queries)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from leads.models import EngagementEvent, UnmatchedProviderEvent

UNMATCHED_SHOWN = 10
WINDOW = timedelta(hours=24)


def providers_context() -> dict[str, Any]:
    """`providers`: rows of (provider, {event type: count}, total) for the last 24 hours, the
    event types seen, and the unmatched events' count (24 hours) and latest rows."""
    since = timezone.now() - WINDOW
    counts = (
        EngagementEvent.objects.filter(received_at__gte=since)
        .exclude(provider="")
        .order_by()
        .values_list("provider", "event_type")
        .annotate(count=Count("id"))
    )
    by_provider: dict[str, dict[str, int]] = {}
    for provider, event_type, count in counts:
        by_provider.setdefault(provider, {})[event_type] = count
    types = [t for t in EngagementEvent.Type.values if any(t in row for row in by_provider.values())]
    rows = [
        {"provider": provider, "counts": [row.get(t, 0) for t in types], "total": sum(row.values())}
        for provider, row in sorted(by_provider.items())
    ]
    unmatched = UnmatchedProviderEvent.objects.order_by("-received_at", "-id")
    return {
        "providers": {
            "types": types,
            "rows": rows,
            "unmatched_count": unmatched.filter(received_at__gte=since).count(),
            "unmatched_latest": list(unmatched[:UNMATCHED_SHOWN]),
        }
    }

"""The pipeline's machinery in the admin: the outbox backlog, dead letters, applied events, and
the email providers' webhook events that named no outreach of ours.

All read-only; the only changes staff can make are retrying or discarding a dead letter or an
outbox event stuck waiting to be published.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from leads.admin.domain import ReadOnlyAdmin, apply_to_each
from leads.models import DeadLetter, OutboxEvent, UnmatchedProviderEvent
from leads.models.pipeline import OutboxQuerySet
from leads.services.pipeline import dead_letter_discard, dead_letter_retry, outbox_discard, outbox_retry


class PublishedFilter(admin.SimpleListFilter):
    title, parameter_name = "delivery", "delivery"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("pending", "Pending (backlog)"),
            ("set_aside", "Refused by the broker (set aside)"),
            ("published", "Published"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
        rows = cast(OutboxQuerySet, queryset)  # the admin's queryset is the model's own
        if self.value() == "pending":
            return rows.pending()
        if self.value() == "set_aside":
            return rows.set_aside()
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "topic", "key", "created_at", "published_at", "attempts", "last_error")
    list_filter = (PublishedFilter, "topic", "event_type")
    search_fields = ("key", "event_id", "correlation_id")
    show_full_result_count = False
    actions = ("retry", "discard")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Actions need the change permission; the change form itself stays read-only.
        return obj is None and request.user.has_perm("leads.change_outboxevent")

    @admin.action(description="Retry selected pending events now", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        apply_to_each(self, request, queryset, lambda row: outbox_retry(row=row), "Retried")

    @admin.action(description="Discard selected pending events (kept as dead letters)", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        apply_to_each(self, request, queryset, lambda row: outbox_discard(row=row), "Discarded")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        backlog = OutboxEvent.objects.pending().count()
        extra_context = {**(extra_context or {}), "title": f"Outbox: {backlog} event(s) waiting to be published"}
        return super().changelist_view(request, extra_context)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("id", "stage", "topic", "key", "status", "attempts", "short_error", "created_at")
    list_filter = ("status", "stage", "topic")
    search_fields = ("key", "event_id", "error")
    actions = ("retry", "discard")

    @admin.display(description="Error")
    def short_error(self, dead_letter: DeadLetter) -> str:
        return dead_letter.error[:120]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Actions need the change permission; the change form itself stays read-only.
        return obj is None and request.user.has_perm("leads.change_deadletter")

    @admin.action(description="Retry selected dead letters", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        apply_to_each(self, request, queryset, lambda dead: dead_letter_retry(dead_letter=dead), "Retried")

    @admin.action(description="Discard selected dead letters", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        apply_to_each(self, request, queryset, lambda dead: dead_letter_discard(dead_letter=dead), "Discarded")


@admin.register(UnmatchedProviderEvent)
class UnmatchedProviderEventAdmin(ReadOnlyAdmin):
    """What providers reported about mail we cannot place (another system's on the same account,
    or outreach since deleted). The recipient is only a hash: search by the provider's message id."""

    list_display = ("received_at", "provider", "event_type", "provider_message_id", "occurred_at")
    list_filter = ("provider", "event_type")
    search_fields = ("provider_message_id", "event_id")
    show_full_result_count = False

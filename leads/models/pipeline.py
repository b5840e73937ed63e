"""The pipeline's own bookkeeping: the transactional outbox, applied events, dead letters."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class OutboxQuerySet(models.QuerySet["OutboxEvent"]):
    def pending(self) -> OutboxQuerySet:
        """Rows not yet published (or, in-process, not yet delivered) nor set aside as failed,
        oldest first: the one query the relay, the in-process bus, the health checks and the
        console share."""
        return self.filter(published_at__isnull=True, failed_at__isnull=True).order_by("id")

    def set_aside(self) -> OutboxQuerySet:
        """Rows the broker refused for good (too large, say): kept for staff to retry or discard."""
        return self.filter(published_at__isnull=True, failed_at__isnull=False).order_by("id")


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change that caused it.

    The relay publishes pending rows to Kafka in id order (so one key's events keep their
    order) and stamps `published_at`; in the in-process shape they are handed to the stages
    after the transaction commits.
    """

    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=100)
    key = models.CharField(max_length=100)
    event_type = models.CharField(max_length=50)
    payload = models.JSONField()
    correlation_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Set when the broker refused the row for good: it no longer holds back the rows behind it.
    failed_at = models.DateTimeField(null=True, blank=True)

    objects = OutboxQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's query: the oldest unpublished rows. Partial, so it stays small.
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True, failed_at__isnull=True), name="outbox_pending_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} for {self.key} on {self.topic}"


class ProcessedEvent(models.Model):
    """That a stage is done with an event, having applied it or dead-lettered it; written in the
    transaction that did so, so a redelivered event is recognised and changes nothing."""

    stage = models.CharField(max_length=50)
    event_id = models.CharField(max_length=100)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stage", "event_id"], name="processed_event_once_per_stage")]
        indexes = [
            models.Index(fields=["processed_at"], name="processed_event_time_idx"),
            # A stage's last progress, for the probes: one index step, however large the table.
            models.Index(fields=["stage", "-processed_at"], name="processed_event_stage_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.stage}: {self.event_id}"


class DeadLetter(models.Model):
    """A message a stage gave up on, with the error; also sent to `<topic>.dlq` on Kafka."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRIED = "retried", "Retried"
        DISCARDED = "discarded", "Discarded"

    stage = models.CharField(max_length=50)
    topic = models.CharField(max_length=100)
    key = models.CharField(max_length=100, blank=True)
    event_id = models.CharField(max_length=100, blank=True)
    # The message as received; text, because a poison message need not be valid JSON.
    value = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "topic"], name="dead_letter_status_topic_idx")]

    def __str__(self) -> str:
        return f"{self.stage} dead letter on {self.topic}: {self.error[:60]}"


class UnmatchedProviderEvent(models.Model):
    """A webhook event from an email provider that names no outreach of ours (mail sent by another
    system on the same account, or outreach since deleted). Kept so staff can see what arrives
    unmatched; the recipient is held only as a hash (it may be an erased person)."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=255, blank=True)
    recipient_hash = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # A provider retrying the webhook records it once.
            models.UniqueConstraint(fields=["provider", "event_id"], name="unmatched_provider_event_unique"),
        ]
        indexes = [models.Index(fields=["-received_at"], name="unmatched_received_idx")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} for {self.provider_message_id or 'an unknown message'}"

"""What keeps outreach lawful and welcome: who must never be mailed, when sending is paused, and
the record of privacy requests."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class SuppressionKind(models.TextChoices):
    ADDRESS = "address", "Address"
    DOMAIN = "domain", "Domain"


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Complaint"
    STAFF = "staff", "Staff"
    ERASED = "erased", "Erased"


class Suppression(models.Model):
    """An address or a whole domain that is never mailed. Matched by `value_hash` (the SHA-256 of
    the lower-cased, normalised value), so an erased person's entry keeps working with `value`
    blanked."""

    Kind = SuppressionKind
    Reason = SuppressionReason

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.ADDRESS)
    value = models.CharField(max_length=254, blank=True)
    value_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # Who or what added it: "one-click", "feedback", "api", "admin", "csv", "privacy", ...
    source = models.CharField(max_length=100, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "value_hash"], name="suppression_unique_value"),
            models.CheckConstraint(condition=Q(kind__in=SuppressionKind.values), name="suppression_kind_valid"),
            models.CheckConstraint(condition=Q(reason__in=SuppressionReason.values), name="suppression_reason_valid"),
        ]
        indexes = [models.Index(fields=["reason", "-created_at"], name="suppression_reason_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value or '(erased)'}: {self.reason}"


class SendingPause(models.Model):
    """Sending is paused while a row has no `resumed_at`: tripped by the deliverability brake or
    set by staff, lifted by staff. The rows are the history of pauses."""

    reason = models.TextField()
    paused_at = models.DateTimeField(auto_now_add=True)
    paused_by = models.CharField(max_length=150, blank=True)  # empty: the brake
    resumed_at = models.DateTimeField(null=True, blank=True)
    resumed_by = models.CharField(max_length=150, blank=True)
    # True while in force, NULL once lifted: unique, so at most one pause is in force and
    # concurrent trips cannot stack (NULLs never collide).
    in_force = models.BooleanField(null=True, default=True, unique=True)

    class Meta:
        ordering = ["-paused_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(in_force=True, resumed_at__isnull=True)
                | Q(in_force__isnull=True, resumed_at__isnull=False),
                name="sending_pause_in_force_until_resumed",
            ),
        ]

    def __str__(self) -> str:
        return f"paused {self.paused_at:%Y-%m-%d %H:%M}: {self.reason}"


class PrivacyRequestKind(models.TextChoices):
    EXPORT = "export", "Export"
    ERASE = "erase", "Erase"


class PrivacyRequest(models.Model):
    """Audit entry for a privacy request. Holds the hash of the address, never the address."""

    Kind = PrivacyRequestKind

    kind = models.CharField(max_length=8, choices=Kind.choices)
    subject_hash = models.CharField(max_length=64)
    requested_by = models.CharField(max_length=150, blank=True)
    # What was found or erased: table -> rows.
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_hash[:12]}… at {self.created_at:%Y-%m-%d %H:%M}"

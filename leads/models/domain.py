"""The lead domain: leads, experiments and their variants, templates, outreach, engagement.

Models hold data and invariants only; every change goes through `leads.services`. Each
invariant that matters is a database constraint, so no code path can break it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from leads.zones import UnknownTimeZone, time_zone_check


def time_zone_validator(value: str) -> None:
    try:
        time_zone_check(value)
    except UnknownTimeZone as error:
        raise ValidationError(str(error)) from None


class Persona(models.TextChoices):
    ENTERPRISE = "enterprise", "Enterprise"
    MID_MARKET = "mid_market", "Mid-market"
    SMB = "smb", "SMB"
    STARTUP = "startup", "Startup"
    INDIVIDUAL = "individual", "Individual"
    UNKNOWN = "unknown", "Unknown"


class CompanySize(models.TextChoices):
    TINY = "1-10", "1-10"
    SMALL = "11-50", "11-50"
    MEDIUM = "51-200", "51-200"
    LARGE = "201-1000", "201-1000"
    ENTERPRISE = "1000+", "1000+"


class BudgetRange(models.TextChoices):
    UNDER_10K = "<10k", "<10k"
    FROM_10K = "10k-50k", "10k-50k"
    FROM_50K = "50k-100k", "50k-100k"
    FROM_100K = "100k-500k", "100k-500k"
    OVER_500K = "500k+", "500k+"


class LeadStatus(models.TextChoices):
    RAW = "raw", "Raw"
    SCORED = "scored", "Scored"
    CONTACTED = "contacted", "Contacted"
    RESPONDED = "responded", "Responded"
    CONVERTED = "converted", "Converted"
    DISQUALIFIED = "disqualified", "Disqualified"
    SNOOZED = "snoozed", "Snoozed"
    FAILED = "failed", "Failed"


class Lead(models.Model):
    Status = LeadStatus
    # What describes the lead (from the CRM or an API caller), as opposed to what the pipeline sets.
    DESCRIPTIVE_FIELDS = (
        "company_name", "company_website", "company_industry", "company_size", "company_description",
        "contact_name", "contact_email", "contact_title", "contact_linkedin",
        "source_channel", "source_campaign", "source_referrer",
        "tech_stack", "pain_points", "budget_range", "timeline", "time_zone",
    )  # fmt: skip
    # What the pipeline records about a lead: identity, status and the score with its reasons.
    PIPELINE_FIELDS = (
        "lightfield_id", "status", "score", "persona",
        "scoring_model", "scoring_reasons", "scored_at", "failure_reason", "not_contacted_reason",
    )  # fmt: skip

    lightfield_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RAW)

    company_name = models.CharField(max_length=255)
    company_website = models.CharField(max_length=500, blank=True)
    company_industry = models.CharField(max_length=100, blank=True)
    company_size = models.CharField(max_length=16, choices=CompanySize.choices, blank=True)
    company_description = models.TextField(blank=True)

    contact_name = models.CharField(max_length=255, blank=True)
    contact_email = models.EmailField(max_length=254, blank=True)
    contact_title = models.CharField(max_length=255, blank=True)
    contact_linkedin = models.CharField(max_length=500, blank=True)

    source_channel = models.CharField(max_length=100, blank=True)
    source_campaign = models.CharField(max_length=255, blank=True)
    source_referrer = models.CharField(max_length=500, blank=True)

    tech_stack = models.JSONField(default=list, blank=True)
    pain_points = models.JSONField(default=list, blank=True)
    budget_range = models.CharField(max_length=16, choices=BudgetRange.choices, blank=True)
    timeline = models.CharField(max_length=100, blank=True)
    # The event exactly as the CRM sent it, unknown fields included.
    raw_payload = models.JSONField(default=dict, blank=True)
    lightfield_created_at = models.DateTimeField(null=True, blank=True)

    score = models.FloatField(null=True, blank=True)
    persona = models.CharField(max_length=16, choices=Persona.choices, default=Persona.UNKNOWN)
    scoring_model = models.CharField(max_length=100, blank=True)
    scoring_reasons = models.JSONField(default=list, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    snoozed_until = models.DateTimeField(null=True, blank=True)
    # The status a snooze interrupted, so unsnooze can put the lead back where it was.
    status_before_snooze = models.CharField(max_length=16, choices=Status.choices, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    # The recipient's IANA time zone (from the event or the API); empty means OUTREACH_DEFAULT_TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True, default="", db_default="", validators=[time_zone_validator])
    # Why the outreach stage last declined to write to the lead ("" once it was written to).
    not_contacted_reason = models.CharField(max_length=255, blank=True, default="", db_default="")
    contacted_at = models.DateTimeField(null=True, blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    outreach_count = models.PositiveIntegerField(default=0)
    engagement_count = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0.0, score__lte=1.0), name="lead_score_in_unit_range"
            ),
            models.CheckConstraint(condition=Q(status__in=LeadStatus.values), name="lead_status_valid"),
            models.CheckConstraint(condition=Q(persona__in=Persona.values), name="lead_persona_valid"),
            models.CheckConstraint(condition=~Q(company_name=""), name="lead_company_name_not_empty"),
            models.CheckConstraint(condition=~Q(lightfield_id=""), name="lead_lightfield_id_not_empty"),
        ]
        indexes = [
            # With the id, a status filter's cursor page is one range read in the list's order.
            models.Index(fields=["status", "-created_at", "-id"], name="lead_status_created_idx"),
            models.Index(fields=["persona", "-created_at"], name="lead_persona_created_idx"),
            models.Index(fields=["-score"], name="lead_score_idx"),
            models.Index(fields=["company_industry"], name="lead_industry_idx"),
            models.Index(fields=["-created_at", "-id"], name="lead_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.company_name} ({self.lightfield_id})"


class OutreachTemplate(models.Model):
    """A message in Django template syntax over the safe outreach context."""

    name = models.CharField(max_length=100, unique=True)
    subject = models.CharField(max_length=500)
    body = models.TextField()
    # Optional: with one, mail is multipart/alternative (text and HTML).
    html_body = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExperimentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class SuccessEvent(models.TextChoices):
    """What counts as an experiment's success. A conversion always does: it is the goal the others
    stand in for."""

    CONVERTED = "converted", "Converted"
    REPLIED_INTERESTED = "replied_interested", "Replied with interest"
    CLICKED = "clicked", "Clicked"


class Experiment(models.Model):
    Status = ExperimentStatus
    SuccessEvent = SuccessEvent

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # Empty means every persona.
    target_persona = models.CharField(max_length=16, choices=Persona.choices, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    success_event = models.CharField(
        max_length=24, choices=SuccessEvent.choices, default=SuccessEvent.CONVERTED, db_default=SuccessEvent.CONVERTED
    )
    # The stopping rule (leads.bandit.StoppingRule): a winner is found when the least expected
    # loss is below loss_threshold (conversion-rate units: 0.001 is 0.1 percentage point), that
    # variant is the best with 95% probability, and every active variant has
    # min_resolved_per_variant successes plus failures.
    loss_threshold = models.FloatField(default=0.001, db_default=0.001)
    min_resolved_per_variant = models.PositiveIntegerField(default=50, db_default=50)
    # Uniform allocation over the active variants until the variants have sent this many.
    burn_in_sends = models.PositiveIntegerField(default=0, db_default=0)
    # "Ship the winner": the variant kept (the others were paused), when and by whom.
    shipped_variant = models.ForeignKey("Variant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    shipped_at = models.DateTimeField(null=True, blank=True)
    shipped_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ExperimentStatus.values), name="experiment_status_valid"),
            models.CheckConstraint(condition=Q(success_event__in=SuccessEvent.values), name="experiment_success_valid"),
            models.CheckConstraint(
                condition=Q(loss_threshold__gt=0) & Q(loss_threshold__lt=1), name="experiment_loss_threshold_in_range"
            ),
            models.CheckConstraint(
                condition=Q(shipped_variant__isnull=True) | Q(shipped_at__isnull=False),
                name="experiment_shipped_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm of an experiment: a template and its Beta(alpha, beta) posterior.

    alpha and beta move exactly once per reward. The outreach stage draws from an adjusted
    posterior (pending sends as weighted failures, `leads.bandit.adjust_arms`) and records here
    the one it used for its last choice and when: that is what the API and console show."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    template = models.ForeignKey(OutreachTemplate, on_delete=models.PROTECT, related_name="variants")
    is_active = models.BooleanField(default=True)
    alpha = models.FloatField(default=1.0)
    beta = models.FloatField(default=1.0)
    sends = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    # The adjusted posterior of the last choice: beta here is beta + pending_weight as it was then.
    posterior_alpha = models.FloatField(null=True, blank=True)
    posterior_beta = models.FloatField(null=True, blank=True)
    pending_weight = models.FloatField(default=0.0, db_default=0.0)
    posterior_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["experiment_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="variant_name_unique_in_experiment"),
            models.CheckConstraint(condition=Q(alpha__gt=0) & Q(beta__gt=0), name="variant_posterior_positive"),
            models.CheckConstraint(
                condition=Q(posterior_at__isnull=True) | (Q(posterior_alpha__gt=0) & Q(posterior_beta__gt=0)),
                name="variant_adjusted_posterior_positive",
            ),
            models.CheckConstraint(
                condition=Q(successes__lte=F("sends")) & Q(failures__lte=F("sends") - F("successes")),
                name="variant_rewards_within_sends",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name} / {self.name}"


class OutreachStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    REPLIED = "replied", "Replied"
    CONVERTED = "converted", "Converted"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class BounceType(models.TextChoices):
    HARD = "hard", "Hard"
    SOFT = "soft", "Soft"


class OutreachReward(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class Outreach(models.Model):
    """One message to one lead, with the time it reached each status."""

    Status = OutreachStatus
    Reward = OutreachReward
    BounceType = BounceType

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outreach")
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="outreach", null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    to_email = models.EmailField(max_length=254)
    # The address and domain as matched against suppressions and the re-contact window (lower-cased).
    recipient_key = models.CharField(max_length=254, blank=True, default="", db_default="")
    recipient_domain = models.CharField(max_length=253, blank=True, default="", db_default="")
    subject = models.CharField(max_length=500)
    body = models.TextField()
    html_body = models.TextField(blank=True, default="", db_default="")
    message_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # The email provider's own id for the message (anymail_status.message_id); its webhooks name it.
    provider_message_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    # When the mail server or provider accepted the message: a dispatcher that died before
    # recording the send must not send it again.
    handed_over_at = models.DateTimeField(null=True, blank=True)
    # When the dispatcher may send it (send window, pacing); it sends rows due by now.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # When a dispatcher took the row to send it: a pending row whose claim is old was interrupted.
    claimed_at = models.DateTimeField(null=True, blank=True)
    bounce_type = models.CharField(max_length=4, choices=BounceType.choices, blank=True, default="", db_default="")
    soft_bounces = models.PositiveSmallIntegerField(default=0, db_default=0)
    error = models.TextField(blank=True)
    # A single column holds the reward, so an outreach can never be rewarded twice.
    reward = models.CharField(max_length=8, choices=Reward.choices, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "outreach"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OutreachStatus.values), name="outreach_status_valid"),
            models.CheckConstraint(
                condition=(Q(reward="") & Q(rewarded_at__isnull=True))
                | (Q(reward__in=OutreachReward.values) & Q(rewarded_at__isnull=False)),
                name="outreach_reward_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(reward=OutreachReward.SUCCESS)
                | Q(converted_at__isnull=False)
                | Q(clicked_at__isnull=False)
                | Q(replied_at__isnull=False),
                name="outreach_success_has_its_event",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at", "-id"], name="outreach_status_created_idx"),
            models.Index(fields=["variant", "status"], name="outreach_variant_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="outreach_created_idx"),
            # The dispatcher's query: what is due. Partial, so it holds only the queue.
            models.Index(
                fields=["scheduled_for"],
                condition=Q(status__in=["scheduled", "pending"]),
                name="outreach_queue_idx",
            ),
            models.Index(fields=["recipient_key", "-created_at"], name="outreach_recipient_idx"),
            models.Index(
                fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="outreach_provider_id_idx"
            ),
            models.Index(fields=["recipient_domain", "-created_at"], name="outreach_domain_idx"),
            # The deliverability brake's 7-day counts (each scrape of /metrics runs them too).
            models.Index(fields=["sent_at"], condition=Q(sent_at__isnull=False), name="outreach_sent_idx"),
            models.Index(fields=["bounced_at"], condition=Q(bounce_type="hard"), name="outreach_hard_bounce_idx"),
            # The adjusted posteriors' aggregates: sends awaiting their reward, and recent successes.
            models.Index(
                fields=["variant", "sent_at"],
                condition=Q(reward="") & Q(sent_at__isnull=False),
                name="outreach_unresolved_idx",
            ),
            models.Index(fields=["-rewarded_at"], condition=Q(reward="success"), name="outreach_success_idx"),
            models.Index(
                fields=["complained_at"], condition=Q(complained_at__isnull=False), name="outreach_complained_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Outreach {self.pk} to {self.to_email} ({self.status})"

    @staticmethod
    def with_provider_id(provider_ids: Iterable[str]) -> Q:
        """Outreach whose provider message id is one of `provider_ids`, in a form the partial
        index serves: PostgreSQL proves a long IN list implies the index's condition only when
        the query states that condition too (otherwise it scans the table)."""
        return Q(provider_message_id__in=list(provider_ids)) & ~Q(provider_message_id="")


class EngagementType(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    REPLIED = "replied", "Replied"
    CONVERTED = "converted", "Converted"
    BOUNCED = "bounced", "Bounced"
    DEFERRED = "deferred", "Deferred"
    REJECTED = "rejected", "Rejected"
    COMPLAINED = "complained", "Complained"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class EngagementEvent(models.Model):
    """What a lead did with an outreach. Append-only: rows are written once, never changed."""

    Type = EngagementType

    event_id = models.CharField(max_length=100, unique=True)
    outreach = models.ForeignKey(Outreach, on_delete=models.CASCADE, related_name="engagements")
    event_type = models.CharField(max_length=16, choices=Type.choices)
    # The email provider that reported it (anymail's esp_name, lower case); empty for our own API.
    provider = models.CharField(max_length=32, blank=True, default="", db_default="")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(event_type__in=EngagementType.values), name="engagement_type_valid"),
        ]
        indexes = [
            models.Index(fields=["-received_at"], name="engagement_received_idx"),
            models.Index(fields=["provider", "-received_at"], name="engagement_provider_idx"),
            # The list's default order and cursor, and the activity feed's latest engagement.
            models.Index(fields=["-occurred_at", "-id"], name="engagement_occurred_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} on outreach {self.outreach_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Engagement events are append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

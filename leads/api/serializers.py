"""Input serializers validate what callers send; output serializers shape what they get back.

Inputs are plain Serializers: they never save. Views hand their validated data to a service.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db.models import F
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leads.addresses import InvalidAddress, email_normalize, single_line
from leads.lightfield import storage_problem
from leads.models import (
    BudgetRange,
    CompanySize,
    EngagementEvent,
    Experiment,
    Lead,
    Outreach,
    OutreachTemplate,
    Persona,
    SuccessEvent,
    Variant,
)
from leads.selectors import DecisionStatus, ExperimentDecision, VariantPosterior
from leads.zones import UnknownTimeZone, time_zone_check

# --- Leads ------------------------------------------------------------------------------

_LEAD_EDITABLE = list(Lead.DESCRIPTIVE_FIELDS)


def _blank_choice(choices: list[tuple[str, str]]) -> serializers.ChoiceField:
    """A read-only choice that may be "" (unset). DRF drops `allow_blank` from read-only model
    fields, so without this the schema would promise a value from the enum where we send ""."""
    return serializers.ChoiceField(choices=choices, allow_blank=True, read_only=True)


def _blank_email() -> serializers.CharField:
    """A read-only address that may be "": a plain string, since "" is not of the email format."""
    return serializers.CharField(read_only=True, help_text="The contact's email address; empty when unknown.")


class LeadListSerializer(serializers.ModelSerializer):
    company_size = _blank_choice(CompanySize.choices)
    contact_email = _blank_email()

    class Meta:
        model = Lead
        fields = [
            "id",
            "lightfield_id",
            "status",
            "score",
            "persona",
            "company_name",
            "company_industry",
            "company_size",
            "contact_name",
            "contact_email",
            "contact_title",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LeadDetailSerializer(serializers.ModelSerializer):
    company_size = _blank_choice(CompanySize.choices)
    budget_range = _blank_choice(BudgetRange.choices)
    contact_email = _blank_email()

    class Meta:
        model = Lead
        fields = [
            "id",
            *Lead.PIPELINE_FIELDS,
            *_LEAD_EDITABLE,
            "raw_payload",
            "lightfield_created_at",
            "snoozed_until",
            "unsubscribed_at",
            "bounced_at",
            "contacted_at",
            "responded_at",
            "converted_at",
            "outreach_count",
            "engagement_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _StringList(serializers.ListField):
    child = serializers.CharField(max_length=200)

    def __init__(self, **kwargs: Any) -> None:
        # ListField reads max_length from its arguments only; a class attribute is ignored.
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)


class _SingleLine(serializers.CharField):
    """Text that may reach a mail header: line breaks become spaces, as on the ingest path."""

    def to_internal_value(self, data: Any) -> str:
        return single_line(super().to_internal_value(data))


class _TimeZone(serializers.CharField):
    """An IANA time zone name (`Europe/Berlin`), or "" for the default zone."""

    def to_internal_value(self, data: Any) -> str:
        try:
            return time_zone_check(super().to_internal_value(data))
        except UnknownTimeZone as error:
            raise serializers.ValidationError(str(error)) from None


@extend_schema_field(OpenApiTypes.EMAIL)
class _ContactEmail(serializers.CharField):
    """An address we could send to, in its normalised form, by the ingest path's rules; "" is
    allowed (such a lead is never contacted)."""

    def to_internal_value(self, data: Any) -> str:
        address = super().to_internal_value(data)
        try:
            return email_normalize(address) if address else ""
        except InvalidAddress as error:
            raise serializers.ValidationError(str(error)) from None


class LeadWriteSerializer(serializers.Serializer):
    """The descriptive fields a caller may set; status changes only through actions. The rules
    are the ingest path's (leads.lightfield.parse_event): one-line text but the description."""

    company_name = _SingleLine(max_length=255)
    company_website = _SingleLine(max_length=500, required=False, allow_blank=True)
    company_industry = _SingleLine(max_length=100, required=False, allow_blank=True)
    company_size = serializers.ChoiceField(choices=CompanySize.choices, required=False, allow_blank=True)
    company_description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    contact_name = _SingleLine(max_length=255, required=False, allow_blank=True)
    contact_email = _ContactEmail(max_length=254, required=False, allow_blank=True)
    contact_title = _SingleLine(max_length=255, required=False, allow_blank=True)
    contact_linkedin = _SingleLine(max_length=500, required=False, allow_blank=True)
    source_channel = _SingleLine(max_length=100, required=False, allow_blank=True)
    source_campaign = _SingleLine(max_length=255, required=False, allow_blank=True)
    source_referrer = _SingleLine(max_length=500, required=False, allow_blank=True)
    tech_stack = _StringList(required=False)
    pain_points = _StringList(required=False)
    budget_range = serializers.ChoiceField(choices=BudgetRange.choices, required=False, allow_blank=True)
    timeline = _SingleLine(max_length=100, required=False, allow_blank=True)
    time_zone = _TimeZone(
        max_length=64, required=False, allow_blank=True, help_text="The contact's IANA time zone (send window)."
    )


class LeadCreateSerializer(LeadWriteSerializer):
    lightfield_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$", max_length=64, error_messages={"invalid": "Use 1-64 letters, digits, or _ . : -"}
    )


class LeadSnoozeSerializer(serializers.Serializer):
    until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the snooze ends; leave out to snooze until unsnoozed."
    )


class LeadStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_persona = serializers.DictField(child=serializers.IntegerField())
    average_score = serializers.FloatField(allow_null=True)
    contacted = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)


def lead_stats_answer(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats as the API answers them: plain data, so the cache keeps the answer itself."""
    return dict(LeadStatsSerializer(stats).data)


# --- Templates --------------------------------------------------------------------------


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutreachTemplate
        fields = ["id", "name", "subject", "body", "html_body", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"html_body": {"help_text": "Optional HTML body (autoescaped); empty: text-only mail."}}


class TemplatePreviewSerializer(serializers.Serializer):
    lead_id = serializers.IntegerField(min_value=1)


class TemplateDraftPreviewSerializer(TemplatePreviewSerializer):
    subject = serializers.CharField(max_length=500)
    body = serializers.CharField(max_length=50_000)
    html_body = serializers.CharField(max_length=200_000, required=False, allow_blank=True, default="")


class RenderedMessageSerializer(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()
    html_body = serializers.CharField(help_text="Empty when the template has no HTML body.")


# --- Experiments ------------------------------------------------------------------------


class VariantSerializer(serializers.ModelSerializer):
    """A variant with its stored counters and its adjusted posterior (pending sends counted as
    weighted failures) as the bandit last chose with it. It describes the answer in the schema;
    `variant_answer` builds it."""

    template_name = serializers.CharField(source="template.name", read_only=True)
    pending_weight = serializers.FloatField(
        read_only=True,
        help_text="Failures the unresolved sends count for: each weighted by the share of successes"
        " that arrive within its age.",
    )
    posterior_alpha = serializers.FloatField(read_only=True, help_text="alpha as of posterior_at (not adjusted).")
    posterior_beta = serializers.FloatField(read_only=True, help_text="beta as of posterior_at, plus pending_weight.")
    posterior_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the bandit last chose with this posterior; null: never yet, computed at reading.",
    )
    posterior_mean = serializers.FloatField(read_only=True)
    credible_interval_95 = serializers.ListField(child=serializers.FloatField(), read_only=True)
    probability_best = serializers.FloatField(read_only=True)
    expected_loss = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Conversion rate given up, in expectation, by choosing this variant (0.001 is 0.1 percentage "
        "point), among the active variants; null when paused.",
    )

    class Meta:
        model = Variant
        fields = [
            "id",
            "name",
            "template",
            "template_name",
            "is_active",
            "alpha",
            "beta",
            "sends",
            "successes",
            "failures",
            "pending_weight",
            "posterior_alpha",
            "posterior_beta",
            "posterior_at",
            "posterior_mean",
            "credible_interval_95",
            "probability_best",
            "expected_loss",
            "created_at",
        ]
        read_only_fields = fields


class ExperimentDecisionSerializer(serializers.Serializer):
    """Where the experiment stands under its stopping rule."""

    status = serializers.ChoiceField(
        choices=DecisionStatus.CHOICES,
        help_text="running; winner_found: a variant's expected loss is below loss_threshold, it is the best "
        "with 95% probability and every active variant has min_resolved_per_variant resolved sends; "
        "shipped: a variant was shipped.",
    )
    winner = serializers.IntegerField(allow_null=True, help_text="The winning or shipped variant's id.")
    shipped_at = serializers.DateTimeField(allow_null=True)
    shipped_by = serializers.CharField(help_text="Who shipped it: api:<key name> or staff:<username>.")


class ExperimentSerializer(serializers.ModelSerializer):
    """An experiment with its decision and its variants. It describes the answer in the schema;
    `experiment_answer` builds it."""

    variants = VariantSerializer(many=True, read_only=True)
    target_persona = _blank_choice(Persona.choices)
    decision = ExperimentDecisionSerializer(read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "description",
            "target_persona",
            "status",
            "success_event",
            "loss_threshold",
            "min_resolved_per_variant",
            "burn_in_sends",
            "decision",
            "variants",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# Experiments and variants are answered by plain functions: a page of experiments holds many
# variants of many fields each, and DRF's per-field work was most of the endpoint's CPU.


def variant_answer(variant: Variant, posterior: VariantPosterior) -> dict[str, Any]:
    """A variant as VariantSerializer describes it; `variant.template` is loaded with it."""
    loss = posterior.expected_loss
    return {
        "id": variant.pk,
        "name": variant.name,
        "template": variant.template_id,
        "template_name": variant.template.name,
        "is_active": variant.is_active,
        "alpha": variant.alpha,
        "beta": variant.beta,
        "sends": variant.sends,
        "successes": variant.successes,
        "failures": variant.failures,
        "pending_weight": round(posterior.pending_weight, 6),
        "posterior_alpha": posterior.alpha,
        "posterior_beta": posterior.beta,
        "posterior_at": posterior.at,
        "posterior_mean": round(posterior.mean, 6),
        "credible_interval_95": [round(posterior.ci_low, 6), round(posterior.ci_high, 6)],
        "probability_best": round(posterior.probability_best, 4),
        "expected_loss": None if loss is None else round(loss, 6),
        "created_at": variant.created_at,
    }


def experiment_answer(
    experiment: Experiment, posteriors: dict[int, VariantPosterior], decision: ExperimentDecision
) -> dict[str, Any]:
    """An experiment as ExperimentSerializer describes it, its variants (prefetched) by name."""
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "description": experiment.description,
        "target_persona": experiment.target_persona,
        "status": experiment.status,
        "success_event": experiment.success_event,
        "loss_threshold": experiment.loss_threshold,
        "min_resolved_per_variant": experiment.min_resolved_per_variant,
        "burn_in_sends": experiment.burn_in_sends,
        "decision": {
            "status": decision.status,
            "winner": decision.winner,
            "shipped_at": experiment.shipped_at,
            "shipped_by": experiment.shipped_by,
        },
        "variants": [variant_answer(variant, posteriors[variant.pk]) for variant in experiment.variants.all()],
        "created_at": experiment.created_at,
        "updated_at": experiment.updated_at,
    }


class VariantWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    template = serializers.PrimaryKeyRelatedField(queryset=OutreachTemplate.objects.all())
    is_active = serializers.BooleanField(default=True)


_SUCCESS_EVENT_HELP = (
    "What counts as a variant's success: converted (default), replied_interested (a reply classified"
    " interested) or clicked. A conversion always counts."
)


_LOSS_THRESHOLD_HELP = (
    "The stopping rule's threshold on the least expected loss, in conversion-rate units (default 0.001, 0.1"
    " percentage point)."
)
_MIN_RESOLVED_HELP = "Resolved sends (successes plus failures) every active variant needs before a winner (default 50)."
_BURN_IN_HELP = "Allocate uniformly over the active variants until they have sent this many (default 0: no burn-in)."


class ExperimentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=5_000, required=False, allow_blank=True, default="")
    target_persona = serializers.ChoiceField(
        choices=Persona.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="Leave blank to target every persona.",
    )
    success_event = serializers.ChoiceField(
        choices=SuccessEvent.choices, required=False, default=SuccessEvent.CONVERTED, help_text=_SUCCESS_EVENT_HELP
    )
    loss_threshold = serializers.FloatField(
        required=False, min_value=1e-6, max_value=0.5, help_text=_LOSS_THRESHOLD_HELP
    )
    min_resolved_per_variant = serializers.IntegerField(
        required=False, min_value=0, max_value=1_000_000, help_text=_MIN_RESOLVED_HELP
    )
    burn_in_sends = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000, help_text=_BURN_IN_HELP)
    # DRF passes min_length/max_length on to the ListSerializer; the stubs' __init__ lacks them.
    variants = VariantWriteSerializer(many=True, min_length=2, max_length=20)  # type: ignore[call-arg]


class ExperimentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=5_000, required=False, allow_blank=True)
    target_persona = serializers.ChoiceField(choices=Persona.choices, required=False, allow_blank=True)
    success_event = serializers.ChoiceField(choices=SuccessEvent.choices, required=False, help_text=_SUCCESS_EVENT_HELP)
    loss_threshold = serializers.FloatField(
        required=False, min_value=1e-6, max_value=0.5, help_text=_LOSS_THRESHOLD_HELP
    )
    min_resolved_per_variant = serializers.IntegerField(
        required=False, min_value=0, max_value=1_000_000, help_text=_MIN_RESOLVED_HELP
    )
    burn_in_sends = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000, help_text=_BURN_IN_HELP)


class ExperimentShipSerializer(serializers.Serializer):
    variant = serializers.PrimaryKeyRelatedField(
        queryset=Variant.objects.all(), help_text="The variant to ship: an active arm of this experiment."
    )


class VariantUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    template = serializers.PrimaryKeyRelatedField(queryset=OutreachTemplate.objects.all(), required=False)
    is_active = serializers.BooleanField(required=False)


# --- Outreach and dashboard -------------------------------------------------------------


class OutreachSerializer(serializers.ModelSerializer):
    lightfield_id = serializers.CharField(source="lead.lightfield_id", read_only=True)
    experiment = serializers.IntegerField(source="variant.experiment_id", read_only=True, allow_null=True)
    reward = _blank_choice(Outreach.Reward.choices)
    bounce_type = _blank_choice(Outreach.BounceType.choices)

    class Meta:
        model = Outreach
        fields = [
            "id",
            "lead",
            "lightfield_id",
            "variant",
            "experiment",
            "status",
            "to_email",
            "subject",
            "body",
            "message_id",
            "error",
            "reward",
            "rewarded_at",
            "created_at",
            "sent_at",
            "delivered_at",
            "opened_at",
            "clicked_at",
            "replied_at",
            "converted_at",
            "bounced_at",
            "bounce_type",
            "soft_bounces",
            "complained_at",
            "unsubscribed_at",
            "failed_at",
            "expired_at",
        ]
        read_only_fields = fields


class EngagementEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = EngagementEvent
        fields = ["id", "event_id", "outreach", "event_type", "occurred_at", "received_at"]
        read_only_fields = fields


class FunnelQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=["today", "7d", "30d", "all"], default="30d")


class TimelineQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)


class ActivityQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)


class FunnelSerializer(serializers.Serializer):
    since = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    rates = serializers.DictField(child=serializers.FloatField(allow_null=True))


class TimelinePointSerializer(serializers.Serializer):
    date = serializers.DateField()
    leads = serializers.IntegerField()
    contacted = serializers.IntegerField()
    converted = serializers.IntegerField()


# The dashboard's cached answers, as plain data (see lead_stats_answer).


def funnel_answer(funnel: dict[str, Any]) -> dict[str, Any]:
    return dict(FunnelSerializer(funnel).data)


def timeline_answer(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(point) for point in TimelinePointSerializer(points, many=True).data]


class ActivitySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    lead_id = serializers.IntegerField()
    summary = serializers.CharField()


# --- Ingest and engagement --------------------------------------------------------------


class IngestItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    lightfield_id = serializers.CharField(allow_null=True)
    lead_id = serializers.IntegerField(allow_null=True)
    created = serializers.BooleanField(allow_null=True)
    lead_status = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    items = IngestItemSerializer(many=True)


class EngagementInputSerializer(serializers.Serializer):
    event_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:@-]{1,100}$", error_messages={"invalid": "Use 1-100 letters, digits, or _ . : @ -"}
    )
    event_type = serializers.ChoiceField(choices=EngagementEvent.Type.choices)
    outreach_id = serializers.IntegerField(min_value=1, required=False)
    message_id = serializers.CharField(max_length=255, required=False)
    bounce_type = serializers.ChoiceField(
        choices=Outreach.BounceType.choices,
        required=False,
        help_text="Only for `bounced`: `hard` (the address does not exist; it is suppressed) or `soft` (a "
        "temporary failure; the mail is retried later, up to OUTREACH_SOFT_BOUNCE_RETRIES). Absent means hard.",
    )
    occurred_at = serializers.DateTimeField(required=False)
    payload = serializers.DictField(required=False)

    def validate_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        problem = storage_problem(payload)  # what jsonb cannot hold: a 400, not a 500
        if problem:
            raise serializers.ValidationError(f"{problem}; it cannot be stored.")
        return payload

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("outreach_id" in data) == ("message_id" in data):
            raise serializers.ValidationError("Give exactly one of outreach_id and message_id.")
        if "bounce_type" in data and data["event_type"] != EngagementEvent.Type.BOUNCED:
            raise serializers.ValidationError({"bounce_type": "Only a bounced event has a bounce_type."})
        return data


class EngagementItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event_id = serializers.CharField(allow_null=True)
    outreach_id = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class EngagementResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    items = EngagementItemSerializer(many=True)


# The cursor-paged lists read their rows as `.values()` in these serializers' output shape (the
# serializers stay, for the schema and the detail views): columns under their own names
# (a foreign key gives its id), the rest by expression.
LEAD_LIST_COLUMNS = tuple(LeadListSerializer.Meta.fields)
LEAD_DETAIL_COLUMNS = tuple(LeadDetailSerializer.Meta.fields)
OUTREACH_EXPRESSIONS = {"lightfield_id": F("lead__lightfield_id"), "experiment": F("variant__experiment_id")}
OUTREACH_COLUMNS = tuple(name for name in OutreachSerializer.Meta.fields if name not in OUTREACH_EXPRESSIONS)
ENGAGEMENT_COLUMNS = tuple(EngagementEventSerializer.Meta.fields)


def batch_answer(items: list[Any], result_serializer: type[serializers.Serializer]) -> dict[str, Any]:
    """The 202 body of a batch: counts and one item per input, in input order."""
    rejected = sum(1 for item in items if item.error)
    return result_serializer({"accepted": len(items) - rejected, "rejected": rejected, "items": items}).data


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    """Validate `data` with `serializer_class`, raising DRF's 400 on failure."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def validated_query(serializer_class: type[serializers.Serializer], query: QueryDict) -> dict[str, Any]:
    """`validated` for query parameters that fields alone check (no database, no request): the
    answer to a query seen before is remembered, since building the serializer costs about a
    tenth of a cached dashboard request. Refused queries are checked every time."""
    items = tuple((key, tuple(values)) for key, values in query.lists())
    return dict(_validated_query(serializer_class, items))


@lru_cache(maxsize=256)
def _validated_query(
    serializer_class: type[serializers.Serializer], items: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[str, Any]:
    query = QueryDict(mutable=True)
    for key, values in items:
        query.setlist(key, list(values))
    return validated(serializer_class, query)

"""The staff console: leads, templates, outreach, engagement (experiments: experiments.py).

Changes of state go through `leads.services`, so the admin obeys the same rules as the API.
Outreach and engagement are history: staff may read them, never edit them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from leads.admin.privacy import PrivacyActions
from leads.caching import experiments_invalidate, lead_metrics_invalidate
from leads.console.story import lead_story
from leads.models import EngagementEvent, Lead, Outreach, OutreachTemplate
from leads.services import leads as lead_services
from leads.services import outreach as outreach_services
from leads.services import templates as template_services
from leads.services.reply_classes import reply_class_label
from pipeline_whisperer.exceptions import DomainError


def apply_to_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    service: Callable[[Any], object],
    verb: str,
) -> None:
    """Run `service` on each selected row, log each change in the admin log, and tell the user
    what was done and what was refused (a domain rule said no)."""
    done, refused = 0, []
    for row in queryset:
        try:
            service(row)
        except DomainError as error:
            refused.append(f"{row}: {error.message}")
            continue
        model_admin.log_change(request, row, f"{verb} from the admin.")
        done += 1
    noun = model_admin.model._meta.verbose_name_plural
    if done:
        model_admin.message_user(request, f"{verb} {done} of the selected {noun}.", messages.SUCCESS)
    if refused:
        model_admin.message_user(
            request, f"Left {len(refused)} as they were: " + "; ".join(refused[:10]), messages.WARNING
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and machinery: staff may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CachedAnswersAdmin(admin.ModelAdmin):
    """An admin whose saves and deletes change answers the API serves from the cache: each calls
    `invalidate_cached` (a family's invalidation, leads.caching) after its write."""

    invalidate_cached: Callable[[], None]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self.invalidate_cached()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        self.invalidate_cached()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        self.invalidate_cached()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        self.invalidate_cached()


class ExperimentsCacheAdmin(CachedAnswersAdmin):
    """Experiments, their variants inline, and the templates variants name: the experiments API."""

    invalidate_cached = staticmethod(experiments_invalidate)


class OutreachInline(admin.TabularInline):
    model = Outreach
    fields = ("status", "variant", "subject", "sent_at", "reward")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Outreach]:
        return super().get_queryset(request).select_related("variant__experiment")


@admin.register(Lead)
class LeadAdmin(CachedAnswersAdmin, PrivacyActions):
    invalidate_cached = staticmethod(lead_metrics_invalidate)  # a deleted lead leaves the stats and the funnel

    list_display = (
        "company_name",
        "lightfield_id",
        "status",
        "persona",
        "score",
        "contact_name",
        "contact_email",
        "company_industry",
        "created_at",
    )
    list_filter = ("status", "persona", "company_size", "budget_range", "source_channel")
    search_fields = ("company_name", "contact_name", "contact_email", "lightfield_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    # A full COUNT(*) on every page is the slowest part of a large changelist.
    show_full_result_count = False
    list_per_page = 50
    actions = (
        "snooze_leads",
        "unsnooze_leads",
        "rescore_leads",
        "force_outreach",
        "export_personal_data",
        "erase_personal_data",
    )
    inlines = (OutreachInline,)

    class Media:
        css = {"all": ("leads/console.css",)}

    # Everything the pipeline sets is shown, not edited; staff edit only what describes the lead.
    readonly_fields = (
        "story",
        *(field.name for field in Lead._meta.fields if field.name not in ("id", *Lead.DESCRIPTIVE_FIELDS)),
    )
    fieldsets = (
        ("Story", {"fields": ("story",)}),
        (
            None,
            {"fields": Lead.PIPELINE_FIELDS},
        ),
        (
            "Company",
            {"fields": ("company_name", "company_website", "company_industry", "company_size", "company_description")},
        ),
        ("Contact", {"fields": ("contact_name", "contact_email", "contact_title", "contact_linkedin", "time_zone")}),
        (
            "Source and needs",
            {
                "fields": (
                    "source_channel",
                    "source_campaign",
                    "source_referrer",
                    "tech_stack",
                    "pain_points",
                    "budget_range",
                    "timeline",
                )
            },
        ),
        (
            "History",
            {
                "fields": (
                    "lightfield_created_at",
                    "created_at",
                    "updated_at",
                    "snoozed_until",
                    "status_before_snooze",
                    "contacted_at",
                    "responded_at",
                    "converted_at",
                    "unsubscribed_at",
                    "bounced_at",
                    "outreach_count",
                    "engagement_count",
                )
            },
        ),
        ("Raw event", {"classes": ("collapse",), "fields": ("raw_payload",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # leads arrive from the CRM (ingest), not by hand

    @admin.display(description="What happened, in order")
    def story(self, lead: Lead) -> SafeString:
        return render_to_string("admin/leads/lead/story.html", {"entries": lead_story(lead=lead)})

    @admin.action(description="Snooze selected leads", permissions=["change"])
    def snooze_leads(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        apply_to_each(self, request, queryset, lambda lead: lead_services.lead_snooze(lead=lead), "Snoozed")

    @admin.action(description="Unsnooze selected leads", permissions=["change"])
    def unsnooze_leads(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        apply_to_each(self, request, queryset, lambda lead: lead_services.lead_unsnooze(lead=lead), "Unsnoozed")

    @admin.action(description="Rescore selected leads", permissions=["change"])
    def rescore_leads(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        apply_to_each(self, request, queryset, lambda lead: lead_services.lead_rescore(lead=lead), "Rescored")

    @admin.action(description="Force outreach to selected leads", permissions=["change"])
    def force_outreach(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        apply_to_each(
            self, request, queryset, lambda lead: outreach_services.outreach_force(lead=lead), "Queued outreach for"
        )


class OutreachTemplateForm(forms.ModelForm):
    """Saves a template that compiles; with the Preview button, renders it for a lead instead
    and saves nothing (the form answers invalid, so the admin shows it again as typed)."""

    preview_lead = forms.ModelChoiceField(
        queryset=Lead.objects.all(),
        to_field_name="lightfield_id",
        widget=forms.TextInput,
        required=False,
        label="Preview for lead",
        help_text="A lead's lightfield id; press Preview to see the message it would get, before saving.",
    )
    preview: template_services.RenderedMessage | None = None

    class Meta:
        model = OutreachTemplate
        fields = ("name", "subject", "body", "html_body")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "subject" in cleaned and "body" in cleaned:
            try:
                template_services.template_check(
                    subject=cleaned["subject"], body=cleaned["body"], html_body=cleaned.get("html_body", "")
                )
            except DomainError as error:
                for field, problems in error.extra.get("errors", {}).items():
                    self.add_error(field, problems)
                return cleaned
            if "_preview" in self.data:
                self._preview(cleaned)
        return cleaned

    def _preview(self, cleaned: dict[str, Any]) -> None:
        lead = cleaned.get("preview_lead")
        if lead is None:
            self.add_error("preview_lead", "Name a lead to preview the message for.")
            return
        self.preview = template_services.template_render(
            subject=cleaned["subject"], body=cleaned["body"], html_body=cleaned.get("html_body", ""), lead=lead
        )
        raise forms.ValidationError("Preview only: nothing was saved. Press Save when the message reads right.")


@admin.register(OutreachTemplate)
class OutreachTemplateAdmin(ExperimentsCacheAdmin):
    form = OutreachTemplateForm

    class Media:
        css = {"all": ("leads/console.css",)}

    list_display = ("name", "subject", "updated_at")
    search_fields = ("name", "subject", "body")


class ReplyInline(admin.TabularInline):
    """The outreach's replies, with the class each was given and the text as the lead wrote it."""

    model = EngagementEvent
    verbose_name, verbose_name_plural = "reply", "replies"
    fields = ("occurred_at", "provider", "reply_class", "reply_text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[EngagementEvent]:
        return super().get_queryset(request).filter(event_type=EngagementEvent.Type.REPLIED)

    @admin.display(description="class")
    def reply_class(self, event: EngagementEvent) -> str:
        return reply_class_label(event.payload if isinstance(event.payload, dict) else {}) or "-"

    @admin.display(description="text")
    def reply_text(self, event: EngagementEvent) -> str:
        payload = event.payload if isinstance(event.payload, dict) else {}
        return str(payload.get("text") or "")


@admin.register(Outreach)
class OutreachAdmin(ReadOnlyAdmin):
    inlines = (ReplyInline,)
    list_display = ("id", "lead", "variant", "status", "to_email", "sent_at", "reward")
    list_filter = ("status", "reward", "variant__experiment")
    list_select_related = ("lead", "variant", "variant__experiment")
    search_fields = ("to_email", "subject", "message_id", "lead__company_name", "lead__lightfield_id")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(EngagementEvent)
class EngagementEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "outreach", "occurred_at", "received_at")
    list_filter = ("event_type",)
    list_select_related = ("outreach",)
    search_fields = ("event_id",)
    date_hierarchy = "occurred_at"
    show_full_result_count = False

"""The suppression list in the admin: look, search, filter; add in bulk (pasted lines) or from a
CSV file; export as CSV; remove entries staff added by mistake.

Every change goes through `leads.services.suppression`, so the admin normalises and refuses
exactly what the API does. Entries are never edited (the value and its hash must stay one), and
an erased person's entry is never removed. The source of what staff add names them
(`admin:<username>`, `csv:<username>`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from leads.addresses import InvalidAddress
from leads.admin.domain import apply_to_each
from leads.models import Suppression
from leads.services import suppression as suppression_services
from leads.services.suppression_csv import (
    IMPORT_MAX_BYTES,
    IMPORT_MAX_ROWS,
    LineError,
    suppressions_export_csv,
    suppressions_import_csv,
)
from pipeline_whisperer.exceptions import DomainError

_REASONS = [
    (value, label) for value, label in Suppression.Reason.choices if value in suppression_services.ADDABLE_REASONS
]


class SuppressionBulkAddForm(forms.Form):
    values = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 60}),
        help_text="One address (ada@acme.example) or domain (acme.example) per line.",
    )
    kind = forms.ChoiceField(
        choices=[("", "Infer: an address if the line has a local part"), *Suppression.Kind.choices], required=False
    )
    reason = forms.ChoiceField(choices=_REASONS, initial=Suppression.Reason.STAFF)
    note = forms.CharField(max_length=suppression_services.NOTE_MAX_LENGTH, required=False)

    def clean_values(self) -> list[tuple[int, str]]:
        """(line number, text) of each non-blank line."""
        lines = [(number, line) for number, line in enumerate(self.cleaned_data["values"].splitlines(), 1)]
        lines = [(number, line) for number, line in lines if line.strip()]
        if len(lines) > IMPORT_MAX_ROWS:
            raise forms.ValidationError(f"At most {IMPORT_MAX_ROWS} lines at once; import a CSV file for more.")
        return lines


class SuppressionImportForm(forms.Form):
    file = forms.FileField(
        help_text="UTF-8 CSV with a header row: a value (or email, or domain) column, and optionally kind, "
        f"reason (default staff) and note. Other columns are ignored. At most {IMPORT_MAX_BYTES // 2**20} MB.",
    )


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("shown_value", "kind", "reason", "source", "note", "created_at")
    list_filter = ("kind", "reason", "source", "created_at")
    search_fields = ("value", "note")
    date_hierarchy = "created_at"
    fields = ("kind", "value", "value_hash", "reason", "source", "note", "created_at")
    readonly_fields = fields
    actions = ("export_csv", "remove_selected")

    @admin.display(description="Address or domain", ordering="value")
    def shown_value(self, entry: Suppression) -> str:
        return entry.value or "(erased)"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the value and its hash must stay one: entries are added or removed, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Suppression | None = None) -> bool:
        if obj is not None and obj.reason == Suppression.Reason.ERASED:
            return False  # an erased person is never mailed again
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would delete erased entries too; remove_selected refuses them
        return actions

    def delete_model(self, request: HttpRequest, obj: Suppression) -> None:
        suppression_services.suppression_remove(suppression=obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        """Also the entry an exact address or domain matches by hash, erased ones included."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digests = set()
        for key_of in (suppression_services.address_key, suppression_services.domain_key):
            try:
                digests.add(suppression_services.value_hash(key_of(search_term)))
            except InvalidAddress:
                continue
        return (found | queryset.filter(value_hash__in=digests)) if digests else found, may_have_duplicates

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> StreamingHttpResponse:
        response = StreamingHttpResponse(suppressions_export_csv(queryset.order_by("id")), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="suppressions-{timezone.now():%Y%m%d-%H%M}.csv"'
        return response

    @admin.action(description="Remove selected (an erased person's entry stays)", permissions=["delete"])
    def remove_selected(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> None:
        apply_to_each(
            self, request, queryset, lambda entry: suppression_services.suppression_remove(suppression=entry), "Removed"
        )

    # --- Bulk add and import ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path("bulk-add/", self.admin_site.admin_view(self.bulk_add_view), name="leads_suppression_bulk_add"),
            path("import/", self.admin_site.admin_view(self.import_view), name="leads_suppression_import"),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:leads_suppression_bulk_add"))

    def bulk_add_view(self, request: HttpRequest) -> HttpResponse:
        self._require_add(request)
        form = SuppressionBulkAddForm(request.POST or None)
        errors: list[LineError] = []
        if request.method == "POST" and form.is_valid():
            lines, data = form.cleaned_data["values"], form.cleaned_data
            entries = [
                {"value": text, "kind": data["kind"], "reason": data["reason"], "note": data["note"]}
                for _, text in lines
            ]
            results = suppression_services.suppression_add_many(entries=entries, source=self._source("admin", request))
            errors = [LineError(lines[result.index][0], result.error) for result in results if result.error]
            self._tell(
                request,
                added=sum(1 for r in results if r.created),
                existing=sum(1 for r in results if r.created is False),
                errors=errors,
            )
            if not errors:
                return HttpResponseRedirect(reverse("admin:leads_suppression_changelist"))
            # The broken lines stay in the box, to be fixed and sent again.
            form = SuppressionBulkAddForm(
                initial={**data, "values": "\n".join(lines[result.index][1] for result in results if result.error)}
            )
        return self._page(request, "Bulk add suppressions", form, errors, submit="Add", multipart=False)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        self._require_add(request)
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        errors: list[LineError] = []
        if request.method == "POST" and form.is_valid():
            try:
                report = suppressions_import_csv(file=form.cleaned_data["file"], source=self._source("csv", request))
            except DomainError as error:
                form.add_error("file", error.message)
            else:
                errors = report.errors
                self._tell(request, added=report.added, existing=report.existing, errors=errors)
        return self._page(request, "Import suppressions from CSV", form, errors, submit="Import", multipart=True)

    def _require_add(self, request: HttpRequest) -> None:
        if not self.has_add_permission(request):
            raise PermissionDenied

    @staticmethod
    def _source(channel: str, request: HttpRequest) -> str:
        return f"{channel}:{request.user.get_username()}"

    def _tell(self, request: HttpRequest, *, added: int, existing: int, errors: list[LineError]) -> None:
        self.message_user(request, f"Added {added}; {existing} were suppressed already.", messages.SUCCESS)
        if errors:
            self.message_user(request, f"Left out {len(errors)} line(s); see below why.", messages.WARNING)

    def _page(
        self,
        request: HttpRequest,
        title: str,
        form: forms.Form,
        errors: list[LineError],
        *,
        submit: str,
        multipart: bool,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "form": form,
            "line_errors": errors,
            "submit_label": submit,
            "multipart": multipart,
        }
        return TemplateResponse(request, "admin/leads/suppression/form.html", context)

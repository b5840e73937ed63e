"""Privacy requests in the admin: export or erase the personal data of the selected leads' people
(each lead names one person by its address), and the read-only audit of privacy requests.

Erasure asks on an intermediate page first, as Django's own delete does: it cannot be undone.
Messages name counts, never addresses (messages may be kept in the session table).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from leads.models import Lead, PrivacyRequest
from leads.services.privacy import privacy_erase, privacy_export
from pipeline_whisperer.exceptions import DomainError


def _addresses(queryset: QuerySet[Lead]) -> list[str]:
    return sorted({lead.contact_email.lower() for lead in queryset if lead.contact_email})


def _requester(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"[:150]


class PrivacyActions(admin.ModelAdmin):
    """Actions for LeadAdmin, its base (so the ModelAdmin of leads stays in domain.py)."""

    @admin.action(description="Export personal data (JSON download)", permissions=["view"])
    def export_personal_data(self, request: HttpRequest, queryset: QuerySet[Lead]) -> HttpResponse | None:
        addresses = _addresses(queryset)
        if not addresses:
            self.message_user(request, "None of the selected leads has an address to export.", messages.WARNING)
            return None
        exports = []
        for address in addresses:
            try:
                exports.append(privacy_export(email=address, requested_by=_requester(request)))
            except DomainError:  # an address stored before it was checked: shown, never exported
                self.message_user(request, "A selected lead's address is not valid; it was left out.", messages.WARNING)
        if not exports:
            return None
        body = json.dumps(exports[0] if len(exports) == 1 else exports, indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="personal-data-export.json"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Erase personal data (asks first)", permissions=["delete"])
    def erase_personal_data(self, request: HttpRequest, queryset: QuerySet[Lead]) -> TemplateResponse | None:
        addresses = _addresses(queryset)
        if not addresses:
            self.message_user(request, "None of the selected leads has an address to erase.", messages.WARNING)
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase personal data?",
                "leads": list(queryset),
                "addresses": addresses,
                "opts": Lead._meta,
                "action": "erase_personal_data",
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/leads/lead/erase_personal_data.html", context)
        erased, refused = 0, []
        for address in addresses:
            try:
                privacy_erase(email=address, requested_by=_requester(request))
            except DomainError as error:
                refused.append(error.message)
                continue
            erased += 1
        for lead in Lead.objects.filter(pk__in=[lead.pk for lead in queryset], contact_email=""):
            self.log_change(request, lead, "Erased personal data (privacy request).")
        if erased:
            self.message_user(request, f"Erased the personal data of {erased} person(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Could not erase {len(refused)} address(es).", messages.ERROR)
        return None


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """The audit of privacy requests: read-only, like all history (ReadOnlyAdmin's rules; not
    inherited, as leads.admin.domain imports this module)."""

    list_display = ("created_at", "kind", "short_hash", "requested_by", "summary")
    list_filter = ("kind",)
    search_fields = ("subject_hash", "requested_by")

    @admin.display(description="Subject (SHA-256 of the address)")
    def short_hash(self, entry: PrivacyRequest) -> str:
        return f"{entry.subject_hash[:16]}…"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

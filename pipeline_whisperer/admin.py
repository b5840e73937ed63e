"""API keys in the admin: the full key is shown once, in a message, when a key is created.
Login lockouts: a page at /admin/lockouts/ lists the current ones and lifts one.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from pipeline_whisperer.exceptions import DomainError
from pipeline_whisperer.lockouts import login_lockout_lift, login_lockout_list
from pipeline_whisperer.models import ApiKey

# The library registers its own concrete model; ours (with scope and last use) replaces it.
admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    # The library's admin is typed by inference, as tuples of exactly its own length.
    list_display = ("prefix", "name", "scope", "created", "last_used_at", "expiry_date", "_has_expired", "revoked")  # type: ignore[assignment]
    list_filter = ("scope", "revoked", "created")  # type: ignore[assignment]
    readonly_fields = ("last_used_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        # The library's `obj: Model = None` means Model | None (an implicit Optional mypy rejects).
        return (*super().get_readonly_fields(request, obj), "last_used_at")  # type: ignore[arg-type]


def login_lockouts(request: HttpRequest) -> HttpResponse:
    """Current login lockouts (axes' view permission on access attempts); POST lifts one (its
    delete permission). Mounted through `admin.site.admin_view`, so only active staff get here."""
    if not request.user.has_perm("axes.view_accessattempt"):
        raise PermissionDenied
    can_lift = request.user.has_perm("axes.delete_accessattempt")
    if request.method == "POST":
        if not can_lift:
            raise PermissionDenied
        username, ip_address = request.POST.get("username", ""), request.POST.get("ip_address", "")
        try:
            login_lockout_lift(username=username, ip_address=ip_address)
        except DomainError as error:
            messages.warning(request, error.message)
        else:
            messages.success(request, f"Lifted the login lockout of {username!r} from {ip_address}.")
        return HttpResponseRedirect(request.path)
    context = {
        **admin.site.each_context(request),
        "title": "Login lockouts",
        "lockouts": login_lockout_list(),
        "can_lift": can_lift,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    return TemplateResponse(request, "admin/login_lockouts.html", context)

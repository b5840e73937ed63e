"""The unsubscribe page. GET shows a confirm button and changes nothing (link scanners and mail
previews fetch every link they see); POST unsubscribes at once, whether a mail client sent the
RFC 8058 one-click body or the recipient pressed the button. The signed token in the URL is the
only credential: there is no login and no CSRF token (see below)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from leads.services.unsubscribe import InvalidUnsubscribeToken, unsubscribe_outreach, unsubscribe_record


# RFC 8058: a mail client POSTs `List-Unsubscribe=One-Click` from its own servers, without our
# cookies, so it cannot carry a CSRF token. CSRF protects a session's actions; this one needs no
# session: the signed token authorises it, and a forged POST could only unsubscribe the holder
# of a link it already has.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        outreach = unsubscribe_outreach(token=token)
    except InvalidUnsubscribeToken:
        return render(request, "unsubscribe/invalid.html", status=400)
    context = {"sender": settings.OUTREACH_SENDER_NAME}
    if request.method == "GET":
        return render(request, "unsubscribe/confirm.html", context)
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    unsubscribe_record(outreach=outreach, source="one-click" if one_click else "unsubscribe-page")
    return render(request, "unsubscribe/done.html", context)

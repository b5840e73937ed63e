"""Staff ship an experiment's winner from the console (POST, CSRF-checked by the admin's view
wrapper): the other variants pause, through `leads.services.experiments` as in the API, and the
admin's log records who shipped what.

Shipping needs `leads.change_experiment`, as the admin's ship action does.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from leads.models import Experiment, Variant
from leads.services.experiments import experiment_ship
from pipeline_whisperer.exceptions import Conflict

SHIP_PERMISSION = "leads.change_experiment"


@require_POST
def ship(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Ship the variant the form names (the winner the panel showed) for experiment `pk`."""
    if not request.user.has_perm(SHIP_PERMISSION):
        raise PermissionDenied
    experiment = get_object_or_404(Experiment, pk=pk)
    variant = get_object_or_404(Variant, pk=request.POST.get("variant") or 0)
    try:
        experiment_ship(experiment=experiment, variant=variant, by=f"staff:{request.user.get_username()}")
    except Conflict as error:
        messages.error(request, str(error))
    else:
        # The experiment's admin writes the log entry, as its own actions do.
        admin.site.get_model_admin(Experiment).log_change(
            request, experiment, f"Shipped variant {variant.name} from the console; the other variants are paused."
        )
        messages.success(request, f"Shipped {variant.name}: every other variant of {experiment.name} is paused.")
    return HttpResponseRedirect(reverse("console:dashboard"))

"""Probes under /health/ (no trailing slash, like the API) and /metrics; mounted at the root."""

from django.urls import path

from health import views
from health.probes import DETAILED_CHECKS, READINESS_CHECKS, STARTUP_CHECKS

urlpatterns = [
    path("health/liveness", views.liveness, name="health-liveness"),
    path(
        "health/readiness",
        views.reusing_recent_answer(views.ProbeView.as_view(checks=READINESS_CHECKS, include_kafka=True)),
        name="health-readiness",
    ),
    path(
        "health/startup",
        views.reusing_recent_answer(views.ProbeView.as_view(checks=STARTUP_CHECKS)),
        name="health-startup",
    ),
    path("health/detailed", views.DetailedHealthView.as_view(checks=DETAILED_CHECKS), name="health-detailed"),
    path("metrics", views.metrics, name="metrics"),
]

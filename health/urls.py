"""Probes under /health/ (no trailing slash, like the API) and /metrics; mounted at the root.

Each probe runs health's own checks for it, then those apps registered for it (health.registry).
"""

from django.urls import path

from health import views
from health.probes import DETAILED_CHECKS, READINESS_CHECKS, STARTUP_CHECKS

readiness = views.ProbeView.as_view(checks=READINESS_CHECKS, probe="readiness", include_kafka=True)
startup = views.ProbeView.as_view(checks=STARTUP_CHECKS, probe="startup")
detailed = views.DetailedHealthView.as_view(checks=DETAILED_CHECKS, probe="detailed")

urlpatterns = [
    path("health/liveness", views.liveness, name="health-liveness"),
    path("health/readiness", views.reusing_recent_answer(readiness), name="health-readiness"),
    path("health/startup", views.reusing_recent_answer(startup), name="health-startup"),
    path("health/detailed", detailed, name="health-detailed"),
    path("metrics", views.metrics, name="metrics"),
]

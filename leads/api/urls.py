"""Routes of the leads API, mounted at /api/v1/ (no trailing slashes)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from leads.api import privacy, suppressions, views

router = SimpleRouter(trailing_slash=False)
router.register("leads", views.LeadViewSet, basename="lead")
router.register("templates", views.TemplateViewSet, basename="template")
router.register("experiments", views.ExperimentViewSet, basename="experiment")
router.register("outreach", views.OutreachViewSet, basename="outreach")
router.register("dashboard", views.DashboardViewSet, basename="dashboard")
router.register("engagements", views.EngagementViewSet, basename="engagement")
router.register("suppressions", suppressions.SuppressionViewSet, basename="suppression")
router.register("privacy", privacy.PrivacyViewSet, basename="privacy")

variants = views.VariantViewSet
urlpatterns = [
    *router.urls,
    path(
        "experiments/<int:experiment_pk>/variants",
        variants.as_view({"get": "list", "post": "create"}),
        name="variant-list",
    ),
    path(
        "experiments/<int:experiment_pk>/variants/<int:pk>",
        variants.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="variant-detail",
    ),
    path(
        "experiments/<int:experiment_pk>/variants/<int:pk>/pause",
        variants.as_view({"post": "pause"}),
        name="variant-pause",
    ),
    path(
        "experiments/<int:experiment_pk>/variants/<int:pk>/resume",
        variants.as_view({"post": "resume"}),
        name="variant-resume",
    ),
]

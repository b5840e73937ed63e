"""A test-only urlconf: anymail's webhooks under /webhooks/<esp>/..., as the real door mounts them."""

from django.urls import include, path

urlpatterns = [path("webhooks/", include("anymail.urls"))]

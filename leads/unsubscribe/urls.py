"""The unsubscribe route, mounted at /unsubscribe/ (outside the API: mail clients post to it)."""

from django.urls import path

from leads.unsubscribe import views

urlpatterns = [
    path("<str:token>/", views.unsubscribe, name="unsubscribe"),
]

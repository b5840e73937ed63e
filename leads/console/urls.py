"""The console's routes, mounted at /admin/console/ ahead of the admin's own catch-all."""

from django.contrib import admin
from django.urls import path

from leads.console import experiments, queue, sending, views

app_name = "console"

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("panels/", admin.site.admin_view(views.panels), name="panels"),
    path("queue/", admin.site.admin_view(queue.queue), name="queue"),
    path("queue/<int:pk>/send-now/", admin.site.admin_view(queue.queue_send_now), name="queue-send-now"),
    path("queue/<int:pk>/cancel/", admin.site.admin_view(queue.queue_cancel), name="queue-cancel"),
    path("sending/pause/", admin.site.admin_view(sending.pause), name="sending-pause"),
    path("sending/resume/", admin.site.admin_view(sending.resume), name="sending-resume"),
    path("experiments/<int:pk>/ship/", admin.site.admin_view(experiments.ship), name="experiment-ship"),
]

"""The staff console: the lead domain (domain.py), experiments (experiments.py), the pipeline's
machinery (pipeline.py), and the dashboard (console.py, linked from the admin index)."""

from django.contrib import admin

from leads.admin import domain, experiments, pipeline  # noqa: F401  (importing registers the ModelAdmins)

admin.site.index_template = "admin/leads/console/index.html"

"""The staff console's ModelAdmins: the lead domain (domain.py), experiments (experiments.py),
the pipeline's machinery (pipeline.py) and the suppression list (suppressions.py). The
dashboard, linked from the admin index, is `leads.console`."""

from django.contrib import admin

from leads.admin import domain, experiments, pipeline, suppressions  # noqa: F401  (importing registers the ModelAdmins)

admin.site.index_template = "admin/leads/console/index.html"

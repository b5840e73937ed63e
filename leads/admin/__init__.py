"""The staff console: the lead domain (domain.py) and the pipeline's machinery (pipeline.py)."""

from leads.admin import domain, pipeline  # noqa: F401  (importing registers the ModelAdmins)

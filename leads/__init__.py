"""Leads: the domain of the pipeline."""

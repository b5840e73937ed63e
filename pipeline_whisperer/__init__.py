"""Pipeline Whisperer: the project package and its cross-cutting infrastructure."""

# The release reported to Sentry by default; keep in step with pyproject.toml.
__version__ = "0.1.0"

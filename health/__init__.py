"""Health probes and metrics (built out with the production hardening work)."""

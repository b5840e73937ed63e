"""WSGI entry point for gunicorn and runserver: Django, behind liveness (answered before Django,
LivenessFirst) and the one WSGI-level guard it needs (a chunked request body made readable; see
ChunkedBodyMiddleware)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
django_application = get_wsgi_application()

from pipeline_whisperer.middleware import ChunkedBodyMiddleware, LivenessFirst  # noqa: E402 - needs the settings

application = LivenessFirst(ChunkedBodyMiddleware(django_application))

"""WSGI entry point for gunicorn and runserver: Django, behind liveness (answered before Django,
LivenessFirst) and the one WSGI-level guard it needs (a chunked request body made readable; see
ChunkedBodyMiddleware)."""

import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
django_application = get_wsgi_application()
# The routes, and with them every view, the admin and the API schema, load as the worker starts:
# not in its first requests, which would wait seconds for them.
import_module(settings.ROOT_URLCONF)

from pipeline_whisperer.middleware import ChunkedBodyMiddleware, LivenessFirst  # noqa: E402 - needs the settings

application = LivenessFirst(ChunkedBodyMiddleware(django_application))

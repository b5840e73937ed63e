"""ASGI entry point, for an ASGI server if one is ever chosen. What the deployment serves is
gunicorn with wsgi.py, which answers liveness before Django; here liveness goes through Django,
so its host check applies to it as to every other path."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
application = get_asgi_application()

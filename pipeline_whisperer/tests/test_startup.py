"""Start-up of a management command: what it does not need is not imported (sentry-sdk without a
DSN, the admin modules, faker, drf-spectacular, the in-process bus, the health checks, the receivers
of inbound mail, lockouts and API-key changes), and nothing is lost where it is needed
(`manage.py check` still checks every ModelAdmin, a DSN still starts sentry-sdk, the schema built
in a fresh process still has our API key scheme)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

from pipeline_whisperer.tests.test_settings import REPO_ROOT


def _python(code: str, **env: str) -> dict[str, Any]:
    """Run code in a fresh interpreter with Django set up as manage.py sets it; its last
    printed line is JSON."""
    setup = (
        "import os, sys, json, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'pipeline_whisperer.settings')\n"
        "django.setup()\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter with fixed code
        [sys.executable, "-c", setup + textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_command_without_urls_skips_what_only_requests_probes_and_signals_need():
    loaded = _python(
        """
        from django.core.management import call_command
        call_command("list_backups")
        names = ("sentry_sdk", "leads.admin", "faker", "drf_spectacular.openapi", "leads.pipeline.inprocess",
                 "health_check", "leads.monitoring", "leads.webhooks.inbound", "pipeline_whisperer.lockouts",
                 "pipeline_whisperer.auth")
        print(json.dumps({name: name in sys.modules for name in names}))
        """,
        SENTRY_DSN="",
    )
    assert not any(loaded.values()), loaded


def test_check_runs_the_admin_checks_on_every_apps_model_admins():
    checked = _python(
        """
        from django.contrib import admin
        from django.core.management import call_command

        checked = []
        original = admin.ModelAdmin.check

        def recording(self, **kwargs):
            checked.append(self.model._meta.label_lower)
            return original(self, **kwargs)

        admin.ModelAdmin.check = recording
        # The admin's checks alone: the URL check, which imports the admin modules too, may run
        # before or after them (the registry is a set), so it must not be what finds them.
        call_command("check", "--tag", "admin")
        print(json.dumps({"checked": checked}))
        """
    )["checked"]
    assert {"leads.lead", "leads.outreachtemplate", "leads.suppression", "pipeline_whisperer.apikey"} <= set(checked)
    assert "rest_framework_api_key.apikey" not in checked  # ours replaces the library's


def test_a_dsn_still_starts_sentry_at_settings_time():
    started = _python(
        """
        import sentry_sdk
        print(json.dumps({"active": sentry_sdk.get_client().is_active()}))
        """,
        # Nothing is captured, so nothing is sent; port 9 (discard) in case it were.
        SENTRY_DSN="http://publickey@127.0.0.1:9/1",
    )
    assert started == {"active": True}


def test_the_schema_built_in_a_fresh_process_has_the_api_key_scheme():
    security = _python(
        """
        import io
        from django.core.management import call_command
        out = io.StringIO()
        call_command("spectacular", "--format", "openapi-json", stdout=out)
        print(json.dumps(json.loads(out.getvalue())["components"]["securitySchemes"]))
        """
    )
    assert security["ApiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}

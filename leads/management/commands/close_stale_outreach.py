"""Close outreach past the attribution window: each counts as a failure for its variant.

For cron (the feedback stage also runs it every OUTREACH_EXPIRY_INTERVAL_SECONDS). Silent on
success unless -v 2.
"""

from typing import Any

from django.core.management.base import BaseCommand

from leads.services.outreach import outreach_expire_stale


class Command(BaseCommand):
    help = "Expire outreach older than ATTRIBUTION_WINDOW_DAYS without a conversion (one failure reward each)."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = outreach_expire_stale()
        if options["verbosity"] >= 2:
            self.stdout.write(f"expired {expired} outreach")

"""A dispatcher process for the tests, on a clock they step: reads one ISO 8601 time a line on
stdin, dispatches everything due by then (`dispatch_due` until a pass claims nothing), and
answers `done <sent>` on stdout. Run as `python -m tests.dispatch_driver BATCH_SIZE` with the
stage environment (`tests.stand_ins.pipeline_env`)."""

from __future__ import annotations

import os
import sys
from datetime import datetime

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_whisperer.settings")
    django.setup()
    from leads.services.dispatch import dispatch_due

    limit = int(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        now, sent = datetime.fromisoformat(line.strip()), 0
        while True:
            report = dispatch_due(now=now, limit=limit)
            if report.error is not None:
                raise report.error
            sent += report.sent
            if report.claimed == 0 and report.cancelled == 0:
                break
        print(f"done {sent}", flush=True)


if __name__ == "__main__":
    main()

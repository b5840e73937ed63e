"""gunicorn server hooks for prometheus_client's multiprocess mode.

deploy/gunicorn.conf.py imports these (`from health.gunicorn_hooks import on_starting,
child_exit`). They run in gunicorn's master, before and outside Django, so they use only the
standard library and prometheus_client. Without PROMETHEUS_MULTIPROC_DIR they do nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess


def on_starting(server: Any) -> None:
    """Empty the multiprocess directory: samples left by an earlier server would be counted."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for sample_file in path.glob("*.db"):
        sample_file.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (its counters and histograms keep counting)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)

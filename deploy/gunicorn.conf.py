"""Gunicorn settings for the web process, read from the environment like the rest of the service.

Run with `gunicorn -c deploy/gunicorn.conf.py` (the Dockerfile's command). Workers are
processes, each with GUNICORN_THREADS threads (gthread); psycopg's pool per process defaults to
that thread count, so no request waits for a connection another thread of its worker holds.
Every access line is one JSON object; SIGTERM lets requests in flight finish (graceful timeout).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gunicorn import glogging

# The config file runs before gunicorn puts the project on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from health.gunicorn_hooks import child_exit, on_starting  # prometheus_client multiprocess mode
from pipeline_whisperer.env import env_int, env_str

wsgi_app = "pipeline_whisperer.wsgi:application"
# A container must listen on every interface; the network policy and the proxy decide who reaches it.
bind = [env_str("GUNICORN_BIND", f"0.0.0.0:{env_int('PORT', 8000, minimum=1)}")]
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
# gthread, not sync: a sync worker serves one connection at a time and closes it after each
# answer (no keep-alive), so one slow request (a rescore waiting on the LLM, a large ingest) holds
# a whole worker and the probes behind it. bench/gunicorn_workers.py (quiet machine, 64
# connections) measured sync 2x1 at most 10% ahead on a cached endpoint (651 against 614 req/s,
# p99 160 against 205 ms) and the lead list (233 against 213); 4 workers on 2 cores lose to 2.
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
# Recycling workers bounds slow leaks; the jitter keeps them from all restarting at once.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 100, minimum=0)
# gunicorn's largest request line (its default is 4094): a longer path than MAX_REQUEST_PATH_LENGTH
# then reaches Django, which answers 414 problem+json; only a request line over 8190 bytes still
# gets gunicorn's own HTML 414 (nginx in front refuses those first, at its 8 KB buffers).
limit_request_line = 8190
# The heartbeat file is touched constantly: keep it in memory, and off a read-only root filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108
# No `gunicornc` control socket: nothing uses it, and the root filesystem may be read-only.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = env_str("LOG_LEVEL", "INFO").lower()

# Read by settings.py in each worker, which gunicorn forks after this file ran.
os.environ.setdefault("DB_POOL_MAX_SIZE", str(threads))


class JsonAccessLogger(glogging.Logger):
    """Gunicorn's logger with each access line one JSON object.

    json.dumps escapes whatever a path or a user agent carries; access_log_format only
    escapes double quotes, so a backslash there would break the line.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "logger": "gunicorn.access",
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": int(atoms["s"]),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "bytes": atoms["B"],
            "request_id": atoms.get("{x-request-id}o"),
            "remote_addr": atoms["h"],
            "forwarded_for": atoms.get("{x-forwarded-for}i"),
            "user_agent": atoms["a"],
            "pid": os.getpid(),  # the worker that answered
        }
        self.access_log.info(json.dumps(line))


logger_class = JsonAccessLogger
__all__ = ["child_exit", "on_starting"]  # gunicorn server hooks

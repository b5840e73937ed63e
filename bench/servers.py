"""gunicorn with the production configuration, as the benchmarks and the soak run start it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.stand_ins import free_port

ROOT = Path(__file__).resolve().parent.parent
# What every API bench process runs with, beside its own database and Redis: production settings
# on loopback, a throwaway secret, quiet logs, and the outreach identity the settings require.
SERVICE_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "LOG_LEVEL": "WARNING",
    "OUTREACH_SENDER_NAME": "Bench Sender",
    "OUTREACH_POSTAL_ADDRESS": "1 Bench Street, Benchville",
    "PUBLIC_BASE_URL": "https://pipeline.bench.example",
}


class Gunicorn:
    """gunicorn with deploy/gunicorn.conf.py on a free loopback port, serving `app`."""

    def __init__(self, app: str, env: dict[str, str], log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = tempfile.mkdtemp(prefix="pw-metrics-")
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        output = log_path.open("ab") if log_path else subprocess.DEVNULL
        command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", app]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health/liveness", timeout=2)  # noqa: S310 - loopback
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not start serving within 60 s")

    def worker_rss_kb(self) -> list[int]:
        """Resident memory of each worker (children of the master), in kB."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [_rss_kb(int(pid)) for pid in children]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

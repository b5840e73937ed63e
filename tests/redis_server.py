"""A throwaway Redis server on a free loopback port, for tests that stop Redis.

Never the shared Redis on 6379: tests kill this one to see what the service does without it.
"""

from __future__ import annotations

import shutil
import subprocess

from tests.stand_ins import free_port, wait_for_port


class ThrowawayRedis:
    """`redis-server` without persistence; `stop()` kills it (idempotent)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; the cache fault tests need it")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(  # noqa: S603
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

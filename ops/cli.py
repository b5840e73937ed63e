"""What the backup commands share: no system checks, SIGTERM as an error, and domain errors as
one-line CommandErrors."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from django.core.management.base import CommandError

from pipeline_whisperer.exceptions import BackupError, DomainError

# `requires_system_checks` of every backup command: they run from cron and in emergencies, so a check
# failing elsewhere must not stop them (nor cost the half second of CPU the checks take at start-up).
NO_SYSTEM_CHECKS: tuple[str, ...] = ()


@contextmanager
def operator_errors() -> Iterator[None]:
    """Run the block so that cron sees one clear line and a non-zero exit on any failure.

    SIGTERM becomes a BackupError raised where the work is, so every `finally` runs (temp files
    removed, the lock released, child tools killed) before the command exits.
    """

    def interrupted(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise BackupError("interrupted by SIGTERM; nothing was kept")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield
    except DomainError as error:
        raise CommandError(error.message) from error
    finally:
        signal.signal(signal.SIGTERM, previous)

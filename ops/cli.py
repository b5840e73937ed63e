"""What the backup commands share: no system checks, SIGTERM as an error, domain errors as
one-line CommandErrors, a backup named by path, name or s3:// URL, and transfer progress on a
terminal only."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from django.core.management.base import CommandError

from ops.backups import backup_resolve
from pipeline_whisperer.exceptions import BackupInterrupted, DomainError

# `requires_system_checks` of every backup command: they run from cron and in emergencies, so a check
# failing elsewhere must not stop them (nor cost the half second of CPU the checks take at start-up).
NO_SYSTEM_CHECKS: tuple[str, ...] = ()


@contextmanager
def operator_errors() -> Iterator[None]:
    """Run the block so that cron sees one clear line and a non-zero exit on any failure.

    SIGTERM becomes a BackupInterrupted raised where the work is, so every `finally` runs (temp files
    removed, the lock released, child tools killed) before the command exits.
    """

    def interrupted(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise BackupInterrupted("interrupted by SIGTERM; nothing was kept")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield
    except DomainError as error:
        raise CommandError(error.message) from error
    finally:
        signal.signal(signal.SIGTERM, previous)


def terminal_progress(
    *, verb: str, name: str, total: int, stream: TextIO | None = None
) -> Callable[[int], None] | None:
    """A boto3 transfer callback printing `verb name: NN% (x of y MB)` on a terminal; None under
    cron or a pipe, so those stay silent. Transfer threads call it, hence the lock."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    done, shown, lock = 0, -1, threading.Lock()

    def progress(moved: int) -> None:
        nonlocal done, shown
        with lock:
            done += moved
            percent = 100 * done // total if total else 100
            if percent != shown:
                shown = percent
                end = "\n" if done >= total else ""
                stream.write(f"\r{verb} {name}: {percent}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB){end}")
                stream.flush()

    return progress


@contextmanager
def backup_fetch(name: str) -> Iterator[Path]:
    """A local path for the block to the backup named by a path, a file name in BACKUP_DIR, or an
    `s3://` URL (downloaded, with progress on a terminal, and removed afterwards)."""
    if not name.startswith("s3://"):
        yield backup_resolve(name)
        return
    from ops.remote import remote_download  # boto3 costs 0.2 s of CPU to import: only for remote backups

    with remote_download(url=name, progress=terminal_progress) as path:
        yield path

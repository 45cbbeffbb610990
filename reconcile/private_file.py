"""Saved plans on disk: written for their owner only, never through a symlink.

A plan holds customers' emails and names, so it is created ``0600`` (an existing file is tightened
to that); a symlink at the path could point the write at any file the user may write, so it is
refused. A write that fails half-way removes the file: never half a plan behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .errors import PlanFileError


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, readable by its owner only; PlanFileError with the reason if it cannot."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            why = "it is a symlink, and a plan never follows one"
            raise PlanFileError(f"Cannot write the plan to {path}: {why}.") from None
        raise PlanFileError(f"Cannot write the plan to {path}: {exc.strerror}.") from None
    regular = False
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: tighten it
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
    except OSError as exc:
        if regular:
            with contextlib.suppress(OSError):
                os.unlink(path)  # never leave half a plan behind
        raise PlanFileError(f"Cannot write the plan to {path}: {exc.strerror}.") from None
    finally:
        os.close(fd)

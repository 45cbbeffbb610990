"""Progress on stderr for long runs (rich), only when stderr is a terminal or when asked.

Stdout carries the report alone, so ``--format json | jq`` works whatever progress shows.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


class Progress:
    """Does nothing: the default for non-terminals and --no-progress."""

    def phase(self, name: str) -> None:
        pass

    def page(self, resource: str, objects: int) -> None:
        pass

    def pause(self) -> None:
        """Stop drawing while the report is printed; the next phase draws again."""

    def close(self) -> None:
        pass


class RichProgress(Progress):
    """Per resource: pages, objects, objects/s; and the phase (fetching, diffing, planned, applying, done)."""

    def __init__(self, stream: TextIO, resources: tuple[str, ...]):
        from rich.console import Console
        from rich.progress import Progress as Bar
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        self._lock = threading.Lock()
        self._bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description:<14}"),
            TextColumn("{task.fields[pages]:>5} pages {task.completed:>9,.0f} objects {task.fields[rate]:>8} /s"),
            TimeElapsedColumn(),
            console=Console(file=stream, force_terminal=True, stderr=True),
            transient=False,
        )
        self._start = time.monotonic()
        self._closed = False
        self._tasks = {r: self._bar.add_task(r, total=None, pages=0, rate="-") for r in resources}
        self._phase = self._bar.add_task("fetching", total=None, pages="", rate="")
        self._bar.start()

    def phase(self, name: str) -> None:
        self._bar.update(self._phase, description=name)
        if not self._bar.live.is_started:
            self._bar.start()

    def pause(self) -> None:
        if self._bar.live.is_started:
            self._bar.update(self._phase, description="planned")
            self._bar.stop()

    def page(self, resource: str, objects: int) -> None:
        with self._lock:
            task = self._tasks.get(resource)
            if task is None:
                return
            done = self._bar.tasks[task].completed + objects
            pages = self._bar.tasks[task].fields["pages"] + 1
            elapsed = max(time.monotonic() - self._start, 1e-6)
            self._bar.update(task, completed=done, pages=pages, rate=f"{done / elapsed:,.0f}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bar.update(self._phase, description="done")
        self._bar.stop()


def make_progress(stream: TextIO, resources: tuple[str, ...], wanted: bool | None) -> Progress:
    """``wanted`` None: on when the stream is a terminal; True/False: forced."""
    on = wanted if wanted is not None else bool(getattr(stream, "isatty", lambda: False)())
    return RichProgress(stream, resources) if on else Progress()

"""One measured run of reconcile's ``pull_stripe``, in a process of its own (so that peak RSS is per run).

    python -m bench.ours --db-url URL --api-base URL migrate
    python -m bench.ours --db-url URL --api-base URL pull [--unthrottled] [--create-users] [--profile DIR]

Prints one JSON object on stdout. Django is set up and the database connection opened before the
clock starts; the clock covers ``reconcile.runner.execute`` only. SQL statements are counted with
``connection.execute_wrapper`` on the run's connection (every statement the ORM sends, including
SAVEPOINTs; not the BEGIN/COMMIT that the drivers issue themselves).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

WRITES = ("INSERT", "UPDATE", "DELETE", "COPY")  # COPY: PostgreSQL's first-pull load


def peak_rss_mib() -> float:
    """Peak RSS of this process in MiB: VmHWM (per address space, so a parent's size cannot leak in
    through fork), else ``resource.getrusage``'s ru_maxrss."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def combined_peak_mib(aside) -> float:
    """A bound on the run's memory with the child that read its stored rows (``db/aside.py``):
    while the child lived, this process held at most its peak at the child's end and the child at
    most its own pages' highest; afterwards, this process's peak."""
    peak = peak_rss_mib()
    if aside is None or not aside.child_private_mib:
        return peak
    return max(peak, (aside.peak_at_end_mib or peak) + aside.child_private_mib)


def current_rss_mib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class StatementCounter:
    """A ``connection.execute_wrapper`` counting statements by their first keyword."""

    def __init__(self) -> None:
        self.kinds: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        stripped = sql.lstrip()
        self.kinds[stripped.split(None, 1)[0].upper() if stripped else "?"] += 1
        return execute(sql, params, many, context)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    @property
    def writes(self) -> int:
        return sum(self.kinds[k] for k in WRITES)


class Discard:
    """A text sink: the report is rendered (that is part of the run) but not kept."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        pass


def configure(db_url: str, api_base: str, unthrottled: bool, create_users: bool) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DATABASE_URL"] = db_url
    os.environ["BENCH_API_BASE"] = api_base
    os.environ["BENCH_UNTHROTTLED"] = "1" if unthrottled else ""
    os.environ["BENCH_CREATE_USERS"] = "1" if create_users else ""
    import django

    django.setup()


def migrate() -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {"migrated": True}


def pull(profile_dir: Path | None = None, label: str = "run", incremental: bool = False) -> dict:
    from dataclasses import asdict

    from django.db import connection

    from reconcile.conf import get_config
    from reconcile.db import aside as _aside
    from reconcile.runner import Options, execute

    config = {k: v for k, v in asdict(get_config()).items() if k not in ("api_key", "api_base")}
    connection.ensure_connection()
    counter = StatementCounter()
    out, err = Discard(), Discard()
    options = Options(
        command="pull_stripe", resources=("products", "customers", "subscriptions"), incremental=incremental
    )
    rss_before = current_rss_mib()
    fetch_seconds = _time_fetch()
    profiler = _Profiler(profile_dir, label) if profile_dir else None
    started, times = time.perf_counter(), os.times()
    with connection.execute_wrapper(counter), profiler or contextlib.nullcontext():
        outcome = execute(options, out, err)
    wall = time.perf_counter() - started
    ended = os.times()
    aside = _aside.last_read
    summary = Counter(op.action.key for op in outcome.plan.operations)
    return {
        "wall": wall,
        "requests": outcome.requests,
        "sql": dict(counter.kinds),
        "sql_total": counter.total,
        "sql_writes": counter.writes,
        "exit_code": outcome.exit_code,
        "applied": outcome.applied,
        "counts": dict(outcome.counts),
        "plan": dict(summary),
        "report_chars": out.chars + err.chars,
        "rss_before_mib": rss_before,
        # the run's memory: this process's peak, or while a child read the stored rows, this
        # process's peak until the child ended plus the child's own pages (the rest of its memory
        # is this process's, shared since the fork), whichever is higher
        "peak_rss_mib": combined_peak_mib(aside),
        "process_peak_rss_mib": peak_rss_mib(),
        "fetch_seconds": sum(fetch_seconds),
        # this process's CPU time in the run, and its children's (the stored rows read aside)
        "cpu_seconds": (ended.user - times.user) + (ended.system - times.system),
        "child_cpu_seconds": (ended.children_user - times.children_user)
        + (ended.children_system - times.children_system),
        # the child's own memory (not shared with this process) when it ended, None without one
        "child_private_mib": aside.child_private_mib if aside is not None else None,
        "read_aside": None if aside is None else (aside.why or "done"),
        "profiles": profiler.files if profiler else [],
        "config": config,
    }


def _time_fetch() -> list[float]:
    """Seconds spent in ``fetch_remote`` (Stripe's side: every request and its parsing), so that a
    run's wall splits into the fetch and what follows it (diff, report, apply)."""
    import reconcile.runner as runner

    seconds: list[float] = []
    original = runner.fetch_remote

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    runner.fetch_remote = timed
    return seconds


class _Profiler:
    """Profiles the run's main thread, and every thread-pool job (the fetch runs its listings and
    page requests on ``ThreadPoolExecutor`` threads) into one combined profile, with pyinstrument
    when it is installed, else cProfile. Optional: the benchmark itself needs neither."""

    def __init__(self, directory: Path, label: str) -> None:
        import threading

        self.directory, self.label = directory, label
        self.files: list[str] = []
        self._lock = threading.Lock()
        self._threads: list = []
        directory.mkdir(parents=True, exist_ok=True)
        try:
            import pyinstrument  # noqa: F401

            self.kind = "pyinstrument"
        except ImportError:
            self.kind = "cprofile"

    def _start(self):
        if self.kind == "pyinstrument":
            from pyinstrument import Profiler

            prof = Profiler(interval=0.001, async_mode="disabled")
            prof.start()
            return prof
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        return prof

    def _stop(self, prof):
        if self.kind == "pyinstrument":
            return prof.stop()  # a Session
        prof.disable()
        return prof

    def _write(self, results: list, name: str) -> None:
        if not results:
            return
        path = self.directory / f"{self.label}-{name}.txt"
        if self.kind == "pyinstrument":
            from pyinstrument.renderers import ConsoleRenderer
            from pyinstrument.session import Session

            session = results[0]
            for other in results[1:]:
                session = Session.combine(session, other)
            path.write_text(ConsoleRenderer(unicode=False, color=False, show_all=False).render(session))
            flat = self.directory / f"{self.label}-{name}-flat.txt"
            flat.write_text(ConsoleRenderer(unicode=False, color=False, flat=True).render(session))
            self.files.append(str(flat))
        else:
            import io
            import pstats

            buf = io.StringIO()
            stats = pstats.Stats(results[0], stream=buf)
            for other in results[1:]:
                stats.add(other)
            stats.sort_stats("cumulative").print_stats(80)
            path.write_text(buf.getvalue())
        self.files.append(str(path))

    def __enter__(self):
        from concurrent.futures import thread

        self._original = original = thread._WorkItem.run
        profiler = self

        def run(item, *args, **kwargs):
            prof = profiler._start()
            try:
                return original(item, *args, **kwargs)
            finally:
                result = profiler._stop(prof)
                with profiler._lock:
                    profiler._threads.append(result)

        thread._WorkItem.run = run
        self._main = self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        from concurrent.futures import thread

        main = self._stop(self._main)
        thread._WorkItem.run = self._original
        self._write([main], "main")
        with self._lock:
            self._write(self._threads, "threads")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ours", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("migrate", "pull"))
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--unthrottled", action="store_true", help="lift reconcile's client-side rate limits")
    parser.add_argument("--create-users", action="store_true", help="set USER_CREATE_DEFAULTS_ATTRIBUTE_MAP")
    parser.add_argument("--profile", type=Path, default=None, help="write profiles into this directory")
    parser.add_argument("--label", default="run")
    parser.add_argument("--incremental", action="store_true", help="pull_stripe --incremental")
    args = parser.parse_args(argv)
    configure(args.db_url, args.api_base, args.unthrottled, args.create_users)
    result = migrate() if args.action == "migrate" else pull(args.profile, args.label, args.incremental)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The measured scenarios: each run of reconcile in a fresh process against the fake Stripe's process.

A row per run: scenario, database, N (customers), objects, API requests, SQL statements, wall
seconds, objects/s, peak RSS. "Objects" are the Stripe objects reconciled: products + prices +
customers + subscriptions; subscription items are written too but not counted as objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .fakeproc import FakeProcess

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".bench"
RUN_TIMEOUT = 1800.0  # seconds, a bound on one measured run
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/reconcile_bench"


@dataclass
class Db:
    name: str  # "sqlite" | "postgres"
    url: str

    @staticmethod
    def sqlite(path: Path) -> Db:
        return Db("sqlite", f"sqlite:///{Path(path).resolve()}")

    @property
    def path(self) -> Path:
        """The SQLite file (``sqlite:///`` + an absolute path)."""
        return Path(self.url.removeprefix("sqlite:///")).resolve()

    @staticmethod
    def postgres(url: str) -> Db:
        return Db("postgres", url)


@dataclass
class Row:
    scenario: str
    db: str
    n: int
    objects: int
    requests: int
    sql: int
    wall: float
    peak_rss_mib: float
    expected_requests: int = 0
    fake_requests: int = 0
    sql_kinds: dict = field(default_factory=dict)
    sql_writes: int = 0
    items: int = 0
    counts: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    rss_before_mib: float = 0.0
    rate_limited: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.wall if self.wall > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "objects_per_s": self.objects_per_s}


# -- databases ---------------------------------------------------------------------------------------


def reset_database(db: Db) -> None:
    """An empty database: delete the SQLite file, or drop and create the PostgreSQL database."""
    if db.name == "sqlite":
        path = db.path
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    parts = urlsplit(db.url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def postgres_available(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``'s server, else the reason."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


# -- one run of reconcile ----------------------------------------------------------------------------


def run_ours(
    action: str,
    db: Db,
    api_base: str,
    *,
    unthrottled: bool = False,
    create_users: bool = False,
    profile: Path | None = None,
    label: str = "run",
    incremental: bool = False,
    root: Path = ROOT,
) -> dict:
    """``python -m bench.ours ACTION`` in a fresh interpreter, with the code of the tree at ``root``
    (another commit's, for ``bench.ab``); its JSON answer."""
    cmd = [sys.executable, "-m", "bench.ours", action, "--db-url", db.url, "--api-base", api_base, "--label", label]
    if incremental:
        cmd.append("--incremental")
    if unthrottled:
        cmd.append("--unthrottled")
    if create_users:
        cmd.append("--create-users")
    if profile is not None:
        cmd += ["--profile", str(profile)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise RuntimeError(f"bench.ours {action} on {db.name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measured(
    scenario: str,
    db: Db,
    fake: FakeProcess,
    n: int,
    *,
    unthrottled: bool,
    create_users: bool = False,
    incremental: bool = False,
) -> Row:
    """One measured pull: reset the fake's request log, run, read what the fake received."""
    expected = fake.call("expected")
    fake.call("reset")
    label = f"{scenario.replace(' ', '-')}-{db.name}"
    result = run_ours(
        "pull", db, fake.url, unthrottled=unthrottled, create_users=create_users, label=label, incremental=incremental
    )
    received = fake.call("requests")
    return Row(
        scenario=scenario,
        db=db.name,
        n=n,
        objects=expected["objects"]["objects"],
        items=expected["objects"]["subscription_items"],
        requests=result["requests"],
        expected_requests=expected["requests"]["total"],
        fake_requests=received["total"],
        rate_limited=received["rate_limited"],
        sql=result["sql_total"],
        sql_kinds=result["sql"],
        sql_writes=result["sql_writes"],
        wall=result["wall"],
        peak_rss_mib=result["peak_rss_mib"],
        rss_before_mib=result["rss_before_mib"],
        counts=result["counts"],
        plan=result["plan"],
        extra={
            "objects": expected["objects"],
            "by_endpoint": received["by_endpoint"],
            "expected_by_endpoint": expected["requests"],
            "exit_code": result["exit_code"],
            "config": result["config"],
            "fetch_seconds": result.get("fetch_seconds"),
            "cpu_seconds": result.get("cpu_seconds"),
            "child_cpu_seconds": result.get("child_cpu_seconds"),
            "read_aside": result.get("read_aside"),
            "child_private_mib": result.get("child_private_mib"),
            "process_peak_rss_mib": result.get("process_peak_rss_mib"),
        },
    )


# -- the scenarios -----------------------------------------------------------------------------------


def sync_scenarios(
    n: int,
    seed: int,
    dbs: list[Db],
    *,
    latency: float = 0.0,
    rate_limit: float | None = None,
    drift_fraction: float = 0.01,
    repeat: int = 1,
    profile: Path | None = None,
    breakdown: bool = False,
    drift: bool = True,
    log=print,
) -> tuple[list[Row], dict]:
    """First pull into an empty database, no-op re-pull, re-pull after drift; on each database.

    One fake Stripe process serves every database (warmed before each phase, so that no run pays
    for the fake's first JSON encoding); the runs go phase by phase: every first pull, every no-op
    (``repeat`` times, each first pull into a new empty database, the row keeping the median run),
    then the drift and every re-pull. With no rate limit in the fake, reconcile's own throttle is
    lifted; with one, reconcile keeps its default settings.
    """
    unthrottled = rate_limit is None
    runs: dict[tuple[str, str], list[Row]] = {}
    info: dict = {}
    log(f"  starting the fake Stripe with N={n:,} (seed {seed}) in its own process ...")
    with FakeProcess(n, seed, latency=latency, rate_limit=rate_limit) as fake:
        info["warm_seconds"] = fake.call("warm")
        for rep in range(max(1, repeat)):
            for db in dbs:
                reset_database(db)
                run_ours("migrate", db, fake.url)
            for scenario in ("first pull", "no-op re-pull"):
                for db in dbs:
                    log(f"  {scenario} on {db.name}" + (f" (run {rep + 1} of {repeat})" if repeat > 1 else "") + " ...")
                    runs.setdefault((scenario, db.name), []).append(
                        measured(scenario, db, fake, n, unthrottled=unthrottled)
                    )
        if profile is not None:
            info["profiles"] = profile_runs(fake, profile, unthrottled, log)
        if breakdown and dbs:
            log(f"  where a no-op's time goes, stage by stage, on {dbs[0].name} ...")
            info["breakdown"] = run_breakdown(dbs[0], fake.url)
        if not drift:
            return [median_row(rows) for rows in runs.values()], info
        info["drift"] = fake.call("drift", fraction=drift_fraction, seed=seed + 1)
        fake.call("warm")
        for db in dbs:
            log(f"  re-pull after drift on {db.name} ...")
            runs[("drift re-pull", db.name)] = [measured("drift re-pull", db, fake, n, unthrottled=unthrottled)]
    return [median_row(rows) for rows in runs.values()], info


def run_breakdown(db: Db, api_base: str) -> dict:
    """``python -m bench.breakdown`` against a database a first pull filled: seconds per stage."""
    cmd = [sys.executable, "-m", "bench.breakdown", "--db-url", db.url, "--api-base", api_base]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("bench.breakdown failed:\n" + "\n".join(proc.stderr.strip().splitlines()[-12:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth(ns: list[int], seed: int, db: Db, known: list[Row], log=print) -> list[dict]:
    """Peak RSS of a first pull and a no-op at each N (SQLite), reusing the rows already measured."""
    points = []
    for n in ns:
        rows = [r for r in known if r.n == n and r.db == db.name and r.scenario in ("first pull", "no-op re-pull")]
        if len(rows) < 2:
            log(f"  memory growth: N={n:,} on {db.name} ...")
            try:
                rows, _ = sync_scenarios(n, seed, [db], drift=False, log=log)
            except Exception as exc:  # noqa: BLE001 - a point that could not be measured is said so
                log(f"  memory growth at N={n:,} failed: {type(exc).__name__}: {exc}")
                continue
        for r in rows:
            points.append(
                {
                    "scenario": r.scenario,
                    "n": n,
                    "objects": r.objects,
                    "peak_rss_mib": r.peak_rss_mib,
                    "rss_before_mib": r.rss_before_mib,
                    "wall": r.wall,
                }
            )
    return points


def slope(points: list[dict], scenario: str) -> dict:
    """Least squares of peak RSS on objects: KiB per object, the intercept, the worst residual, and
    the slope of each segment between consecutive N (growth is linear when they agree, and no worse
    than linear when none rises above the one before)."""
    pts = [(p["objects"], p["peak_rss_mib"] * 1024) for p in points if p["scenario"] == scenario]
    if len(pts) < 2:
        return {}
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    k = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
    b = my - k * mx
    worst = max(abs(y - (k * x + b)) / y for x, y in pts)
    pts.sort()
    segments = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in zip(pts, pts[1:], strict=False) if x2 > x1]
    spread = (max(segments) - min(segments)) / max(segments) if segments and max(segments) > 0 else 0.0
    # how much faster than the segment before one grows (negative: slower): above 0.2, worse than linear
    rise = max((b / a - 1 for a, b in zip(segments, segments[1:], strict=False) if a > 0), default=0.0)
    return {
        "kib_per_object": k,
        "intercept_mib": b / 1024,
        "worst_residual": worst,
        "segments": segments,
        "segment_spread": spread,
        "segment_rise": rise,
    }


def median_row(rows: list[Row]) -> Row:
    """The run with the median wall time (the lower one of an even count), all walls in extra; its
    peak RSS the highest of the runs (a memory verdict must not pass on the median's luck)."""
    ordered = sorted(rows, key=lambda r: r.wall)
    row = ordered[(len(ordered) - 1) // 2]
    if len(rows) > 1:
        row.extra["walls"] = [r.wall for r in rows]
        row.extra["peaks"] = [r.peak_rss_mib for r in rows]
        row.peak_rss_mib = max(r.peak_rss_mib for r in rows)
    return row


def profile_runs(fake: FakeProcess, directory: Path, unthrottled: bool, log=print) -> list[str]:
    """A first pull and a no-op on a SQLite database of their own, profiled (not in the table)."""
    db = Db.sqlite(SCRATCH / "profile.sqlite3")
    for old in directory.glob("*.txt") if directory.is_dir() else ():
        old.unlink()
    reset_database(db)
    run_ours("migrate", db, fake.url)
    files = []
    for label in ("first-pull", "no-op"):
        log(f"  profiling a {label.replace('-', ' ')} on sqlite ...")
        result = run_ours("pull", db, fake.url, unthrottled=unthrottled, profile=directory, label=label)
        files += result["profiles"]
    return files


def latency_scenario(
    n: int, seed: int, db: Db, *, latency: float = 0.3, rate_limit: float = 25.0, runs: int = 1, log=print
):
    """A first pull against a slow fake with Stripe's test-mode limit (``rate_limit`` requests a
    second for the whole account): wall time and requests against what that limit allows.

    reconcile runs with its default settings (its test-mode key gets the same account-wide limit).
    With ``runs`` above 1, each run pulls into a new empty database from the same fake, and the
    row is the median run (``median_row``: every wall is kept): the CPU work after the fetch moves
    with the machine's load, and one run's ratio decided the verdict alone.
    """
    log(f"  latency-bound first pull: N={n:,}, latency {latency:g}s, rate limit {rate_limit:g}/s for the account ...")
    rows = []
    with FakeProcess(n, seed, latency=latency, account_rate_limit=rate_limit) as fake:
        fake.call("warm")
        for _ in range(max(1, runs)):
            reset_database(db)
            run_ours("migrate", db, fake.url)
            rows.append(measured("latency-bound first pull", db, fake, n, unthrottled=False))
    row = median_row(rows)
    row.extra["bounds"] = bounds(row.extra["expected_by_endpoint"], latency, rate_limit)
    row.extra["latency"], row.extra["rate_limit"] = latency, rate_limit
    return row


def bounds(needed: dict, latency: float, rate: float) -> dict:
    """What the rate limit allows for the requests the data needs, and what one-page-at-a-time costs.

    ``needed`` has the listings' pages (``listings``) and the requests per endpoint (the minimal
    counts computed from the account, not the requests a client happened to make).

    - Rate-limit bound: Stripe's limit is per account (25 requests a second in test mode), so the
      fewest requests the data needs take at least their number / ``rate`` seconds, however they
      are spread over endpoints.
    - Per-endpoint bound, for reference: the largest endpoint's requests / ``rate`` (what a limit
      per endpoint alone would allow).
    - Sequential paging: a listing walked with ``starting_after`` alone cannot ask for a page
      before it has the previous one, so its p pages take at least p x latency; listings walked
      at the same time overlap, so the largest listing sets it.
    """
    endpoints = {k: v for k, v in needed.items() if k not in ("total", "listings")}
    listings = needed.get("listings", {})
    return {
        "rate_limit_bound": sum(endpoints.values()) / rate,
        "minimum_requests": sum(endpoints.values()),
        "endpoint_bound": max(endpoints.values()) / rate,
        "sequential_paging": max(listings.values()) * latency if listings else 0.0,
        "needed": endpoints,
        "listings": listings,
    }

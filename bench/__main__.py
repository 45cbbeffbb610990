"""``python -m bench``: reconcile's benchmark against the fake Stripe (a test double on loopback).

    python -m bench                      # N=10,000, SQLite and PostgreSQL, latency-bound run, side by side
    python -m bench --large              # N=100,000
    python -m bench --n 2000 --db sqlite --no-peer
    python -m bench --write-docs         # also update docs/benchmarks.md

Nothing here talks to Stripe: every request goes to the fake Stripe on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import report
from .scenarios import DEFAULT_POSTGRES, SCRATCH, Db, growth, latency_scenario, postgres_available, sync_scenarios

PEER_MAX_N = 10_000  # the peer's target is defined at 10,000; at 100,000 it would take ~10 minutes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Benchmark pull_stripe against the fake Stripe.")
    p.add_argument("--n", type=int, default=None, help="customers (and subscriptions) in the account (default 10,000)")
    p.add_argument("--large", action="store_true", help="N = 100,000")
    p.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--latency", type=float, default=0.0, help="the fake's latency per request in the sync scenarios")
    p.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="the fake's rate limit (requests/s per endpoint) in the sync scenarios; reconcile then "
        "throttles itself to 0.8x that (its default ratio: 20 for Stripe's 25)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip the side by side with drf-stripe-subscription")
    p.add_argument("--peer-n", type=int, default=None, help=f"N of the side by side (default min(N, {PEER_MAX_N:,}))")
    p.add_argument(
        "--findings-n",
        type=int,
        default=2_000,
        help="N of the peer's run on the generator's account as is (default 2,000)",
    )
    p.add_argument("--no-latency-bound", action="store_true", help="skip the latency-bound run")
    p.add_argument("--latency-n", type=int, default=10_000, help="N of the latency-bound run (default 10,000)")
    p.add_argument(
        "--latency-runs",
        type=int,
        default=3,
        help="runs of the latency-bound first pull; its row and verdict are the median run's (default 3)",
    )
    p.add_argument(
        "--only-latency-bound",
        action="store_true",
        help="run only the latency-bound run (SQLite), --repeat K times; nothing is written to the docs",
    )
    p.add_argument("--no-breakdown", action="store_true", help="skip timing a no-op's stages one by one")
    p.add_argument(
        "--growth",
        default=None,
        help="comma-separated Ns: peak RSS of a first pull and a no-op at each (SQLite), with its slope "
        "(default with --large: 10000,100000,300000; none otherwise)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-events", action="store_true", help="skip the incremental pull and webhook runs")
    p.add_argument("--events-only", action="store_true", help="run only the incremental pull and webhook runs")
    p.add_argument("--no-webhooks", action="store_true", help="skip the webhook throughput runs")
    p.add_argument(
        "--events-n", type=int, default=None, help="N of the incremental pull run (default: N, at most 10,000)"
    )
    p.add_argument("--changes", type=int, default=100, help="objects changed before the incremental pull")
    p.add_argument("--webhook-mutations", type=int, default=1000, help="mutations whose webhooks are sent")
    p.add_argument("--drift", type=float, default=0.01, help="fraction changed before the drift re-pull")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each first pull and no-op per database; the row keeps the median run and the "
        "highest peak RSS (default 3 with --large: on a shared machine one run of a few seconds is a "
        "noisy reading; 1 otherwise)",
    )
    p.add_argument(
        "--profile",
        nargs="?",
        const=str(SCRATCH / "profile"),
        default=None,
        metavar="DIR",
        help="also profile a first pull and a no-op on SQLite (pyinstrument if installed, else "
        "cProfile) into DIR (default .bench/profile); not part of the table",
    )
    p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md with this run")
    p.add_argument(
        "--docs-only",
        action="store_true",
        help="run nothing: rewrite docs/benchmarks.md from the saved results of the last N=10,000 and "
        "N=100,000 runs (.bench/results-default.json, .bench/results-large.json)",
    )
    args = p.parse_args(argv)
    if args.n is None:
        args.n = 100_000 if args.large else 10_000
    if args.n < 1:
        p.error("--n must be at least 1")
    if args.repeat is None:
        args.repeat = 3 if args.large else 1
    if args.growth is None and args.large:
        args.growth = "10000,100000,300000"
    args.growth = [int(x) for x in args.growth.split(",")] if args.growth else []
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.docs_only:
        return docs_only()
    started = time.perf_counter()
    SCRATCH.mkdir(exist_ok=True)
    dbs: list[Db] = []
    if args.db in ("sqlite", "both"):
        dbs.append(Db.sqlite(SCRATCH / "bench.sqlite3"))
    if args.db in ("postgres", "both"):
        why = postgres_available(args.postgres_url)
        if why is None:
            dbs.append(Db.postgres(args.postgres_url))
        elif args.db == "postgres":
            log(f"PostgreSQL is not reachable at {args.postgres_url}: {why}")
            return 2
        else:
            log(
                f"PostgreSQL skipped: not reachable at {args.postgres_url} ({why}). Start it (as .ci/run does) "
                "or set BENCH_POSTGRES_URL / --postgres-url; --db sqlite silences this."
            )
    command = "python -m bench" + (
        "" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    postgres_url = args.postgres_url if any(db.name == "postgres" for db in dbs) else None
    info = report.machine(postgres_url)
    log(f"reconcile benchmark: {command}")
    log("  " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if args.events_only:
        return _events_only(args, dbs, command, info, started)
    if args.only_latency_bound:
        return _latency_only(args, dbs)

    rows, sync_info = sync_scenarios(
        args.n,
        args.seed,
        dbs,
        latency=args.latency,
        rate_limit=args.rate_limit,
        drift_fraction=args.drift,
        repeat=args.repeat,
        profile=Path(args.profile) if args.profile else None,
        breakdown=not args.no_breakdown,
        log=log,
    )
    print(
        f"\nSync scenarios (fake Stripe latency {args.latency:g}s, "
        f"rate limit {'none' if args.rate_limit is None else f'{args.rate_limit:g}/s'}):"
    )
    print(report.text_table(report.COLUMNS, [report.row_cells(r) for r in rows]), flush=True)

    if sync_info.get("breakdown"):
        print(f"\nWhere a no-op's time goes (N={args.n:,}, each stage alone, one thread, {dbs[0].name}):")
        print(report.text_table(["stage", "seconds"], report.breakdown_lines(sync_info["breakdown"])), flush=True)

    points = []
    if args.growth:
        sqlite = next((db for db in dbs if db.name == "sqlite"), None)
        if sqlite is not None:
            points = growth(args.growth, args.seed, sqlite, rows, log=log)
            print("\nPeak RSS against N (SQLite):")
            print(report.text_table(report.GROWTH_COLUMNS, report.growth_rows(points)))
            for line in report.slope_lines(points):
                print(line)

    latency_row = None
    if not args.no_latency_bound:
        sqlite = next((db for db in dbs if db.name == "sqlite"), dbs[0])
        latency_row = latency_scenario(args.latency_n, args.seed, sqlite, runs=args.latency_runs, log=log)
        print("\nLatency-bound first pull:")
        print(report.text_table(report.COLUMNS, [report.row_cells(latency_row)]))
        for line in report.latency_lines(latency_row):
            print(line)

    events_rows, hooks = [], []
    if not args.no_events:
        events_rows, hooks = _events(args, dbs)

    sbs = None
    if not args.no_peer:
        peer_n = args.peer_n or min(args.n, PEER_MAX_N)
        sbs = _side_by_side(peer_n, args, dbs)

    results = {
        "n": args.n,
        "seed": args.seed,
        "command": command,
        "when": report.now(),
        "machine": info,
        "objects": rows[0].extra["objects"] if rows else {},
        "drift": sync_info.get("drift"),
        "rows": [asdict(r) for r in rows],
        "latency": asdict(latency_row) if latency_row else None,
        "side_by_side": sbs,
        "events": {"rows": [asdict(r) for r in events_rows], "webhooks": hooks},
        "breakdown": sync_info.get("breakdown"),
        "growth": points,
        "load_end": report.load_average(),
    }
    verdicts = report.targets(rows, latency_row, sbs, args.n, points)
    results["targets"] = verdicts
    print("\nTargets:")
    for target, measured, verdict in verdicts:
        print(f"  [{verdict}] {target}: {measured}")
    results["seconds"] = time.perf_counter() - started
    key = report.section_key(args.n, args.large)
    out = SCRATCH / f"results-{key}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nRaw results: {out.relative_to(report.ROOT)}; {results['seconds']:.0f} s in all.")
    if args.profile:
        print(f"Profiles: {args.profile}/")
    if args.write_docs:
        path = report.write_docs(key, results)
        print(f"Updated {path.relative_to(report.ROOT)} (section '{key}').")
    return 0


def _latency_only(args: argparse.Namespace, dbs: list[Db]) -> int:
    """The latency-bound run alone, ``--repeat`` times (each a fresh fake, database and process)."""
    sqlite = next((db for db in dbs if db.name == "sqlite"), None) or Db.sqlite(SCRATCH / "bench.sqlite3")
    rows = [latency_scenario(args.latency_n, args.seed, sqlite, log=log) for _ in range(max(1, args.repeat))]
    print("\nLatency-bound first pull:")
    print(report.text_table(report.COLUMNS, [report.row_cells(row) for row in rows]))
    for row in rows:
        for line in report.latency_lines(row):
            print(line)
    print(f"Load average at the end (1, 5, 15 min): {report.load_average()}.")
    return 0


def _events_only(args: argparse.Namespace, dbs: list[Db], command: str, info: dict, started: float) -> int:
    rows, hooks = _events(args, dbs)
    n = args.events_n or min(args.n, 10_000)
    data = {
        "n": n,
        "command": command,
        "when": report.now(),
        "machine": info,
        "events": {"rows": [asdict(r) for r in rows], "webhooks": hooks},
        "seconds": time.perf_counter() - started,
    }
    out = SCRATCH / f"results-events-n{n}.json"
    out.write_text(json.dumps(data, indent=1, default=str))
    print(f"\nRaw results: {out.relative_to(report.ROOT)}")
    if args.write_docs:
        path = report.write_events_docs(f"events-n{n}", data)
        print(f"Updated {path.relative_to(report.ROOT)} (section 'events-n{n}').")
    return 0


def _events(args: argparse.Namespace, dbs: list[Db]) -> tuple[list, list[dict]]:
    from . import events

    rows = []
    n = args.events_n or min(args.n, 10_000)
    for db in dbs:
        rows += events.incremental_scenario(n, args.seed, db, changes=args.changes, log=log)
    hooks = []
    if any(db.name == "postgres" for db in dbs) and not args.no_webhooks:
        from tests.helpers.site import redis_available

        modes = ["inline"] + (["celery"] if redis_available() else [])
        for mode in modes:
            hooks.append(
                events.webhook_scenario(
                    args.postgres_url,
                    mode=mode,
                    customers=2_000,
                    mutations=args.webhook_mutations,
                    seed=args.seed,
                    log=log,
                )
            )
    print("\nEvents:")
    for line in events.text_lines(rows, hooks):
        print(line)
    return rows, hooks


def docs_only() -> int:
    saved = [p for p in (SCRATCH / "results-default.json", SCRATCH / "results-large.json") if p.exists()]
    if not saved:
        log("No saved results in .bench/: run the benchmark first.")
        return 2
    for path in saved:
        key = path.stem.removeprefix("results-")
        report.write_docs(key, json.loads(path.read_text()))
        print(f"Updated {report.DOCS.relative_to(report.ROOT)} (section '{key}') from {path.relative_to(report.ROOT)}.")
    return 0


def _side_by_side(peer_n: int, args: argparse.Namespace, dbs: list[Db]) -> dict | None:
    from .sidebyside import side_by_side

    try:
        sbs = side_by_side(peer_n, args.seed, dbs, findings_n=args.findings_n, log=log)
    except Exception as exc:  # noqa: BLE001 - the rest of the report still stands
        log(f"side by side failed: {type(exc).__name__}: {exc}")
        return None
    print(f"\nSide by side with drf-stripe-subscription 1.2.2 (peer-compatible variant, N={peer_n:,}):")
    print(report.text_table(report.SBS_COLUMNS, report.sbs_rows(sbs["pairs"])))
    for line in report.ratio_lines(sbs["pairs"]):
        print(line)
    run = sbs.get("stripe_data")
    if run:
        print(
            f"\nThe peer on the generator's account as is (N={run['n']:,}, {run['db']}): stored "
            + ", ".join(f"{v:,} {k}" for k, v in run["rows"].items())
        )
        for step, pages, failed, seconds, errors in report.finding_rows(run):
            print(f"  {step}: {pages} pages, {failed} failed, {seconds} s; errors: {errors}")
    return sbs


if __name__ == "__main__":
    raise SystemExit(main())

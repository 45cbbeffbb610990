"""Two commits side by side on one machine at one time (``python -m bench.ab REV``).

On a shared machine the same commit's wall time moves by a fifth from one hour to the next (see
docs/benchmarks.md), so a change is measured against the commit before it in one run: one fake
Stripe (this tree's, built and warmed once), and for each side, in turn and in alternating order
round after round, an empty database, a first pull and a no-op re-pull, each in a fresh
interpreter running that side's code (``REV`` is checked out into a temporary git worktree; both
sides use this tree's virtualenv, so the older commit's dependencies must be installed in it: orjson
for commits before 1d205aa). Prints a markdown table of every run and the ratio of the medians::

    python -m bench.ab HEAD~3 --n 100000 --db sqlite --rounds 2

``--side-by-side`` runs reconcile as the side by side with drf-stripe-subscription does: on the
peer-compatible variant of the account, creating a user per customer (``--n 10000`` there).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .fakeproc import FakeProcess
from .scenarios import ROOT, Db, reset_database, run_ours

RUNS = ("first pull", "no-op")
PG_URL = "postgres://postgres@127.0.0.1:5432/reconcile_ab_{side}"


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev``'s tree in a temporary directory (a detached git worktree), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="reconcile-ab-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), rev], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def order(rounds: int) -> list[tuple[str, ...]]:
    """Which side runs first in each round: alternating, so neither always meets a warmer machine."""
    return [("old", "new") if r % 2 == 0 else ("new", "old") for r in range(rounds)]


def database(db: str, side: str) -> Db:
    if db == "sqlite":
        return Db("sqlite", f"sqlite:///{ROOT / '.bench' / f'ab-{side}.sqlite3'}")
    return Db("postgres", PG_URL.format(side=side))


def measure(rev: str, n: int, db: str, rounds: int, seed: int = 7, side_by_side: bool = False) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"old": [], "new": []}
    variant = "peer" if side_by_side else "stripe"
    with worktree(rev) as old, FakeProcess(n, seed, variant=variant) as fake:
        fake.call("warm")
        roots = {"old": old, "new": ROOT}
        for sides in order(rounds):
            for side in sides:
                target = database(db, side)
                reset_database(target)
                run_ours("migrate", target, fake.url, root=roots[side])
                runs = {}
                for name in RUNS:
                    done = run_ours(
                        "pull", target, fake.url, unthrottled=True, create_users=side_by_side, root=roots[side]
                    )
                    runs[name] = {
                        "wall": done["wall"],
                        "peak_rss_mib": done["peak_rss_mib"],
                        "fetch": done["fetch_seconds"],
                        "requests": done["requests"],
                    }
                results[side].append(runs)
                sys.stderr.write(f"{side}: {runs}\n")
    return results


def _each(values: list, form: str) -> str:
    return ", ".join(format(v, form) for v in values)


def table(results: dict[str, list[dict]], rev: str, head: str) -> str:
    lines = [
        "| side | run | wall s (each round) | median | fetch s | peak RSS MiB | requests |",
        "| --- | --- | --- | ---: | --- | --- | --- |",
    ]
    medians: dict[tuple[str, str], float] = {}
    for side, label in (("old", rev), ("new", head)):
        for name in RUNS:
            runs = [r[name] for r in results[side]]
            walls = [r["wall"] for r in runs]
            medians[side, name] = statistics.median(walls)
            fetch, peak = _each([r["fetch"] for r in runs], ".2f"), _each([r["peak_rss_mib"] for r in runs], ".1f")
            requests = _each([r["requests"] for r in runs], "d")
            lines.append(
                f"| {side} ({label}) | {name} | {_each(walls, '.2f')} | {medians[side, name]:.2f} | {fetch} | "
                f"{peak} | {requests} |"
            )
    ratios = ", ".join(f"{name} {medians['new', name] / medians['old', name]:.3f}" for name in RUNS)
    return "\n".join(lines) + f"\n\nMedian wall time, new / old: {ratios}.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare this tree with (git rev-parse syntax)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="the side by side's account (the peer-compatible variant), creating a user per customer",
    )
    args = parser.parse_args(argv)
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.rev], cwd=ROOT, check=True, capture_output=True, text=True
    )
    head = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    results = measure(args.rev, args.n, args.db, args.rounds, side_by_side=args.side_by_side)
    account = ", the side by side's account, creating users" if args.side_by_side else ""
    sys.stdout.write(f"N={args.n:,}, {args.db}, {args.rounds} rounds{account}\n\n")
    sys.stdout.write(table(results, rev.stdout.strip(), head.stdout.strip() or "this tree"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

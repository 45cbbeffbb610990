"""The benchmark's output: the table on stdout, the targets with met / not met, docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

from .scenarios import ROOT, Row

DOCS = ROOT / "docs" / "benchmarks.md"
COLUMNS = ("scenario", "db", "N", "objects", "API requests", "SQL statements", "wall s", "objects/s", "peak RSS MiB")


# -- formatting ----------------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def row_cells(row: Row) -> list[str]:
    return [
        row.scenario,
        row.db,
        _n(row.n),
        _n(row.objects),
        _n(row.requests),
        _n(row.sql),
        f"{row.wall:.2f}",
        _n(row.objects_per_s),
        f"{row.peak_rss_mib:.0f}",
    ]


def text_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    right = [i > 1 for i in range(len(header))]

    def line(cells):
        cells = zip(cells, widths, right, strict=True)
        return "  ".join(str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in cells)

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def md_table(
    header: list[str] | tuple[str, ...], rows: list[list[str]], right_from: int = 2, right_to: int | None = None
) -> str:
    """Columns ``right_from`` .. ``right_to`` (exclusive; default: to the end) are right-aligned."""
    end = len(header) if right_to is None else right_to
    align = ["---:" if right_from <= i < end else "---" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


# -- the side by side -------------------------------------------------------------------------------

SBS_COLUMNS = (
    "tool",
    "db",
    "objects stored",
    "API requests",
    "SQL statements",
    "SQL / object",
    "wall s",
    "objects/s",
    "peak RSS MiB",
)


def sbs_rows(pairs: list[dict]) -> list[list[str]]:
    rows = []
    for pair in pairs:
        ours, theirs = pair["ours"], pair["theirs"]
        rows.append(
            [
                "reconcile",
                pair["db"],
                _n(ours["objects"]),
                _n(ours["requests"]),
                _n(ours["sql"]),
                f"{ours['sql'] / max(ours['objects'], 1):.4f}",
                f"{ours['wall']:.2f}",
                _n(ours["objects_per_s"]),
                f"{ours['peak_rss_mib']:.0f}",
            ]
        )
        rows.append(
            [
                "drf-stripe-subscription 1.2.2",
                pair["db"],
                _n(theirs["objects_stored"]),
                _n(theirs["requests"]),
                _n(theirs["sql"]),
                f"{theirs['sql'] / max(theirs['objects_stored'], 1):.2f}",
                f"{theirs['wall']:.2f}",
                _n(theirs["objects_per_s"]),
                f"{theirs['peak_rss_mib']:.0f}",
            ]
        )
    return rows


def ratios(pair: dict) -> dict:
    ours, theirs = pair["ours"], pair["theirs"]
    speed = ours["objects_per_s"] / theirs["objects_per_s"] if theirs["objects_per_s"] else float("inf")
    ours_spo = ours["sql"] / max(ours["objects"], 1)
    theirs_spo = theirs["sql"] / max(theirs["objects_stored"], 1)
    return {"speed": speed, "sql_per_object": theirs_spo / ours_spo if ours_spo else float("inf")}


def ratio_lines(pairs: list[dict]) -> list[str]:
    out = []
    for pair in pairs:
        r = ratios(pair)
        out.append(
            f"{pair['db']}: objects/s reconcile / peer = {r['speed']:.1f}x; "
            f"SQL statements per object peer / reconcile = {r['sql_per_object']:.0f}x"
        )
    return out


def finding_rows(stripe_run: dict) -> list[list[str]]:
    rows = []
    for step in stripe_run["steps"]:
        errors = "; ".join(f"{e['error']} (pages: {e['pages']})" for e in step["errors"]) or "none"
        rows.append([step["step"], _n(step["pages"]), _n(step["failed_pages"]), f"{step['seconds']:.1f}", errors])
    return rows


# -- targets ----------------------------------------------------------------------------------------


def targets(
    rows: list[Row], latency_row: Row | None, sbs: dict | None, n: int, points: list[dict] | None = None
) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) triples; verdict is "met", "not met" or "not measured"."""
    out: list[tuple[str, str, str]] = []
    bad = [r for r in rows if not (r.requests == r.expected_requests == r.fake_requests)]
    seen = ", ".join(sorted({f"{r.requests}/{r.expected_requests}" for r in rows}))
    out.append(
        (
            "API requests minimal (sync scenarios): one per page of 100 (products and prices listed active and "
            "archived, customers, subscriptions with status=all) plus item overflow pages, no retrieves, no retries",
            f"made / needed: {seen}" + (f"; off in {len(bad)} run(s)" if bad else ""),
            "met" if rows and not bad else "not met" if rows else "not measured",
        )
    )
    firsts = [r for r in rows if r.scenario == "first pull"]
    if firsts:
        worst = max(r.sql / r.objects * 100 for r in firsts)
        out.append(
            (
                "SQL statements on a first pull: at most 1 per 100 objects",
                f"{worst:.2f} per 100 objects (worst database)",
                "met" if worst <= 1 else "not met",
            )
        )
    pg_first = [r for r in rows if r.scenario == "first pull" and r.db == "postgres"]
    if pg_first:
        kinds = pg_first[0].sql_kinds
        out.append(
            (
                "PostgreSQL first pull loads new rows with COPY, not INSERT statements",
                f"COPY {kinds.get('COPY', 0)}, INSERT {kinds.get('INSERT', 0)} (the features and the audit row)",
                "met" if kinds.get("COPY", 0) > 0 and kinds.get("INSERT", 0) <= 3 else "not met",
            )
        )
    noops = [r for r in rows if r.scenario == "no-op re-pull"]
    if noops:
        writes = max(r.sql_writes for r in noops)
        out.append(
            ("No writes on a no-op re-pull", f"{writes} INSERT/UPDATE/DELETE", "met" if writes == 0 else "not met")
        )
    peer_name = "N=10,000, zero latency: at least 30x the peer's objects/s (SQLite and PostgreSQL)"
    if sbs and sbs.get("pairs") and sbs["n"] == 10_000:
        speeds = [ratios(p)["speed"] for p in sbs["pairs"]]
        out.append(
            (
                peer_name,
                ", ".join(f"{p['db']} {s:.1f}x" for p, s in zip(sbs["pairs"], speeds, strict=False)),
                "met" if min(speeds) >= 30 else "not met",
            )
        )
    else:
        out.append((peer_name, "the side by side ran at another N or not at all", "not measured"))
    large = n >= 100_000
    for scenario, goals in (
        ("first pull", {"sqlite": 20_000, "postgres": 15_000}),
        ("no-op re-pull", {"sqlite": 40_000, "postgres": 40_000}),
    ):
        picked = [r for r in rows if r.scenario == scenario]
        name = f"N=100,000 {scenario}: at least " + ", ".join(f"{v:,} objects/s on {k}" for k, v in goals.items())
        if large and picked:
            out.append(
                (
                    name,
                    ", ".join(f"{r.db} {_n(r.objects_per_s)}{_cpu(r)}" for r in picked),
                    "met" if all(r.objects_per_s >= goals.get(r.db, 0) for r in picked) else "not met",
                )
            )
        else:
            out.append((name, f"this run: N={n:,}", "not measured"))
    name = "N=100,000: peak RSS at most 1 KiB per object"
    if large and rows:
        worst = max(rows, key=lambda r: r.peak_rss_mib / r.objects)
        per = worst.peak_rss_mib * 1024 * 1024 / worst.objects
        # three decimals: a run a fraction of a MiB over the line must not read "1.00 ... not met"
        out.append(
            (
                name,
                f"up to {per / 1024:.3f} KiB per object ({worst.peak_rss_mib:.1f} MiB / {worst.objects:,} objects, "
                f"{worst.scenario} on {worst.db})",
                "met" if per <= 1024 else "not met",
            )
        )
    else:
        out.append((name, f"this run: N={n:,}", "not measured"))
    if points:
        from .scenarios import slope

        ns = sorted({p["n"] for p in points})
        fits = {sc: slope(points, sc) for sc in ("first pull", "no-op re-pull")}
        # at most linear: a re-pull keeps at most prune.EARLY_LIMIT records before their table comes,
        # so its growth per object falls as N grows; only a segment growing faster than the one
        # before (by more than 20%) is worse than linear
        rise = max((f.get("segment_rise", 1.0) for f in fits.values() if f), default=1.0)
        out.append(
            (
                "Peak RSS grows at most linearly with N ("
                + ", ".join(f"{x:,}" for x in ns)
                + "), slope stated (no segment's growth per object more than 20% above the one before)",
                "; ".join(
                    f"{sc} {f['kib_per_object']:.3f} KiB/object + {f['intercept_mib']:.0f} MiB, growth per "
                    "object between consecutive N " + ", ".join(f"{g:.3f}" for g in f.get("segments", [])) + " KiB"
                    for sc, f in fits.items()
                    if f
                ),
                "met" if len(ns) >= 3 and rise <= 0.2 else "not met",
            )
        )
    else:
        out.append(
            ("Peak RSS grows at most linearly with N (10,000, 100,000, 300,000)", "not run (--growth)", "not measured")
        )
    if latency_row:
        config = latency_row.extra.get("config", {})
        defaults = config.get("rate_limit") is None and config.get("rate_limit_total") == 25.0
        out.append(
            (
                "Rate-limit defaults match Stripe: a test-mode key gets 25 requests/s for the account, "
                "no per-endpoint throttle",
                f"RATE_LIMIT {config.get('rate_limit')}, RATE_LIMIT_TOTAL {config.get('rate_limit_total')} "
                f"(defaults, key sk_test_...); {latency_row.rate_limited} answered 429",
                "met" if defaults else "not met",
            )
        )
        b = latency_row.extra["bounds"]
        bound = b["rate_limit_bound"]
        minimum = b.get("minimum_requests") or sum(b["needed"].values())
        ratio = latency_row.wall / bound if bound else float("inf")
        n_lat = latency_row.n
        out.append(
            (
                f"Latency-bound first pull (0.3 s, 25/s for the account), N={n_lat:,}: at most 1.25x the time "
                "the minimum of requests needs at that limit",
                f"{latency_row.wall:.2f} s against {bound:.2f} s = {ratio:.2f}x"
                + (f" (the median of {len(walls)} runs)" if (walls := latency_row.extra.get("walls")) else ""),
                "met" if ratio <= 1.25 and n_lat >= 10_000 else "not met",
            )
        )
        sent = latency_row.fake_requests or latency_row.requests
        out.append(
            (
                f"Latency-bound first pull, N={n_lat:,}: at most 1.1x the minimum of requests",
                f"{sent} sent / {minimum} needed = {sent / minimum:.3f}x",
                "met" if sent <= 1.1 * minimum and n_lat >= 10_000 else "not met",
            )
        )
    return out


def _cpu(row) -> str:
    """What bound a run: its own process's CPU seconds against its wall (one interpreter: the fetch's
    threads share one core at a time), and its child's (the stored rows read aside), when known."""
    cpu = row.extra.get("cpu_seconds")
    if cpu is None:
        return ""
    child = row.extra.get("child_cpu_seconds") or 0.0
    return f" (CPU {cpu:.2f} s of {row.wall:.2f} s" + (f", its child {child:.2f} s" if child else "") + ")"


# -- the machine ----------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def postgres_version(url: str) -> str:
    # Ask the server's maintenance database: the bench's own database is made anew per data set,
    # so before the first one it does not exist yet and the server looked unreachable.
    server = urlsplit(url)._replace(path="/postgres").geturl()
    try:
        import psycopg

        with psycopg.connect(server, connect_timeout=5) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except Exception:  # noqa: BLE001 - only for the report
        return "not reachable"


def machine(postgres_url: str | None) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "nproc": str(cores),
        "CPU": _cpu_model(),
        "RAM": _ram_gib(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Django": _version("Django"),
        "stripe (reconcile)": _version("stripe"),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres_version(postgres_url) if postgres_url else "not used",
    }
    info["reconcile commit"] = _commit()
    info["load average at start (1, 5, 15 min)"] = load_average()
    return info


def load_average() -> str:
    """The machine's load: figures taken while other work runs are noisier, and slower."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def breakdown_lines(b: dict) -> list[list[str]]:
    """Rows (stage, seconds) of ``bench.breakdown``'s answer, in its order."""
    return [[k, f"{v:.3f}"] for k, v in b.items() if isinstance(v, float)]


def growth_rows(points: list[dict]) -> list[list[str]]:
    return [
        [
            p["scenario"],
            f"{p['n']:,}",
            f"{p['objects']:,}",
            f"{p['peak_rss_mib']:.0f}",
            f"{p['peak_rss_mib'] * 1024 / p['objects']:.2f}",
        ]
        for p in points
    ]


GROWTH_COLUMNS = ["scenario", "N", "objects", "peak RSS MiB", "KiB per object"]


def slope_lines(points: list[dict]) -> list[str]:
    from .scenarios import slope

    out = []
    for scenario in ("first pull", "no-op re-pull"):
        fit = slope(points, scenario)
        if fit:
            out.append(
                f"{scenario}: peak RSS = {fit['intercept_mib']:.0f} MiB + {fit['kib_per_object']:.3f} KiB x objects "
                f"(least squares; worst point {fit['worst_residual'] * 100:.1f}% off the line); growth per object "
                "between consecutive N: "
                + ", ".join(f"{g:.3f}" for g in fit.get("segments", []))
                + f" KiB (they differ by {fit.get('segment_spread', 0) * 100:.0f}%)"
            )
    return out


def _commit() -> str:
    """HEAD, and whether reconcile/ had changes not yet committed when the run started."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "reconcile"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head} + uncommitted changes in reconcile/" if dirty else head


# -- docs/benchmarks.md -----------------------------------------------------------------------------

HEADER = (Path(__file__).parent / "header.md").read_text()  # the static part of docs/benchmarks.md


def section_key(n: int, large: bool) -> str:
    return "large" if large else ("default" if n == 10_000 else f"n{n}")


def section_title(key: str, n: int) -> str:
    return {"default": "N = 10,000 (`make bench`)", "large": "N = 100,000 (`make bench-large`)"}.get(key, f"N = {n:,}")


def render_section(key: str, data: dict) -> str:
    n = data["n"]
    rows = [Row(**r) for r in data["rows"]]
    latency = Row(**data["latency"]) if data.get("latency") else None
    sbs = data.get("side_by_side")
    out = [f"<!-- bench:{key}:start -->", f"## {section_title(key, n)}", ""]
    out += [f"Run {data['when']} with `{data['command']}` in {data['seconds']:.0f} s.", ""]
    out += [md_table(["machine", ""], [[k, v] for k, v in data["machine"].items()], right_from=9), ""]
    out += ["### Sync scenarios", "", md_table(COLUMNS, [row_cells(r) for r in rows]), ""]
    repeated = [r for r in rows if r.extra.get("walls")]
    if repeated:
        out += [
            "Rows with several runs show the median run, with the highest peak RSS of the runs; all walls: "
            + "; ".join(f"{r.scenario} {r.db} " + ", ".join(f"{w:.2f}" for w in r.extra["walls"]) for r in repeated)
            + ".",
            "",
        ]
    if rows:
        r0 = rows[0]
        out += [
            f"{r0.objects:,} objects = "
            + ", ".join(f"{v:,} {k}" for k, v in data["objects"].items() if k not in ("objects", "subscription_items"))
            + f"; plus {r0.items:,} subscription items (written, not counted).",
            "",
        ]
    drift = data.get("drift")
    if drift:
        out += [
            f"Drift made in the fake before the drift re-pulls: products renamed {drift['products_renamed']:,}, "
            f"subscriptions canceled {drift['subscriptions_canceled']:,}, customer emails changed "
            f"{drift['customer_emails_changed']:,} ({drift['updates']:,} updates expected).",
            "",
        ]
    out += ["SQL statements by kind:", ""]
    out += [
        md_table(
            ["scenario", "db", "statements by kind", "applied"],
            [
                [
                    r.scenario,
                    r.db,
                    ", ".join(f"{k} {v}" for k, v in sorted(r.sql_kinds.items())),
                    ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items()) if v) or "nothing",
                ]
                for r in rows
            ],
            right_from=9,
        ),
        "",
    ]
    if latency:
        out += ["### Latency-bound first pull", "", md_table(COLUMNS, [row_cells(latency)]), ""]
        out += [f"- {line}" for line in latency_lines(latency)] + [""]
    out += _side_by_side_section(sbs)
    out += _events_section(data.get("events"))
    if data.get("breakdown"):
        out += [
            "### Where a no-op's time goes (each stage alone, one thread, SQLite)",
            "",
            md_table(["stage", "seconds"], breakdown_lines(data["breakdown"]), right_from=1),
            "",
            f"{data['breakdown'].get('pages', 0):,} pages, {data['breakdown'].get('bytes', 0) / 1e6:.1f} MB of JSON.",
            "",
        ]
    if data.get("growth"):
        out += [
            "### Peak RSS against N (SQLite)",
            "",
            md_table(GROWTH_COLUMNS, growth_rows(data["growth"]), right_from=1),
            "",
        ]
        out += [f"- {line}" for line in slope_lines(data["growth"])] + [""]
    if data.get("load_end"):
        out += [f"Load average at the end (1, 5, 15 min): {data['load_end']}.", ""]
    verdicts = targets(rows, latency, sbs, n, data.get("growth"))  # recomputed, so that a re-render uses today's rules
    out += [
        "### Targets",
        "",
        md_table(["target", "measured", "verdict"], [list(t) for t in verdicts], right_from=9),
        "",
    ]
    out.append(f"<!-- bench:{key}:end -->")
    return "\n".join(out)


def _side_by_side_section(sbs: dict | None) -> list[str]:
    """reconcile against the peer package on the same account (bench/sidebyside.py)."""
    if not sbs:
        return []
    out: list[str] = []
    out += [f"### Side by side (peer-compatible variant, N={sbs['n']:,})", ""]
    out += [md_table(SBS_COLUMNS, sbs_rows(sbs["pairs"])), ""]
    out += [f"- {line}" for line in ratio_lines(sbs["pairs"])] + [""]
    versions = next((p["theirs"]["versions"] for p in sbs["pairs"]), {})
    if versions:
        out += ["Peer environment: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    if sbs.get("stripe_data"):
        run = sbs["stripe_data"]
        out += [
            f"**The peer on the generator's account as is** (N={run['n']:,}, {run['db']}): stored "
            + ", ".join(f"{v:,} {k}" for k, v in run["rows"].items())
            + ".",
            "",
        ]
        out += [
            md_table(
                ["command", "pages", "failed pages", "seconds", "errors"],
                finding_rows(run),
                right_from=1,
                right_to=4,
            ),
            "",
        ]
    return out


def _events_section(events: dict | None) -> list[str]:
    """The incremental pull against a full pull, and webhook throughput (bench/events.py)."""
    if not events or not (events.get("rows") or events.get("webhooks")):
        return []
    out = ["### Events", ""]
    rows = [Row(**r) for r in events.get("rows", [])]
    if rows:
        out += [md_table(COLUMNS, [row_cells(r) for r in rows]), ""]
    hooks = events.get("webhooks") or []
    if hooks:
        out += [
            md_table(
                ["webhooks", "events", "senders", "answered/s", "p50 ms", "p99 ms", "applied/s", "redelivered", "lost"],
                [
                    [
                        h["mode"],
                        f"{h['events']:,}",
                        str(h["senders"]),
                        f"{h['events_per_s']:.0f}",
                        f"{h['p50_ms']:.0f}",
                        f"{h['p99_ms']:.0f}",
                        f"{h['processed_per_s']:.0f}",
                        str(h["redelivered"]),
                        str(h["lost"]),
                    ]
                    for h in hooks
                ],
                right_from=1,
            ),
            "",
        ]
    return out


def latency_lines(row: Row) -> list[str]:
    b = row.extra["bounds"]
    config = row.extra.get("config", {})
    settings = ", ".join(
        f"{k.upper()} {config[k]:g}" if isinstance(config.get(k), (int, float)) else f"{k.upper()} {config.get(k)}"
        for k in ("rate_limit", "rate_limit_total", "concurrency")
        if k in config
    )
    minimum = b.get("minimum_requests") or sum(b["needed"].values())
    return [
        f"Fake: {row.extra['latency']:g} s per request, {row.extra['rate_limit']:g} requests/s for the whole account "
        f"(Stripe's test-mode limit). reconcile's settings: {settings or 'its defaults'}.",
        f"Requests needed per endpoint: {_endpoints(b['needed'])}; made: {_endpoints(row.extra['by_endpoint'])} "
        f"({row.requests} in all, {row.rate_limited} answered 429).",
        f"Rate-limit bound ({minimum} requests / {row.extra['rate_limit']:g} per s) {b['rate_limit_bound']:.2f} s; "
        f"one page at a time per listing would take {b['sequential_paging']:.2f} s.",
        f"Of the wall, fetching from the fake took {row.extra.get('fetch_seconds') or 0:.2f} s "
        f"({(row.extra.get('fetch_seconds') or 0) / b['rate_limit_bound']:.2f}x the bound); the rest (diff, report, "
        f"apply) {row.wall - (row.extra.get('fetch_seconds') or 0):.2f} s.",
        f"Wall {row.wall:.2f} s = {row.wall / b['rate_limit_bound']:.2f}x the rate-limit bound (target 1.25x); "
        f"requests {row.requests} = {row.requests / minimum:.3f}x the minimum (target 1.1x).",
    ] + _runs_line(row, b["rate_limit_bound"])


def _runs_line(row: Row, bound: float) -> list[str]:
    """Every run's wall and ratio, when the row is the median of several."""
    walls = row.extra.get("walls")
    if not walls:
        return []
    each = ", ".join(f"{w:.2f} s ({w / bound:.2f}x)" for w in walls)
    return [f"Runs, in order: {each}; the row and the verdict are the median run's."]


def _endpoints(by_endpoint: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_endpoint.items()))


_SECTION = re.compile(r"<!-- bench:(?P<key>[\w-]+):start -->.*?<!-- bench:(?P=key):end -->", re.S)
_ORDER = {"default": 0, "large": 1}


def write_docs(key: str, data: dict, path: Path = DOCS) -> Path:
    """Rewrite the header, replace this run's section, keep the other runs' sections."""
    return _write_section(key, render_section(key, data), path)


def _write_section(key: str, section: str, path: Path) -> Path:
    """Rewrite the header and replace (or add) the section ``key``, keeping every other section."""
    sections: dict[str, str] = {}
    if path.exists():
        for m in _SECTION.finditer(path.read_text()):
            sections[m.group("key")] = m.group(0)
    sections[key] = section
    ordered = sorted(sections, key=lambda k: (_ORDER.get(k, 2), k))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "\n\n".join(sections[k] for k in ordered) + "\n")
    return path


def render_events_section(key: str, data: dict) -> str:
    """A section of the events runs alone (``python -m bench --events-only``)."""
    out = [f"<!-- bench:{key}:start -->", f"## Events: incremental pull at N = {data['n']:,}, webhook throughput", ""]
    out += [f"Run {data['when']} with `{data['command']}` in {data['seconds']:.0f} s.", ""]
    out += [md_table(["machine", ""], [[k, v] for k, v in data["machine"].items()], right_from=9), ""]
    out += _events_section(data["events"])[2:]
    out.append(f"<!-- bench:{key}:end -->")
    return "\n".join(out)


def write_events_docs(key: str, data: dict, path: Path = DOCS) -> Path:
    """Replace (or add) this events section, keep the others."""
    return _write_section(key, render_events_section(key, data), path)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

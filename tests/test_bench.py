"""The benchmark's machinery (``bench/``), reconcile's side only, at a tiny N on SQLite.

Each run goes through the same code as ``make bench``: the fake Stripe (a test double) in a process
of its own, reconcile in a fresh process per run. The counts a row reports must be the ones the data
implies; timings are never asserted.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bench import breakdown, fakeproc, ours
from bench.accounts import RESOURCES, build, expected_requests, objects, pages, peer_compatible
from bench.fakeproc import FakeProcess
from bench.report import targets
from bench.scenarios import Db, Row, bounds, measured, reset_database, run_ours
from reconcile.core.parse import feature_ids
from reconcile.core.registry import PRICES
from reconcile.testing.fakestripe import FakeStripe, serve

N, SEED = 50, 3


def test_pages_of_a_list():
    assert [pages(n) for n in (0, 1, 100, 101, 250)] == [1, 1, 1, 2, 3]


def test_expected_requests_follow_the_listing():
    account = build(N, SEED)
    need = expected_requests(account)
    products_active = sum(1 for p in account["products"] if p["active"])
    assert need["products"] == pages(products_active) + pages(len(account["products"]) - products_active)
    assert need["customers"] == need["subscriptions"] == pages(N)
    # most have 1-3 items, all within the embedded page; the generator gives a few 11-13 (one page more each)
    assert need["subscription_items"] == sum(len(s["items"]["data"]) > 10 for s in account["subscriptions"]) == 1
    assert need["total"] == sum(v for k, v in need.items() if k not in ("total", "listings"))


def test_bounds_of_the_latency_run():
    need = {
        "products": 2,
        "prices": 2,
        "customers": 20,
        "subscriptions": 20,
        "subscription_items": 0,
        "total": 44,
        "listings": {"customers": 20, "subscriptions status=all": 20, "products active=true": 1},
    }
    b = bounds(need, latency=0.3, rate=25.0)
    assert b["rate_limit_bound"] == pytest.approx(44 / 25)  # Stripe's limit is per account
    assert b["minimum_requests"] == 44
    assert b["endpoint_bound"] == pytest.approx(0.8)
    assert b["sequential_paging"] == pytest.approx(6.0)


def test_the_latency_verdict_is_the_median_of_its_runs_and_every_run_is_shown():
    from bench.report import latency_lines
    from bench.scenarios import median_row

    def run(wall):
        return Row("latency-bound first pull", "sqlite", 10_000, 20, 44, 9, wall, 80.0, expected_requests=44)

    need = {"products": 2, "prices": 2, "customers": 20, "subscriptions": 20, "total": 44, "listings": {}}
    row = median_row([run(2.2), run(1.9), run(2.0)])
    row.extra.update(bounds=bounds(need, 0.3, 25.0), latency=0.3, rate_limit=25.0, by_endpoint={"customers": 20})
    assert row.wall == 2.0
    lines = latency_lines(row)
    assert lines[-2] == (
        "Wall 2.00 s = 1.14x the rate-limit bound (target 1.25x); requests 44 = 1.000x the minimum (target 1.1x)."
    )
    assert lines[-1] == (
        "Runs, in order: 2.20 s (1.25x), 1.90 s (1.08x), 2.00 s (1.14x); the row and the verdict are the median run's."
    )
    time = next(t for t in targets([], row, None, 10_000) if "1.25x the time" in t[0])
    assert time[1:] == ("2.00 s against 1.76 s = 1.14x (the median of 3 runs)", "met")
    assert latency_lines(_single(row))[-1].startswith("Wall 2.00 s")


def _single(row):
    """The same row as one run alone: no line of runs."""
    import dataclasses

    return dataclasses.replace(row, extra={k: v for k, v in row.extra.items() if k != "walls"})


def test_the_memory_verdict_names_the_worst_run_to_the_fraction():
    def run(db, peak):
        return Row("first pull", db, 100_000, 201_779, 2272, 59, 30.0, peak, expected_requests=2272)

    rows = [run("sqlite", 192.3), run("postgres", 197.4)]
    verdict = next(t for t in targets(rows, None, None, 100_000) if t[0].startswith("N=100,000: peak RSS"))
    assert verdict[1:] == (
        "up to 1.002 KiB per object (197.4 MiB / 201,779 objects, first pull on postgres)",
        "not met",
    )
    rows = [run("sqlite", 192.3), run("postgres", 196.9)]
    verdict = next(t for t in targets(rows, None, None, 100_000) if t[0].startswith("N=100,000: peak RSS"))
    assert verdict[2] == "met"


def test_repeated_runs_keep_the_median_wall_and_the_highest_peak():
    from bench.__main__ import parse_args
    from bench.scenarios import median_row

    def run(wall, peak):
        return Row("no-op re-pull", "sqlite", 100_000, 201_779, 2272, 12, wall, peak)

    row = median_row([run(5.4, 180.0), run(5.0, 190.5), run(6.1, 185.0)])
    assert (row.wall, row.peak_rss_mib) == (5.4, 190.5)
    assert row.extra == {"walls": [5.4, 5.0, 6.1], "peaks": [180.0, 190.5, 185.0]}
    assert [parse_args(a).repeat for a in ([], ["--large"], ["--large", "--repeat", "1"])] == [1, 3, 1]


def test_memory_growth_is_met_when_no_segment_grows_faster_than_the_one_before():
    def points(first, noop):
        objects = {10_000: 20_000, 100_000: 200_000, 300_000: 600_000}
        return [
            {"n": n, "objects": objects[n], "scenario": sc, "peak_rss_mib": peak}
            for sc, peaks in (("first pull", first), ("no-op re-pull", noop))
            for n, peak in zip(objects, peaks, strict=True)
        ]

    def verdict(pts):
        return next(t for t in targets([], None, None, 10_000, pts) if t[0].startswith("Peak RSS grows"))[2]

    # the no-op's growth falls with N (its early records are capped): at most linear
    assert verdict(points((70, 180, 430), (100, 190, 260))) == "met"
    # a segment growing 27% faster than the one before: worse than linear
    assert verdict(points((70, 180, 490), (100, 190, 260))) == "not met"


def test_a_rate_verdict_shows_each_runs_cpu_against_its_wall():
    """What bounds a run is printed with its rate: the process's CPU beside its wall, and its child's."""
    first = Row("first pull", "sqlite", 100_000, 201_779, 2272, 793, 10.0, 180.0, extra={"cpu_seconds": 9.5})
    noop = Row(
        "no-op re-pull", "sqlite", 100_000, 201_779, 2272, 12, 5.0, 180.0,
        extra={"cpu_seconds": 4.6, "child_cpu_seconds": 1.3},
    )  # fmt: skip
    found = {t[0].split(":")[0]: t[1:] for t in targets([first, noop], None, None, 100_000)}
    assert found["N=100,000 first pull"] == ("sqlite 20,178 (CPU 9.50 s of 10.00 s)", "met")
    assert found["N=100,000 no-op re-pull"] == ("sqlite 40,356 (CPU 4.60 s of 5.00 s, its child 1.30 s)", "met")
    older = Row("no-op re-pull", "postgres", 100_000, 201_779, 2272, 12, 5.1, 180.0)  # results without CPU
    assert next(t for t in targets([older], None, None, 100_000) if "N=100,000 no-op" in t[0])[1:] == (
        "postgres 39,565",
        "not met",
    )


def test_peer_variant_fits_what_the_peer_can_read():
    account = peer_compatible(build(N, SEED))
    assert len(account["prices"]) <= 100 and len(account["products"]) <= 100
    assert all(p["unit_amount"] is not None for p in account["prices"])
    emails = [c["email"].lower() for c in account["customers"]]
    assert all(emails) and len(set(emails)) == len(emails)
    assert all("current_period_start" in s and s["status"] != "paused" for s in account["subscriptions"])


def _tables_written(account: dict) -> int:
    """Tables a first pull inserts into: one bulk INSERT each at this size, plus the SyncRun row."""
    features = any(p["metadata"].get("features") for p in account["products"])
    # Product, Price, StripeUser, Subscription, SubscriptionItem (+ Feature, ProductFeature) + SyncRun
    # + EventCursor (where the next pull_stripe --incremental starts)
    return 5 + (2 if features else 0) + 1 + 1


def test_rows_report_the_counts_the_data_implies(tmp_path):
    account = build(N, SEED)
    need = expected_requests(account)
    made = {k: v for k, v in need.items() if k not in ("total", "listings") and v}
    count = objects(account)
    db = Db.sqlite(tmp_path / "bench.sqlite3")
    with FakeProcess(N, SEED) as fake:
        reset_database(db)
        run_ours("migrate", db, fake.url)
        first = measured("first pull", db, fake, N, unthrottled=True)
        noop = measured("no-op re-pull", db, fake, N, unthrottled=True)
        drift = fake.call("drift", fraction=0.01, seed=SEED + 1)
        after = measured("drift re-pull", db, fake, N, unthrottled=True)

    for row in (first, noop, after):
        assert (
            row.objects
            == count["objects"]
            == sum(count[r] for r in ("products", "prices", "customers", "subscriptions"))
        )
        assert row.items == count["subscription_items"]
        assert row.requests == row.fake_requests == row.expected_requests == need["total"]
        assert row.extra["by_endpoint"] == made
        assert row.rate_limited == 0
        assert row.sql == sum(row.sql_kinds.values())
        assert row.sql_writes == sum(row.sql_kinds.get(k, 0) for k in ("INSERT", "UPDATE", "DELETE", "COPY"))
        assert row.wall > 0 and row.peak_rss_mib > 0

    assert first.sql_kinds["INSERT"] == _tables_written(account)
    assert first.sql_writes == first.sql_kinds["INSERT"]  # nothing to update or delete in an empty database
    features = {f for p in account["products"] for f in feature_ids(p["metadata"], "features")}
    assert first.plan == {"create": count["objects"] + len(features)}

    assert noop.sql_writes == 0 and noop.plan == {} and noop.counts == {}
    # a re-pull reads the stored rows in a forked child while it fetches (a first pull has none);
    # the run's memory counts the child's own pages
    assert [r.extra["read_aside"] for r in (first, noop, after)] == [None, "done", "done"]
    assert noop.extra["child_private_mib"] > 0 and noop.extra["child_cpu_seconds"] > 0
    assert noop.peak_rss_mib >= noop.extra["process_peak_rss_mib"]

    assert drift == {"products_renamed": 1, "subscriptions_canceled": 1, "customer_emails_changed": 1, "updates": 3}
    assert after.plan == {"update": drift["updates"]}
    # one bulk UPDATE per model: Product, StripeUser, Subscription; and the event cursor moves with the writes
    assert after.sql_kinds.get("UPDATE") == 3 + 1
    assert after.sql_kinds.get("INSERT") == 1 and "DELETE" not in after.sql_kinds  # the SyncRun row only

    verdicts = {t.split(" (")[0].split(":")[0]: v for t, _, v in targets([first, noop, after], None, None, N)}
    assert verdicts["API requests minimal"] == "met"
    assert verdicts["No writes on a no-op re-pull"] == "met"


def test_a_runs_memory_with_its_child_is_the_higher_of_its_peak_and_its_peak_while_the_child_lived(monkeypatch):
    monkeypatch.setattr(ours, "peak_rss_mib", lambda: 150.0)
    assert ours.combined_peak_mib(None) == 150.0
    # the child ended when this process had reached 100 MiB; it held 30 of its own: 130 < 150
    assert ours.combined_peak_mib(SimpleNamespace(child_private_mib=30.0, peak_at_end_mib=100.0)) == 150.0
    assert ours.combined_peak_mib(SimpleNamespace(child_private_mib=30.0, peak_at_end_mib=140.0)) == 170.0


def test_the_bare_walk_sends_the_requests_a_run_needs_and_decodes_no_page():
    """bench.breakdown's "fake + loopback" stage: the requests of a no-op (prices expanded, items
    paged), each next cursor read from the page's last object alone."""
    account = build(250, SEED)
    with serve(FakeStripe(account)) as server:
        bodies, _, requests, size = breakdown._raw_pages(server.url, "sk_test_bench")
        received = list(server.fake.requests)
    need = expected_requests(account)
    per_list = {
        name: sum(path == f"/v1/{name}" for path, _ in requests) for name in RESOURCES + ("subscription_items",)
    }
    assert per_list == {"products": 2, "prices": 2, "customers": 3, "subscriptions": 3, "subscription_items": 1}
    assert per_list == {k: v for k, v in need.items() if k not in ("total", "listings")}
    assert len(bodies) == len(received) == need["total"] == 11
    assert size == sum(len(body) for _, body in bodies)
    assert [r.query.get("expand[]") for r in received if r.path == "/v1/prices"] == [list(PRICES.expand)] * 2
    for path, body in bodies:
        page = json.loads(body)
        if page["has_more"]:
            assert breakdown._last_id(body) == page["data"][-1]["id"], path


@pytest.mark.django_db
def test_the_breakdown_times_every_stage(start_fake, reconcile_settings):
    """``python -m bench.breakdown``'s stages, in this process against the test fake: each timed,
    the whole fetch and the diff of an empty database planning every object."""
    account = build(60, SEED)
    start_fake(FakeStripe(account))
    out = breakdown.breakdown()
    stages = [k for k, v in out.items() if isinstance(v, float)]
    assert {
        "fake + loopback (bare http.client)",
        "HTTP (stripe-python requestor)",
        "parsing into records",
        "the whole fetch (threads, every record kept)",
        "loading rows (load_local)",
        "the diff (every record compared)",
    } <= set(stages)
    assert all(out[k] >= 0 for k in stages)
    assert out["pages"] == expected_requests(account)["total"]
    assert out["diff operations"] >= objects(account)["objects"]


def test_the_ab_comparison_alternates_its_sides_and_reports_each_run():
    from bench import ab

    assert ab.order(3) == [("old", "new"), ("new", "old"), ("old", "new")]
    run = {"wall": 2.0, "peak_rss_mib": 100.04, "fetch": 1.5, "requests": 12}
    results = {
        "old": [{"first pull": run, "no-op": {**run, "wall": 1.0}}, {"first pull": {**run, "wall": 4.0}, "no-op": run}],
        "new": [{"first pull": {**run, "wall": 1.5}, "no-op": {**run, "wall": 0.75}}] * 2,
    }
    assert ab.table(results, "abc123", "def456").splitlines()[2:] == [
        "| old (abc123) | first pull | 2.00, 4.00 | 3.00 | 1.50, 1.50 | 100.0, 100.0 | 12, 12 |",
        "| old (abc123) | no-op | 1.00, 2.00 | 1.50 | 1.50, 1.50 | 100.0, 100.0 | 12, 12 |",
        "| new (def456) | first pull | 1.50, 1.50 | 1.50 | 1.50, 1.50 | 100.0, 100.0 | 12, 12 |",
        "| new (def456) | no-op | 0.75, 0.75 | 0.75 | 1.50, 1.50 | 100.0, 100.0 | 12, 12 |",
        "",
        "Median wall time, new / old: first pull 0.500, no-op 0.500.",
    ]


def test_the_ab_comparison_checks_the_old_commit_out_apart_and_removes_it():
    from bench import ab

    with ab.worktree("HEAD") as tree:
        assert (tree / "reconcile" / "runner.py").is_file() and (tree / "bench" / "ours.py").is_file()
    assert not tree.exists()


def test_warming_the_fake_makes_the_filter_of_each_listing_reconcile_walks():
    """Made during a measured run, a filter's members (a scan of every object) held back the first
    answers long enough for the walk to take loopback for a slow link and cut lists."""
    from reconcile.core.registry import RESOURCES as LISTINGS
    from reconcile.testing.api import _filter_key

    fake = FakeStripe(build(50, SEED))
    fakeproc._first_pages(fake)
    made = {(resource, key) for resource, cached in fake._members.items() for key in cached}
    assert made == {(r.name, _filter_key(dict(p))) for r in LISTINGS if r.listed for p in r.filters}
    assert len(made) == 6  # products and prices active and archived, customers, every subscription
    assert list(fake.requests) == []  # not the server's: no request a run's count would see

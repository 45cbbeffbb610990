"""Shared fixtures. Every Stripe answer in these tests comes from the project's fake Stripe (a test
double on loopback) or from recorded cassettes; nothing reaches the network."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reconcile.core.read import NO_METADATA
from reconcile.testing.fakestripe import FakeStripe, serve

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "reconcile" / "testing" / "data" / "demo"
FAKE_KEY = "sk_test_FAKEkey4tests000000000000"
DEMO_PLAN = (  # the demo account's first plan: Heidi's subscription is skipped (she is deleted in Stripe)
    "Plan: 32 to create, 0 to update, 0 item sets to recreate, 0 users to link, 0 users to create, "
    "0 orphaned, 1 skipped."
)


def stripe_fixture(name: str) -> dict:
    """One of Stripe's own example objects (a copy of fixtures3.json's resources)."""
    data = json.loads((Path(__file__).parent / "data" / "fixtures3_subset.json").read_text())
    return json.loads(json.dumps(data["resources"][name]))


@pytest.fixture(autouse=True)
def _shared_metadata_stays_empty():
    """Records without metadata share one empty dict (``read.NO_METADATA``): whatever wrote into it
    would give every such record that metadata."""
    yield
    assert NO_METADATA == {}, f"something wrote into the shared empty metadata: {NO_METADATA!r}"


DEMO_RESOURCES = ("products", "prices", "customers", "subscriptions", "features", "product_features")


def demo_data() -> dict[str, list[dict]]:
    return {r: json.loads((DEMO / f"{r}.json").read_text()) for r in DEMO_RESOURCES}


@pytest.fixture
def reconcile_settings(settings):
    """Fast retries and a fake key; API_BASE is set by the fake_stripe fixture."""
    settings.RECONCILE = {
        "API_KEY": FAKE_KEY,
        "API_BASE": "http://127.0.0.1:9",
        "RETRY_BASE_DELAY": 0.001,
        "RETRY_MAX_DELAY": 0.002,
        "MAX_RETRIES": 3,
        "TIMEOUT": 5.0,
        "RATE_LIMIT": 10_000.0,
        "RATE_LIMIT_TOTAL": 10_000.0,
        # One request at a time, listings in turn: request counts and order stay exact even on a
        # loaded machine (tests/test_walk.py covers concurrent walks); vcrpy is not thread-safe.
        "CONCURRENCY": 1,
    }
    return settings


@pytest.fixture
def start_fake(reconcile_settings):
    """Start a fake Stripe on a free loopback port with the given data and point the app at it."""
    servers = []

    def start(data: dict | None = None, **kwargs) -> FakeStripe:
        fake = data if isinstance(data, FakeStripe) else FakeStripe(data if data is not None else demo_data(), **kwargs)
        server = serve(fake)
        servers.append(server)
        reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_BASE": server.url}
        return fake

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fake_stripe(start_fake) -> FakeStripe:
    return start_fake()


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(name: str, *args: str) -> Run:
    """Call a management command; return its exit code and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        code = exc.returncode
        err.write(f"CommandError: {exc}\n")
    return Run(code, out.getvalue(), err.getvalue())


def _transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    wanted = bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
    return wanted or "live_server" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The tests that fork (tests/test_aside.py) first among the transactional tests, which
    pytest-django runs after the others: a run forks only when it is the process's one thread,
    and the browser tests' live server, a transactional test's, stays for the session."""
    forks = [item for item in items if item.nodeid.startswith("tests/test_aside.py::") and _transactional(item)]
    if forks:
        chosen = set(map(id, forks))
        rest = [item for item in items if id(item) not in chosen]
        at = next((n for n, item in enumerate(rest) if _transactional(item)), len(rest))
        items[:] = rest[:at] + forks + rest[at:]

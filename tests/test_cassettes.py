"""Replay recorded cassettes in record mode `none`: any request not recorded fails the test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reconcile.models import Price, Product, Subscription
from reconcile.testing.cassettes import CASSETTES, SECRET_HEADERS, recorder
from tests.conftest import demo_data, run
from tests.stripe_state import expected_prices, expected_products, stored_prices, stored_products


@pytest.fixture
def replay(reconcile_settings):
    # Nothing listens on port 9: a request missing from the cassette cannot reach anything.
    reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "API_BASE": "http://127.0.0.1:9"}
    return recorder("none")


@pytest.mark.django_db
def test_products_replay_from_a_cassette(replay):
    with replay.use_cassette("update_stripe_products_demo.yaml") as cassette:
        result = run("update_stripe_products")
    assert result.code == 0
    assert cassette.all_played
    data = demo_data()
    assert stored_products() == expected_products(data["products"])
    assert stored_prices() == expected_prices(data["prices"])


@pytest.mark.django_db
def test_pull_stripe_replays_from_a_cassette(replay):
    with replay.use_cassette("pull_stripe_demo.yaml") as cassette:
        result = run("pull_stripe")
    assert result.code == 0, result.err
    assert cassette.all_played
    assert (Product.objects.count(), Price.objects.count(), Subscription.objects.count()) == (4, 8, 8)


@pytest.mark.django_db
def test_an_unrecorded_request_fails(replay):
    with replay.use_cassette("update_stripe_products_demo.yaml"):
        result = run("update_stripe_customers")
    assert result.code == 2
    assert "Could not reach http://127.0.0.1:9 for GET /v1/customers?limit=100" in result.err
    assert "CannotOverwriteExistingCassetteException" in result.err


@pytest.mark.parametrize("path", sorted(CASSETTES.glob("*.yaml")), ids=lambda p: p.name)
def test_committed_cassettes_carry_no_secret_or_machine_details(path: Path):
    text = path.read_text()
    assert not re.search(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+", text)
    assert "Bearer" not in text
    for interaction in yaml.safe_load(text)["interactions"]:
        for headers in (interaction["request"]["headers"], interaction["response"]["headers"]):
            assert not {h.lower() for h in headers} & set(SECRET_HEADERS), path.name


def test_there_are_cassettes_to_replay():
    assert {p.name for p in CASSETTES.glob("*.yaml")} >= {"pull_stripe_demo.yaml", "update_stripe_products_demo.yaml"}

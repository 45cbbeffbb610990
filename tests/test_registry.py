"""The registry is the one mapping between Stripe and the database: walk it and prove, for every
resource and every field, that a value changed in the fake Stripe reaches the model column through
a real run, and that no model column is left out of it."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps

from reconcile.core.registry import FEATURES, ITEMS, REQUIRED, RESOURCES, SUBSCRIPTIONS, Field, Resource
from tests.conftest import run, stripe_fixture

pytestmark = pytest.mark.django_db

WALKED = (*RESOURCES, ITEMS)
MOMENTS = (1767225600, 1767312000)  # 2026-01-01 and -02, UTC
LATER = (1893456000, 1893542400)  # 2030-01-01 and -02: a period's end must not come before its start
TIERS = [{"up_to": 3, "unit_amount": 900, "unit_amount_decimal": "900", "flat_amount": None,
          "flat_amount_decimal": None},
         {"up_to": None, "unit_amount": None, "unit_amount_decimal": "700.5", "flat_amount": 100,
          "flat_amount_decimal": "100"}]
OPTION = {"unit_amount": 1900, "unit_amount_decimal": "1900", "tax_behavior": "exclusive",
          "custom_unit_amount": None, "tiers": []}


def model_of(resource: Resource):
    return apps.get_model("reconcile", resource.model)


def stored(resource: Resource, field: Field, oid: str) -> Any:
    return model_of(resource).objects.values_list(field.column, flat=True).get(pk=oid)


def stored_ids(resource: Resource) -> set[str]:
    return set(model_of(resource).objects.values_list("pk", flat=True))


def test_every_model_column_is_a_registry_field():
    for resource in WALKED:
        model = model_of(resource)
        kept_apart = {resource.pk, "synced_at", resource.parent_column} | {name for name, _ in resource.extras}
        columns = {f.attname for f in model._meta.concrete_fields} - kept_apart
        assert columns == set(resource.columns), resource.model
        assert model._meta.pk.attname == resource.pk


def test_the_fields_labelled_json_are_the_json_columns():
    """``json=True`` on a reader tells the fingerprint which values may be dicts or lists."""
    from django.db.models import JSONField

    for resource in WALKED:
        model = model_of(resource)
        labelled = {f.column for f in resource.fields if f.read.about.get("json")}
        assert labelled == {c for c in resource.columns if type(model._meta.get_field(c)) is JSONField}, resource.model


def candidates(read, current: Any, fake) -> list[tuple[Any, Any]]:
    """(the value to put in Stripe, the value the column should then hold), by the reader's kind."""
    kind, about = read.kind, read.about
    if kind == "text":
        return [(f"Walked {read.key}", f"Walked {read.key}"), ("Walked again", "Walked again")]
    if kind == "flag":
        return [(not current, not current)]
    if kind == "when":
        moments = LATER if read.key == "current_period_end" else MOMENTS
        return [(t, datetime.fromtimestamp(t, tz=timezone.utc)) for t in moments]
    if kind == "nested":  # one value inside an object: recurring.interval, transform_quantity.round, ...
        inner = about["inner"]
        values = sorted(about["allowed"]) if about["allowed"] else [2, 3]
        return [({inner: v}, v) for v in values]
    if kind == "nested_when":
        return [({about["inner"]: t}, datetime.fromtimestamp(t, tz=timezone.utc)) for t in LATER]
    if kind == "decimal":
        return [("0.5", Decimal("0.5")), ("12.125", Decimal("12.125"))]
    if kind == "tiers":
        return [(TIERS, [{**t, "unit_amount_decimal": t["unit_amount_decimal"]} for t in TIERS])]
    if kind == "currency_options":
        return [({"eur": OPTION}, {"eur": OPTION}), ({"gbp": OPTION}, {"gbp": OPTION})]
    if kind == "custom":
        custom = {"minimum": 500, "maximum": 9000, "preset": 1000}
        return [(custom, custom), ({**custom, "preset": 700}, {**custom, "preset": 700})]
    if kind == "ref":
        target = next(r for r in RESOURCES if r.object == about["target"])
        return [(oid, oid) for oid in sorted(stored_ids(target))]
    if kind == "one_of":
        return [(value, value) for value in sorted(about["allowed"])]
    if kind == "metadata":
        return [({"walked": "yes"}, {"walked": "yes"})]
    if kind == "currency":
        return [("eur", "eur"), ("usd", "usd")]
    if kind == "frequency":
        return [
            ({"interval": "year", "interval_count": 1}, "year_1"),
            ({"interval": "week", "interval_count": 2}, "week_2"),
        ]
    if kind in ("amount", "quantity"):
        return [(7, 7), (3, 3)]
    if kind == "deleted":  # deleted in Stripe: gone from its listings, the row stays, marked
        return [(True, True)]
    raise AssertionError(f"no sample values for readers of kind {kind!r}: add them here")


def stripe_object(fake, resource: Resource) -> tuple[dict, dict | None]:
    """A stored object of ``resource`` in the fake (an item: with its subscription)."""
    if resource is ITEMS:
        ids = stored_ids(ITEMS)
        for sub in fake.all("subscriptions"):
            for item in sub["items"]["data"]:
                if item["id"] in ids:
                    return item, sub
    ids = stored_ids(resource)
    return next(obj for obj in fake.all(resource.name) if obj["id"] in ids), None


NESTED = {"recurring", "transform_quantity", "cancellation_details", "pause_collection"}


def change(fake, resource: Resource, obj: dict, parent: dict | None, key: str, value: Any) -> None:
    if key in NESTED:  # a value inside an object: the object's other values stay (a new one gets defaults)
        base = obj.get(key) or {"transform_quantity": {"divide_by": 10, "round": "up"},
                                "pause_collection": {"behavior": "void", "resumes_at": None}}.get(key, {})
        value = {**base, **value}
    if resource is ITEMS:
        data = [{**i, key: value} if i["id"] == obj["id"] else i for i in parent["items"]["data"]]
        fake.update(SUBSCRIPTIONS.name, parent["id"], items={**parent["items"], "data": data})
    else:
        fake.update(resource.name, obj["id"], **{key: value})


@pytest.mark.parametrize(
    ("resource", "field"),
    [(r, f) for r in WALKED for f in r.fields],
    ids=[f"{r.model}.{f.name}" for r in WALKED for f in r.fields],
)
def test_a_value_changed_in_stripe_reaches_its_column(start_fake, reconcile_settings, resource, field):
    if resource is FEATURES:  # Entitlements features are read when the setting asks for them
        reconcile_settings.RECONCILE = {**reconcile_settings.RECONCILE, "FEATURES_SOURCE": "both"}
    fake = start_fake()
    assert run("pull_stripe").code == 0
    obj, parent = stripe_object(fake, resource)
    before = stored(resource, field, obj["id"])
    value, expected = next((v, e) for v, e in candidates(field.read, before, fake) if e != before)
    change(fake, resource, obj, parent, field.read.key, value)
    result = run("pull_stripe")
    assert result.code == 0, result.err
    assert stored(resource, field, obj["id"]) == expected
    assert run("pull_stripe", "--check").code == 0  # and a second run plans nothing


# Stripe moved these to subscription items in API version 2025-03-31; older versions still send them.
LEGACY = {("subscription", "current_period_start"), ("subscription", "current_period_end")}
# Stripe sends these only when a request expands them, so its example object leaves them out.
INCLUDABLE = {("price", "tiers"), ("price", "currency_options")}


def test_every_field_reads_a_key_of_stripes_own_example_object():
    for resource in WALKED:
        example = stripe_fixture(resource.object)
        # "deleted" is only on deleted objects' stubs, never on Stripe's example objects
        missing = [f.read.key for f in resource.fields if f.read.key not in example and f.read.kind != "deleted"]
        assert [k for k in missing if (resource.object, k) not in LEGACY | INCLUDABLE] == [], resource.object


@pytest.mark.parametrize("resource", [*RESOURCES, ITEMS], ids=lambda r: r.name)
def test_a_record_is_made_as_its_dataclass_would_make_it(resource):
    """Records have an ``__init__`` of their own (``_slot_init``, faster): the same arguments,
    defaults and fresh default dicts and lists as the frozen dataclass's, and still frozen."""
    import dataclasses

    rec = resource.record
    fields = dataclasses.fields(rec)
    twin = dataclasses.make_dataclass(
        "Twin", [(f.name, Any, f) for f in fields], frozen=True, slots=True, kw_only=True
    )  # the dataclass's own __init__, for comparison
    required = {f.name: f"{f.name} value" for f in fields if f.default is f.default_factory is dataclasses.MISSING}
    assert set(required) == {"id", *(f.name for f in resource.fields if f.default is REQUIRED)}
    least, twin_least = rec(**required), twin(**required)
    assert dataclasses.astuple(least) == dataclasses.astuple(twin_least)
    given = {f.name: (f.name, "given") for f in fields}
    assert dataclasses.astuple(rec(**given)) == tuple((f.name, "given") for f in fields)
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:  # a fresh one per record, not one shared
            assert getattr(least, f.name) is not getattr(rec(**required), f.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        least.id = "changed"
    with pytest.raises(TypeError):
        rec(**required, unknown=1)
    if len(required) > 1:
        with pytest.raises(TypeError):
            rec(id="x")
    assert least == rec(**required)  # equal records compare equal, field by field


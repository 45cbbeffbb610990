"""The registry: one declaration per Stripe resource, from which everything else is derived.

Each ``Resource`` says where Stripe lists it, which model stores it (and its primary key), the
fields compared and written (with the model column where it has another name), how each field is
read from Stripe's JSON, the report's heading, and its child collections. The record types, the
column lists of load and apply, the report's headings and model order and the plan file's
decoding all come from here.

Adding a Stripe field: add it to the model (and a migration), then one ``Field`` line below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass
from operator import attrgetter
from typing import Any

from . import billing, read
from .read import Reader

REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """A record field: compared by the diff, written to ``column`` (default: the same name)."""

    name: str
    read: Reader
    column: str = ""
    default: Any = REQUIRED  # a record's default, so code that builds records may leave the field out

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)


@dataclass(frozen=True)
class Related:
    """A model written in a resource's stage that is not a Stripe listing of its own."""

    model: str
    heading: str


@dataclass(frozen=True)
class Resource:
    name: str  # the snapshot's attribute and the list endpoint /v1/<name>
    model: str  # the Django model (and the report's model label)
    fields: tuple[Field, ...]
    object: str = ""  # Stripe's "object" value (default: the name's singular)
    heading: str = ""  # the report's heading of this model's operations (default: the name)
    pk: str = "id"  # the model's primary key column, holding the Stripe id
    filters: tuple[Mapping[str, str], ...] = ({},)  # one listing per filter set
    command: str = ""  # the resource group that lists it (prices come with "products")
    windowed: bool = False  # --limit / --starting_after apply
    # Record attributes beyond the fields: (name, default). Kept by hand-written code:
    # a product's features, a customer's linked user, a subscription's items.
    extras: tuple[tuple[str, Any], ...] = ()
    compared_extras: tuple[str, ...] = ()  # extras that Stripe's side gives too, compared like fields
    before: tuple[Related, ...] = ()  # written (and reported) ahead of this model in its stage
    children: tuple[Resource, ...] = ()  # collections written after this model's rows
    parent_column: str = ""  # a child collection: the column naming its parent
    check: Reader | None = None  # refuses an object before its fields are read
    label: tuple[str, ...] = ()  # fields that name an object in the report, the first one set
    expand: tuple[str, ...] = ()  # fields a list must expand (``expand[]=data.tiers``): Stripe omits them otherwise
    listed: bool = True  # False: not a /v1/<name> listing of its own (Entitlements features: their own module)
    # False: new rows are inserted with ON CONFLICT DO NOTHING and no lost-write read (rows that any
    # run may create and that no webhook writes: features); updates are guarded as for the others.
    guarded: bool = True
    record: type = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)  # the fields, in the record's order
    columns: tuple[str, ...] = field(init=False, repr=False, compare=False)  # their model columns, in that order
    # read(obj): the id and every field of one Stripe object, by name; parse(obj): its record (extras
    # keep their defaults). Both raise BadObject when the object is not what Stripe documents.
    read: Callable[[Any], dict[str, Any]] = field(init=False, repr=False, compare=False)
    parse: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    # key_of(obj): (id, *fields) of one Stripe object, checked as ``parse`` checks it: its record's
    # key without the compared extras, made without the record (``fingerprint.object_fingerprint``)
    key_of: Callable[[Any], tuple] = field(init=False, repr=False, compare=False)
    _get: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    _key: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    _makers: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "object", self.object or self.name.removesuffix("s"))
        object.__setattr__(self, "heading", self.heading or self.name.capitalize())
        object.__setattr__(self, "names", tuple(f.name for f in self.fields))
        object.__setattr__(self, "columns", tuple(f.column for f in self.fields))
        object.__setattr__(self, "_get", attrgetter(*self.names))
        object.__setattr__(self, "_key", attrgetter("id", *self.names, *self.compared_extras))
        specs: list[tuple] = [("id", str)]
        for f in self.fields:
            if f.default is REQUIRED:
                specs.append((f.name, Any))
            elif isinstance(f.default, dict | list):  # a fresh empty dict or list per record
                specs.append((f.name, Any, field(default_factory=type(f.default))))
            else:
                specs.append((f.name, Any, field(default=f.default)))
        specs += [(name, Any, field(default=default)) for name, default in self.extras]
        if not self.parent_column:  # a child's time is its parent's
            # When a fetch read the object (its page's request): the lost-write guard's side of a
            # record, never compared, encoded or shown. Kept on the record rather than in a table of
            # its own beside the records' dicts (7 MiB at N=100,000); see ``snapshot.Stamps``.
            specs.append(("fetched_at", Any, field(default=None, compare=False, repr=False)))
        rec = make_dataclass(_record_name(self.model), specs, frozen=True, slots=True, kw_only=True)
        rec.__module__ = "reconcile.core.snapshot"
        rec.__init__ = _slot_init(rec)
        object.__setattr__(self, "record", rec)
        self._compile()

    @property
    def group(self) -> str:
        return self.command or self.name

    def column_values(self, record: Any) -> dict[str, Any]:
        """A record's compared fields as model column values."""
        return dict(zip(self.columns, self.values(record), strict=True))

    def values(self, record: Any) -> tuple:
        """A record's compared fields' values, in the order of ``columns``."""
        values = self._get(record)
        return values if len(self.fields) > 1 else (values,)

    def same(self, stored: Any, record: Any) -> bool:
        """Whether ``stored`` holds every compared value of ``record`` (its fields and compared
        extras: a product's features, a subscription's items): one tuple comparison in C, the
        common case of a re-pull, before any field-by-field work."""
        return self._key(stored) == self._key(record)

    def maker(self, *extra: str) -> Callable[..., Any]:
        """A function making a record from a row ``(id, *fields, *extra, ...)`` (what load reads),
        each value passed by its field name; the record's other extras may follow the row, by
        position. Compiled once per ``extra``: a load makes hundreds of thousands of records."""
        make = self._makers.get(extra)
        if make is None:
            names = ("id", *self.names, *extra)
            rest = [(name, default) for name, default in self.extras if name not in extra]
            env = {"Rec": self.record, **{f"default_{i}": default for i, (_, default) in enumerate(rest)}}
            params = "".join(f", {name}=default_{i}" for i, (name, _) in enumerate(rest))
            args = ", ".join([f"{name}=row[{i}]" for i, name in enumerate(names)] + [f"{n}={n}" for n, _ in rest])
            exec(f"def make(row{params}):\n    return Rec({args})\n", env)  # noqa: S102
            make = self._makers[extra] = env["make"]
        return make

    def _compile(self) -> None:
        """``read`` and ``parse`` as straight-line functions of this resource's readers (as dataclasses
        compile ``__init__``): a run parses hundreds of thousands of objects, and a loop over the
        fields, a dict per object and a ``**`` call cost a fifth more than these."""
        env = {"object_id": read.object_id, "kind": self.object, "check": self.check, "Rec": self.record}
        env.update({f"read_{i}": f.read for i, f in enumerate(self.fields)})
        fields = [(f.name, f"read_{i}(obj)") for i, f in enumerate(self.fields)]
        head = "    oid = object_id(obj, kind)\n" + ("    check(obj)\n" if self.check else "")
        as_dict = ", ".join(f"{name!r}: {call}" for name, call in fields)
        as_kwargs = ", ".join(f"{name}={call}" for name, call in fields)
        exec(f"def read(obj):\n{head}    return {{'id': oid, {as_dict}}}\n", env)  # noqa: S102
        exec(f"def parse(obj):\n{head}    return Rec(id=oid, {as_kwargs})\n", env)  # noqa: S102
        exec(f"def key_of(obj):\n{head}    return (oid, {''.join(call + ', ' for _, call in fields)})\n", env)  # noqa: S102
        object.__setattr__(self, "read", env["read"])
        object.__setattr__(self, "parse", env["parse"])
        object.__setattr__(self, "key_of", env["key_of"])


_FACTORY = object()  # an argument left out whose default is made fresh per record


def _slot_init(rec: type) -> Callable[..., None]:
    """A record type's ``__init__``: each value set through its slot's descriptor. A frozen
    dataclass's own goes through ``object.__setattr__`` with the field's name, a look-up per value;
    a first pull makes about 470,000 records at N=100,000 (4.3 against 2.8 us for a record of 19
    fields). Arguments, defaults and fresh default dicts and lists are the dataclass's; the class
    stays frozen (its ``__setattr__`` refuses)."""
    env: dict[str, Any] = {"FACTORY": _FACTORY}
    params, body = [], []
    for i, f in enumerate(dataclasses.fields(rec)):
        env[f"set_{i}"] = rec.__dict__[f.name].__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            env[f"default_{i}"] = f.default
            params.append(f"{f.name}=default_{i}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"new_{i}"] = f.default_factory
            params.append(f"{f.name}=FACTORY")
            value = f"new_{i}() if {f.name} is FACTORY else {f.name}"
        else:
            params.append(f.name)
        body.append(f"    set_{i}(self, {value})\n")
    exec(f"def __init__(self, *, {', '.join(params)}):\n{''.join(body)}", env)  # noqa: S102
    init = env["__init__"]
    init.__qualname__ = f"{rec.__qualname__}.__init__"
    return init


def _record_name(model: str) -> str:
    return {"StripeUser": "CustomerRec", "SubscriptionItem": "ItemRec"}.get(model, model + "Rec")


# Soft deletion: Stripe lists no deleted object; a whole pull marks rows absent from its listing
# deleted, and an event's deleted object is marked by its type (``*.deleted``).
_deleted = read.reads("deleted", "deleted")(lambda obj: obj.get("deleted") is True)


def _not_deleted(obj: dict) -> None:
    if obj.get("deleted") is True:
        raise read.BadObject("the customer is deleted in Stripe")


FEATURES = Resource(
    name="features",
    model="Feature",
    object="entitlements.feature",
    heading="Features",
    command="products",
    listed=False,  # /v1/entitlements/features, listed by stripe/entitlements.py when the setting asks
    guarded=False,
    fields=(
        Field("lookup_key", read.text("lookup_key", max_length=200), default=None),
        Field("name", read.text("name"), default=None),
    ),
    label=("name", "lookup_key"),
    extras=(("description", None),),  # a column of drf-stripe-subscription's model, never from Stripe
)

PRODUCTS = Resource(
    name="products",
    model="Product",
    filters=({"active": "true"}, {"active": "false"}),
    fields=(
        Field("name", read.text("name", nullable=False)),
        Field("description", read.text("description", max_length=0)),
        Field("active", read.flag("active")),
        Field("metadata", read.metadata),
        Field("deleted", _deleted, default=False),  # soft deletion: the row and its links stay
    ),
    label=("name",),
    extras=(("features", ()),),  # feature ids, sorted: the metadata key's and/or Entitlements' (FEATURES_SOURCE)
    compared_extras=("features",),
)

TAX_BEHAVIORS = billing.TAX_BEHAVIORS
PRICES = Resource(
    name="prices",
    model="Price",
    filters=({"active": "true"}, {"active": "false"}),
    command="products",
    expand=("data.tiers", "data.currency_options"),
    fields=(
        Field("product_id", read.ref("product", shared=True)),
        Field("amount", read.unit_amount),
        Field("currency", read.currency),
        Field("frequency", read.frequency),
        Field("active", read.flag("active")),
        Field("nickname", read.text("nickname")),
        Field("lookup_key", read.text("lookup_key", max_length=200), default=None),
        Field("tax_behavior", read.one_of("tax_behavior", TAX_BEHAVIORS, optional=True), default=None),
        Field("type", billing.optional_one_of("type", billing.PRICE_TYPES), default=None),
        Field("billing_scheme", billing.optional_one_of("billing_scheme", billing.BILLING_SCHEMES), default=None),
        Field("interval", billing.interval, default=None),
        Field("interval_count", billing.interval_count, default=None),
        Field("usage_type", billing.usage_type, default=None),
        Field("unit_amount_decimal", billing.unit_amount_decimal, default=None),
        Field("transform_divide_by", billing.transform_divide_by, default=None),
        Field("transform_round", billing.transform_round, default=None),
        Field("tiers_mode", billing.optional_one_of("tiers_mode", billing.TIERS_MODES), default=None),
        Field("tiers", billing.tiers, default=[]),
        Field("currency_options", billing.currency_options, default={}),
        Field("custom_unit_amount", billing.custom_unit_amount, default=None),
        Field("deleted", _deleted, default=False),
    ),
)

CUSTOMERS = Resource(
    name="customers",
    model="StripeUser",
    pk="customer_id",
    windowed=True,
    check=_not_deleted,
    label=("name", "email"),
    fields=(
        Field("email", read.text("email")),
        Field("name", read.text("name")),
        Field("metadata", read.metadata, default={}),
        Field("deleted", _deleted, default=False),
    ),
    extras=(("user_id", None),),  # local side only: the linked Django user's primary key
    before=(Related("User", "Users"),),
)

ITEMS = Resource(
    name="items",
    model="SubscriptionItem",
    object="subscription_item",
    heading="Subscription items",
    parent_column="subscription_id",
    fields=(
        Field("price_id", read.ref("price", shared=True)),  # a few prices, many items
        Field("quantity", read.quantity),
        Field("current_period_start", read.when("current_period_start")),
        Field("current_period_end", read.when("current_period_end")),
    ),
)

SUBSCRIPTIONS = Resource(
    name="subscriptions",
    model="Subscription",
    filters=({"status": "all"},),
    windowed=True,
    fields=(
        Field("customer_id", read.ref("customer"), column="stripe_user_id"),
        Field("status", read.one_of("status", read.STATUSES)),
        Field("current_period_start", read.when("current_period_start")),
        Field("current_period_end", read.when("current_period_end")),
        Field("cancel_at", read.when("cancel_at")),
        Field("cancel_at_period_end", read.flag("cancel_at_period_end", optional=True)),
        Field("canceled_at", read.when("canceled_at")),
        Field("ended_at", read.when("ended_at")),
        Field("trial_start", read.when("trial_start")),
        Field("trial_end", read.when("trial_end")),
        Field("created", read.when("created")),
        Field("metadata", read.metadata),
        Field("currency", billing.optional_currency, default=None),
        Field("collection_method", billing.optional_one_of("collection_method", billing.COLLECTIONS), default=None),
        Field("cancellation_reason", billing.cancellation_reason, default=None),
        Field("pause_collection_behavior", billing.pause_behavior, default=None),
        Field("pause_collection_resumes_at", billing.pause_resumes_at, default=None),
    ),
    extras=(("items", ()),),  # sorted by id
    compared_extras=("items",),
    children=(ITEMS,),
)

# The pipeline's order: a resource refers only to resources before it.
RESOURCES: tuple[Resource, ...] = (FEATURES, PRODUCTS, PRICES, CUSTOMERS, SUBSCRIPTIONS)

# Models whose rows Stripe can delete: a row absent from a whole listing is marked deleted.
# Subscriptions are never deleted (canceled ones stay listed with status=all): they stay orphans.
SOFT_DELETED: frozenset[str] = frozenset({"Product", "Price", "StripeUser"})

# -- derived tables ------------------------------------------------------------------------------
BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}
BY_MODEL: dict[str, Resource] = {r.model: r for r in (*RESOURCES, ITEMS)}
BY_RECORD: dict[type, Resource] = {r.record: r for r in (*RESOURCES, ITEMS)}
# The models in the order the plan lists and apply writes them.
MODEL_ORDER: tuple[str, ...] = tuple(
    m for r in RESOURCES for m in (*(b.model for b in r.before), r.model, *(c.model for c in r.children))
)
HEADINGS: dict[str, str] = {m.model: m.heading for r in RESOURCES for m in (*r.before, r, *r.children)}
FIELDS: dict[type, tuple[str, ...]] = {r.record: r.names for r in RESOURCES}
MODEL_OF: dict[type, str] = {r.record: r.model for r in RESOURCES}
RESOURCE_MODEL: dict[str, str] = {r.name: r.model for r in RESOURCES}
RECORDS: dict[str, type] = {r.model: r.record for r in RESOURCES}
ITEM_COLUMNS: tuple[str, ...] = ("id", ITEMS.parent_column, *ITEMS.columns, "synced_at")

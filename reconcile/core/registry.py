"""The registry: one declaration per Stripe resource, from which everything else is derived.

Each ``Resource`` says where Stripe lists it, which model stores it (and its primary key), the
fields compared and written (with the model column where it has another name), how each field is
read from Stripe's JSON, the report's heading, and its child collections. The record types, the
column lists of load and apply, the report's headings and model order and the plan file's
decoding all come from here.

Adding a Stripe field: add it to the model (and a migration), then one ``Field`` line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from . import read
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
    before: tuple[Related, ...] = ()  # written (and reported) ahead of this model in its stage
    children: tuple[Resource, ...] = ()  # collections written after this model's rows
    parent_column: str = ""  # a child collection: the column naming its parent
    check: Reader | None = None  # refuses an object before its fields are read
    label: tuple[str, ...] = ()  # fields that name an object in the report, the first one set
    record: type = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "object", self.object or self.name.removesuffix("s"))
        object.__setattr__(self, "heading", self.heading or self.name.capitalize())
        specs: list[tuple] = [("id", str)]
        for f in self.fields:
            specs.append((f.name, Any) if f.default is REQUIRED else (f.name, Any, field(default=f.default)))
        specs += [(name, Any, field(default=default)) for name, default in self.extras]
        rec = make_dataclass(_record_name(self.model), specs, frozen=True, slots=True, kw_only=True)
        rec.__module__ = "reconcile.core.snapshot"
        object.__setattr__(self, "record", rec)

    @property
    def group(self) -> str:
        return self.command or self.name

    @property
    def names(self) -> tuple[str, ...]:
        """The compared fields, in the record's order."""
        return tuple(f.name for f in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        """The model columns holding ``names``, in the same order."""
        return tuple(f.column for f in self.fields)

    def column_values(self, record: Any) -> dict[str, Any]:
        """A record's compared fields as model column values."""
        return {f.column: getattr(record, f.name) for f in self.fields}

    def read(self, obj: Any) -> dict[str, Any]:
        """The id and every field of one Stripe object, by name (``BadObject`` if it is not what
        Stripe documents)."""
        values = {"id": read.object_id(obj, self.object)}
        if self.check is not None:
            self.check(obj)
        for f in self.fields:
            values[f.name] = f.read(obj)
        return values

    def parse(self, obj: Any) -> Any:
        """A record from one Stripe object; extras keep their defaults."""
        return self.record(**self.read(obj))


def _record_name(model: str) -> str:
    return {"StripeUser": "CustomerRec", "SubscriptionItem": "ItemRec"}.get(model, model + "Rec")


# Soft deletion: Stripe lists no deleted object; a whole pull marks rows absent from its listing
# deleted, and an event's deleted object is marked by its type (``*.deleted``).
_deleted = read.reads("deleted", "deleted")(lambda obj: obj.get("deleted") is True)


def _not_deleted(obj: dict) -> None:
    if obj.get("deleted") is True:
        raise read.BadObject("the customer is deleted in Stripe")


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
    extras=(("features", ()),),  # feature ids, sorted, from the features metadata key
    before=(Related("Feature", "Features"),),
)

TAX_BEHAVIORS = frozenset({"inclusive", "exclusive", "unspecified"})
PRICES = Resource(
    name="prices",
    model="Price",
    filters=({"active": "true"}, {"active": "false"}),
    command="products",
    fields=(
        Field("product_id", read.ref("product")),
        Field("amount", read.unit_amount),
        Field("currency", read.currency),
        Field("frequency", read.frequency),
        Field("active", read.flag("active")),
        Field("nickname", read.text("nickname")),
        Field("lookup_key", read.text("lookup_key", max_length=200), default=None),
        Field("tax_behavior", read.one_of("tax_behavior", TAX_BEHAVIORS, optional=True), default=None),
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
        Field("price_id", read.ref("price")),
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
    ),
    extras=(("items", ()),),  # sorted by id
    children=(ITEMS,),
)

# The pipeline's order: a resource refers only to resources before it.
RESOURCES: tuple[Resource, ...] = (PRODUCTS, PRICES, CUSTOMERS, SUBSCRIPTIONS)

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

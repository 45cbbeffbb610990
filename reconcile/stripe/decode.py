"""Response bodies into Python: a list page of a resource keeps only the keys that are read.

A page of 100 subscriptions is about 290 KB of JSON, and an object carries some 50 keys of which
the registry reads 20; decoded whole, the page is about 1 MiB of dicts that are built, read once
and freed. Decoded with msgspec against a schema made from the registry (a ``TypedDict`` per
resource: its readers' keys, and the id, ``object``, ``deleted`` and ``created`` that the fetch
reads), every other key is skipped by the decoder itself: the page is about half the objects,
decoded in well under the time (figures in docs/benchmarks.md), and the dicts are the same the
readers read, so nothing else changes.

Every value under a kept key is decoded whole (typed ``Any``): the readers check its type and
say what is wrong with one object. The one exception is another resource's object embedded in
the page (an item's price): only its id and references are kept (``reference``). A page that
does not fit the schema (an element that is not an object, an ``items`` that is not a list
object, a reference that is neither an id nor an object) is decoded whole instead, so that such a
page is read exactly as before: one odd object stays that object's problem.

The schema is the registry's: a reader that reads a key must say so (``read.reads``), and
``tests/test_decode.py`` runs every resource's parsing over objects that record each key read, and
checks the keys the fetch itself reads (the walk cuts lists by ``created``).
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec

from ..core.registry import ITEMS, RESOURCES, Resource

# Keys read of every listed object besides its fields: the id, the kind (``object_id``), soft
# deletion, and ``created``, by which the walk cuts a list into parts (``walk._created``).
_ALWAYS = ("id", "object", "deleted", "created")
# A list object's keys that the fetch reads (``Fetcher.page``, a subscription's ``items``).
_LIST = ("object", "data", "has_more", "url")

_BY_OBJECT: dict[str, Resource] = {r.object: r for r in (*RESOURCES, ITEMS) if r.listed}
_schemas: dict[str, type] = {}


def schema(resource: Resource) -> type:
    """The ``TypedDict`` of one of ``resource``'s objects: the keys its readers read (their own and
    those they say they read ``also``). A reference to another resource is its id or that
    resource's object, of which only the id and its own references are kept (``reference``); a
    child collection is a list object of the child's schema."""
    found = _schemas.get(resource.name)
    if found is not None:
        return found
    keys: dict[str, Any] = dict.fromkeys(_ALWAYS, Any)
    for f in resource.fields:
        key = getattr(f.read, "key", None)
        if key is None:
            raise TypeError(f"{resource.name}.{f.name}: its reader does not say which key it reads (read.reads)")
        target = _target(f.read)
        keys[key] = Any if target is None or target is resource else str | reference(target) | None
        keys.update((also, Any) for also in f.read.about.get("also", ()) if also not in keys)
    for child in resource.children:
        keys[child.name] = _list_of(schema(child), f"{resource.object}_{child.name}")
    found = _schemas[resource.name] = TypedDict(f"{resource.object}_keys", keys, total=False)  # type: ignore[operator]
    return found


def reference(resource: Resource) -> type:
    """What a page keeps of ``resource``'s object where another object embeds it (each subscription
    item embeds its price, 18 keys of it): the keys every object keeps and the ids it refers to (a
    price's product). A record is made of the id alone: a price neither listed nor stored is
    retrieved whole, with the expansions an item's copy lacks (``remote._resolve_references``).
    Decoding the embedded prices whole was about a third of decoding a page of subscriptions."""
    name = f"{resource.name} reference"
    found = _schemas.get(name)
    if found is None:
        keys = dict.fromkeys(_ALWAYS, Any)
        keys.update((f.read.key, Any) for f in resource.fields if _target(f.read) is not None)
        found = _schemas[name] = TypedDict(f"{resource.object}_reference", keys, total=False)  # type: ignore[operator]
    return found


def _target(reader) -> Resource | None:
    """The listed resource a reference reader refers to, or None."""
    return _BY_OBJECT.get(reader.about.get("target", "")) if reader.kind == "ref" else None


def _list_of(item: type, name: str) -> type:
    return TypedDict(name, {**dict.fromkeys(_LIST, Any), "data": list[item]}, total=False)  # type: ignore[operator]


# One decoder per list path, made at import: ``/v1/<plural of Stripe's object name>``.
_PAGES: dict[str, msgspec.json.Decoder] = {
    f"/v1/{r.object}s": msgspec.json.Decoder(_list_of(schema(r), f"{r.object}_page")) for r in _BY_OBJECT.values()
}
_WHOLE = msgspec.json.Decoder()


def page_decoder(path: str) -> msgspec.json.Decoder | None:
    """The decoder of a list page at ``path``, or None where bodies are decoded whole (events,
    features, one object)."""
    return _PAGES.get(path)


def decode(body: bytes | str, decoder: msgspec.json.Decoder | None = None) -> object:
    """A body's JSON, with ``decoder``'s schema when it fits, else whole. Raises ``ValueError`` for
    a body that is not JSON. What msgspec refuses and json reads (NaN, Infinity) goes to json."""
    if decoder is not None:
        try:
            return decoder.decode(body)
        except msgspec.DecodeError:  # not the schema's shape (or not JSON): decoded whole below
            pass
    try:
        return _WHOLE.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)

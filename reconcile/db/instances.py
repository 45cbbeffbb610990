"""New model instances inserted as ``bulk_create`` inserts them, with cheaper values: the users a
pull creates.

``bulk_create`` prepares every value through the field's ``get_db_prep_save`` and the compiler's
placeholders: for the 10,000 users of the side by side's first pull (ten fields each), 0.31 s of
its 1.2 s, against 0.14 s here (same instances, same rows; best of three, one process). Here a
value goes as it is where Django's preparation is known to give it back unchanged: a ``str`` into
Django's own ``CharField``, ``EmailField``, ``SlugField`` or ``TextField``, a ``bool`` into its
``BooleanField``, None into any of them; an aware datetime into its ``DateTimeField`` goes
through the connection's adapter alone (under ``USE_TZ``, as in ``bulk.py``). Every other
value, and every field of another class (a custom user model's), goes through the field's own
``get_db_prep_save``, as in ``bulk_create``. Each value is the field's ``pre_save``
(``auto_now_add`` and its kind), the statement is ``bulk_create``'s multi-row INSERT with its
RETURNING of the primary key, and each instance gets its key and is marked saved in this database.

What this does not cover goes to ``bulk_create`` itself: a database that cannot return the rows
of a multi-row insert, a model with parents or a proxy, a primary key that is not automatic or
already set, fields with a database default, generated fields, fields returned by the insert
besides the key, generic relations, fields with placeholders of their own, and a value that is an
expression (from its batch on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.db.models.base import ModelState
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from .bulk import adapter

# Django's own field classes whose preparation gives a value of this type back as it is
_AS_IS: dict[type, type] = {
    models.CharField: str,
    models.EmailField: str,
    models.SlugField: str,
    models.TextField: str,
    models.BooleanField: bool,
}


def new(model: type[models.Model], values: Sequence[dict[str, Any]]) -> list[models.Model]:
    """``[model(**v) for v in values]``, each instance made without ``Model.__init__`` where that
    gives the same instance: 7 us a user of its 9 went into ``__init__`` looking up each of the
    user model's fields and its default (10,000 users: 0.07 s of the side by side's 1.35 s).

    The same instance: the defaults that are not callable are taken once (the same objects
    ``__init__`` sets: it gets them from the field each time), a callable default is called per
    instance, and the values given are set over them. Only for a model whose ``__init__`` is
    Django's own, with no ``pre_init`` or ``post_init`` receiver, whose every field is a plain
    column (no descriptor of its own: a file, a relation), no database default, and for values
    named by those columns; anything else is ``model(**v)``."""
    make = _maker(model, {name for row in values for name in row})
    return [make(row) for row in values]


def _maker(model: type[models.Model], names: set[str]) -> Callable[[dict[str, Any]], models.Model]:
    meta = model._meta
    columns = [f for f in meta.concrete_fields if f.column is not None and not getattr(f, "generated", False)]
    plain = (
        model.__init__ is models.Model.__init__
        and not meta.abstract
        and not pre_init.has_listeners(model)
        and not post_init.has_listeners(model)
        and len(columns) == len(meta.fields)
        and all(
            type(getattr(model, f.attname, None)) is DeferredAttribute
            and getattr(f, "db_default", NOT_PROVIDED) is NOT_PROVIDED
            for f in columns
        )
        and names <= {f.attname for f in columns}
    )
    if not plain:
        return lambda row: model(**row)
    once = {f.attname: f.get_default() for f in columns if f.attname not in names and not _called(f)}
    each = [(f.attname, f.get_default) for f in columns if f.attname not in names and _called(f)]
    make = object.__new__

    def instance(row: dict[str, Any]) -> models.Model:
        obj = make(model)
        state = obj.__dict__
        state["_state"] = ModelState()
        state.update(once)
        for attname, default in each:
            state[attname] = default()
        state.update(row)
        return obj

    return instance


def _called(field: models.Field) -> bool:
    """Whether ``__init__`` gets a new default for each instance (a callable's result)."""
    return field.has_default() and callable(field.default)


def create(objs: Sequence[models.Model], batch_size: int) -> None:
    """Insert ``objs`` (new instances of one model) and set their primary keys, as
    ``bulk_create(objs, batch_size)``."""
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    if not _covered(model, objs, fields, connection):
        model._default_manager.bulk_create(objs, batch_size=batch_size)
        return
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    returning, returning_params = connection.ops.return_insert_columns([meta.pk])
    limit = connection.features.max_query_params or 65_535
    per_statement = max(1, min(batch_size, limit // len(fields)))
    plan = [(field, _AS_IS.get(type(field)), _aware(field, connection)) for field in fields]
    related = any(field.is_relation for field in fields)
    converters = _converters(meta.pk, connection)
    alias = connection.alias
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_statement):
            batch = objs[start : start + per_statement]
            params: list = []
            append = params.append
            for obj in batch:
                if related:  # bulk_create's check of unsaved related objects, and their ids taken
                    obj._prepare_related_fields_for_save(operation_name="bulk_create")
                for field, kind, aware in plan:
                    value = field.pre_save(obj, True)
                    if kind is not None and (value is None or type(value) is kind):
                        append(value)
                    elif aware is not None and (value is None or (type(value) is datetime and value.tzinfo)):
                        append(None if value is None else aware(value))
                    elif hasattr(value, "resolve_expression"):  # SQL of its own (Now(), F()...): Django's
                        model._default_manager.bulk_create(objs[start:], batch_size=batch_size)
                        return
                    else:
                        append(field.get_db_prep_save(value, connection))
            cursor.execute(f"{head}{', '.join([one] * len(batch))} {returning}", (*params, *returning_params))
            keys = connection.ops.fetch_returned_insert_rows(cursor)
            if len(keys) != len(batch):
                raise RuntimeError(f"{meta.label}: {len(batch)} rows inserted, {len(keys)} keys returned")
            for obj, (key,) in zip(batch, keys, strict=True):
                for convert in converters:
                    key = convert(key, meta.pk, connection)
                setattr(obj, meta.pk.attname, key)
                obj._state.adding = False
                obj._state.db = alias


def _covered(model: type[models.Model], objs: Sequence[models.Model], fields: list, connection) -> bool:
    meta = model._meta
    return (
        connection.features.can_return_rows_from_bulk_insert
        and not meta.parents
        and not meta.proxy
        and isinstance(meta.pk, AutoFieldMixin)
        and list(getattr(meta, "db_returning_fields", [meta.pk])) == [meta.pk]  # only the key comes back
        and not meta.private_fields  # a generic relation's unsaved object is bulk_create's to refuse
        and all(type(obj) is model and obj.pk is None for obj in objs)
        and bool(fields)
        and not any(
            getattr(f, "generated", False) or getattr(f, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
            for f in meta.concrete_fields
        )
        and not any(hasattr(f, "get_placeholder") for f in fields)
    )


def _aware(field: models.Field, connection) -> Callable[[datetime], Any] | None:
    """For Django's own ``DateTimeField`` under ``USE_TZ``: what its preparation makes of an aware
    datetime (the connection's adapter, as ``bulk.py`` runs it: in UTC, without a settings lookup
    per value); a naive one still goes through the field (it warns and makes it aware)."""
    if type(field) is not models.DateTimeField or not settings.USE_TZ:
        return None
    return adapter(field, connection)


def _converters(field: models.Field, connection) -> list:
    """What Django runs on a returned key before setting it (the backend's, then the field's)."""
    expression = field.get_col(field.model._meta.db_table)
    return [*connection.ops.get_db_converters(expression), *field.get_db_converters(connection)]

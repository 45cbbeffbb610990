"""New users inserted as bulk_create inserts them (reconcile/db/instances.py), for less."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.db.models.functions import Now
from django.db.models.signals import pre_init
from django.test.utils import CaptureQueriesContext

from reconcile.db import instances

WHEN = datetime(2026, 11, 30, 12, 0, 1, 250_000, tzinfo=timezone.utc)
ELSEWHERE = WHEN.astimezone(timezone(timedelta(hours=-5)))  # the same instant, another zone


def users(prefix: str, count: int, **extra) -> list:
    model = get_user_model()
    return [
        model(
            username=f"{prefix}{i}",
            email=f"{prefix}{i}@example.com",
            date_joined=(WHEN, ELSEWHERE)[i % 2],
            password="!x",
            **extra,
        )
        for i in range(count)
    ]


def stored(prefix: str) -> list[tuple]:
    """Every column but the key, username and email, of the users whose username has ``prefix``."""
    model = get_user_model()
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "username", "email")]
    return list(model.objects.filter(username__startswith=prefix).order_by("id").values_list(*names))


@pytest.mark.django_db(transaction=True)
def test_the_rows_and_keys_are_bulk_creates():
    ours, django = users("a", 7, first_name=123, is_staff=1), users("b", 7, first_name=123, is_staff=1)
    instances.create(ours, batch_size=3)
    get_user_model().objects.bulk_create(django, batch_size=3)
    # first_name 123 and is_staff 1 are not of the as-is types: they go through the fields' own
    # preparation, as in bulk_create ("123", True)
    assert stored("a") == stored("b") == [("!x", None, False, "123", "", True, True, WHEN)] * 7
    keys = dict(get_user_model().objects.filter(username__startswith="a").values_list("username", "id"))
    assert {user.username: user.pk for user in ours} == keys
    assert all(not user._state.adding and user._state.db == "default" for user in ours)


@pytest.mark.django_db
def test_one_insert_per_batch():
    with CaptureQueriesContext(connection) as queries:
        instances.create(users("c", 1_200), batch_size=500)
    statements = [q["sql"].split(None, 1)[0] for q in queries.captured_queries]
    columns = len(get_user_model()._meta.concrete_fields) - 1  # the key is the database's
    per_statement = min(500, (connection.features.max_query_params or 65_535) // columns)
    assert statements == ["INSERT"] * -(-1_200 // per_statement)  # (SQLite's default 999 parameters: 13)
    assert get_user_model().objects.filter(username__startswith="c").count() == 1_200


@pytest.mark.django_db
def test_what_it_does_not_cover_goes_to_bulk_create(monkeypatch):
    model = get_user_model()
    called = []
    bulk_create = type(model._default_manager).bulk_create

    def spy(manager, objs, **kwargs):
        called.append(len(objs))
        return bulk_create(manager, objs, **kwargs)

    monkeypatch.setattr(type(model._default_manager), "bulk_create", spy)
    instances.create(users("d", 4), batch_size=500)
    assert called == []
    preset = users("e", 2)
    preset[0].pk = 900_001
    instances.create(preset, batch_size=500)
    assert called == [2] and model.objects.get(pk=900_001).username == "e0" and preset[1].pk is not None
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    instances.create(users("f", 3), batch_size=500)
    assert called == [2, 3] and model.objects.filter(username__startswith="f").count() == 3
    instances.create([], batch_size=500)
    assert called == [2, 3]
    monkeypatch.undo()
    monkeypatch.setattr(type(model._default_manager), "bulk_create", spy)
    late = users("g", 5)
    late[3].date_joined = Now()  # SQL of its own: its batch and the rest go to bulk_create
    instances.create(late, batch_size=2)
    assert called == [2, 3, 3]
    assert all(user.pk is not None for user in late)
    assert model.objects.filter(username__startswith="g").count() == 5


def fields_of(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in type(user)._meta.concrete_fields}


def test_new_instances_are_the_models_own(monkeypatch):
    model = get_user_model()
    rows = [{"username": f"n{i}", "email": f"n{i}@example.com", "first_name": "Ada"} for i in range(3)]
    expected = [model(**row) for row in rows]
    calls, init = [], models.Model.__init__
    monkeypatch.setattr(models.Model, "__init__", lambda self, *a, **k: calls.append(k) or init(self, *a, **k))
    before = datetime.now(timezone.utc)
    made = instances.new(model, rows)
    after = datetime.now(timezone.utc)
    monkeypatch.undo()
    assert calls == []  # made without __init__ (the user model's is Django's, so the spy's here)
    for ours, theirs in zip(made, expected, strict=True):
        assert type(ours) is model
        ours_fields, theirs_fields = fields_of(ours), fields_of(theirs)
        assert before <= ours_fields.pop("date_joined") <= after  # a callable default, called for each
        theirs_fields.pop("date_joined")
        assert ours_fields == theirs_fields
        assert (ours._state.adding, ours._state.db, ours.pk) == (True, None, None)
        assert ours._state is not theirs._state
    assert len({id(user.date_joined) for user in made}) == 3
    assert len({id(user._state) for user in made}) == 3


def test_a_model_with_a_pre_init_receiver_or_a_value_not_a_column_gets_init():
    model = get_user_model()
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs["kwargs"].get("username"))

    pre_init.connect(receiver, sender=model)
    try:
        made = instances.new(model, [{"username": "p0"}, {"username": "p1"}])
    finally:
        pre_init.disconnect(receiver, sender=model)
    assert seen == ["p0", "p1"] and [u.username for u in made] == ["p0", "p1"]
    # "pk" is no column's name: __init__ sets it through the model's property
    made = instances.new(model, [{"pk": 41, "username": "q"}])
    assert (made[0].id, made[0].username) == (41, "q")

"""Scripted mutations of a fake Stripe (a test double): a seeded mix of what happens in an account.

Each mutation goes through the fake's own helpers, so each records the event Stripe would send:
products renamed, archived, created and deleted; prices renamed, archived, created for new
products; customers created, renamed, re-emailed and deleted (their subscriptions canceled);
subscriptions paused, resumed, set to cancel, canceled, re-quantified, and new ones for new
customers on new prices (objects a webhook receiver has not seen yet). Same seed, same script.
"""

from __future__ import annotations

import copy
import random
import string
import time

from .store import FakeStripe

_ALNUM = string.ascii_letters + string.digits


def _id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(14))


class Script:
    def __init__(self, fake: FakeStripe, seed: int) -> None:
        self.fake = fake
        # a stream of its own: generate_account(seed=n) draws ids from random.Random(n) too
        self.rng = random.Random(f"reconcile.testing.mutations/{seed}")
        self.bare_products: list[str] = []  # created without prices: these may be deleted

    def live_customers(self) -> list[dict]:
        return [c for c in self.fake.all("customers") if not c.get("deleted")]

    def live_subscriptions(self) -> list[dict]:
        dead = {c["id"] for c in self.fake.all("customers") if c.get("deleted")}
        return [
            s
            for s in self.fake.all("subscriptions")
            if s["status"] not in ("canceled", "incomplete_expired") and s["customer"] not in dead
        ]

    def pick(self, objs: list[dict]) -> dict | None:
        return self.rng.choice(objs) if objs else None

    # -- one mutation each --------------------------------------------------------------------
    def rename_product(self) -> None:
        p = self.pick(self.fake.all("products"))
        self.fake.update("products", p["id"], name=f"{p['name'].split(' #')[0]} #{self.rng.randint(1, 999)}")

    def archive_product(self) -> None:
        p = self.pick(self.fake.all("products"))
        self.fake.update("products", p["id"], active=not p["active"])

    def new_product(self) -> None:
        base = copy.deepcopy(self.pick(self.fake.all("products")))
        base.update(id=_id(self.rng, "prod_"), name=f"New {self.rng.randint(1, 999)}", created=int(time.time()))
        self.fake.upsert("products", base)
        self.bare_products.append(base["id"])

    def delete_product(self) -> None:
        if self.bare_products:
            self.fake.remove("products", self.bare_products.pop(self.rng.randrange(len(self.bare_products))))

    def rename_price(self) -> None:
        p = self.pick(self.fake.all("prices"))
        self.fake.update("prices", p["id"], nickname=f"Plan {self.rng.randint(1, 999)}")

    def archive_price(self) -> None:
        p = self.pick(self.fake.all("prices"))
        self.fake.update("prices", p["id"], active=not p["active"])

    def new_price(self) -> dict:
        product = copy.deepcopy(self.pick(self.fake.all("products")))
        product.update(id=_id(self.rng, "prod_"), name=f"Priced {self.rng.randint(1, 999)}", created=int(time.time()))
        self.fake.upsert("products", product)
        price = copy.deepcopy(self.pick(self.fake.all("prices")))
        price.update(id=_id(self.rng, "price_"), product=product["id"], unit_amount=self.rng.randint(1, 99) * 100)
        return self.fake.upsert("prices", price)

    def new_customer(self) -> dict:
        c = copy.deepcopy(self.pick(self.fake.all("customers")))
        n = self.rng.randint(1, 10**6)
        c.update(id=_id(self.rng, "cus_"), email=f"new{n}@example.org", name=f"New {n}", created=int(time.time()))
        c.pop("deleted", None)
        return self.fake.upsert("customers", c)

    def edit_customer(self) -> None:
        c = self.pick(self.live_customers())
        n = self.rng.randint(1, 10**6)
        field = self.rng.choice(["email", "name"])
        self.fake.update("customers", c["id"], **{field: f"x{n}@example.org" if field == "email" else f"Name {n}"})

    def delete_customer(self) -> None:
        c = self.pick(self.live_customers())
        if c is not None and len(self.live_customers()) > 5:
            self.fake.delete_customer(c["id"])

    def change_subscription(self) -> None:
        s = self.pick(self.live_subscriptions())
        if s is None:
            return
        kind = self.rng.choice(["pause", "resume", "cancel_at_end", "cancel", "quantity", "metadata"])
        if kind == "pause":
            self.fake.update("subscriptions", s["id"], status="paused")
        elif kind == "resume":
            self.fake.update("subscriptions", s["id"], status="active")
        elif kind == "cancel_at_end":
            self.fake.update("subscriptions", s["id"], cancel_at_period_end=not s["cancel_at_period_end"])
        elif kind == "cancel":
            self.fake.cancel_subscription(s["id"])
        elif kind == "quantity":
            items = copy.deepcopy(s["items"])
            for item in items["data"]:
                item["quantity"] = self.rng.randint(1, 20)
            self.fake.update("subscriptions", s["id"], items=items)
        else:
            self.fake.update("subscriptions", s["id"], metadata={"n": str(self.rng.randint(1, 999))})

    def new_subscription(self) -> None:
        customer, price = self.new_customer(), self.new_price()
        s = copy.deepcopy(self.pick(self.fake.all("subscriptions")))
        sid = _id(self.rng, "sub_")
        item = copy.deepcopy(s["items"]["data"][0])
        item.update(id=_id(self.rng, "si_"), subscription=sid, price=price, quantity=1)
        s.update(
            id=sid,
            customer=customer["id"],
            status="active",
            canceled_at=None,
            ended_at=None,
            cancel_at=None,
            created=int(time.time()),
            items={**s["items"], "data": [item]},
        )
        self.fake.upsert("subscriptions", s)


WEIGHTS = {
    "rename_product": 8,
    "archive_product": 3,
    "new_product": 3,
    "delete_product": 2,
    "rename_price": 6,
    "archive_price": 3,
    "new_price": 2,
    "new_customer": 6,
    "edit_customer": 14,
    "delete_customer": 2,
    "change_subscription": 30,
    "new_subscription": 6,
}


def apply_mutations(fake: FakeStripe, count: int, seed: int = 1) -> list[str]:
    """Apply ``count`` seeded mutations; returns their names, in order."""
    script = Script(fake, seed)
    names = list(WEIGHTS)
    done = []
    for _ in range(count):
        name = script.rng.choices(names, [WEIGHTS[n] for n in names])[0]
        getattr(script, name)()
        done.append(name)
    return done

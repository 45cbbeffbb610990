"""Webhook delivery of the fake Stripe (a test double): POST each event to a registered URL.

The body is the event's JSON; ``Stripe-Signature`` is ``t=TIMESTAMP,v1=HMAC_SHA256(secret,
"TIMESTAMP.BODY")`` as Stripe computes it. ``mode="auto"`` sends each event as it is recorded,
in order, from a thread of its own; ``mode="queue"`` keeps them until ``deliver()``, which can
shuffle them, send some twice and wait between sends, like Stripe's at-least-once, unordered
delivery. Loopback URLs only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .server import is_loopback
from .store import FakeStripe


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Delivery:
    event_id: str
    status: int  # 0: no answer (connection refused, timeout)
    seconds: float


@dataclass
class WebhookSender:
    url: str
    secret: str = field(repr=False)
    mode: str = "queue"  # "auto" or "queue"
    timeout: float = 30.0
    pending: list[dict] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        host = urlsplit(self.url).hostname or ""
        if not is_loopback(host):
            raise ValueError(f"the fake Stripe delivers webhooks to loopback URLs only, not {host!r}")
        if self.mode not in ("auto", "queue"):
            raise ValueError("mode must be 'auto' or 'queue'")
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict | None] = queue.Queue()
        if self.mode == "auto":
            threading.Thread(target=self._drain, name="fake-stripe-webhooks", daemon=True).start()

    def on_event(self, event: dict) -> None:
        if self.mode == "auto":
            self._queue.put(event)
        else:
            with self._lock:
                self.pending.append(event)

    def _drain(self) -> None:
        while (event := self._queue.get()) is not None:
            self.send(event)

    def close(self) -> None:
        self._queue.put(None)

    def send(self, event: dict) -> Delivery:
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(body, self.secret)},
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = 0
        delivery = Delivery(event["id"], status, time.monotonic() - start)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def deliver(
        self,
        *,
        shuffle: bool = False,
        duplicate: float = 0.0,
        delay: float = 0.0,
        seed: int | None = None,
        concurrency: int = 1,
    ) -> list[Delivery]:
        """Send the queued events: shuffled, a ``duplicate`` share of them twice, ``delay`` s apart."""
        with self._lock:
            batch, self.pending = self.pending, []
        rng = random.Random(seed)
        batch = batch + [e for e in batch if rng.random() < duplicate]
        if shuffle:
            rng.shuffle(batch)
        if concurrency <= 1:
            out = []
            for event in batch:
                out.append(self.send(event))
                if delay:
                    time.sleep(delay)
            return out
        with ThreadPoolExecutor(concurrency, thread_name_prefix="fake-webhook") as pool:
            return list(pool.map(self.send, batch))


def register(fake: FakeStripe, url: str, secret: str, mode: str = "queue") -> WebhookSender:
    """Deliver the events of every later mutation of ``fake`` to ``url``."""
    sender = WebhookSender(url, secret, mode)
    fake.recorder.listeners.append(sender.on_event)
    senders = getattr(fake, "webhook_senders", [])
    senders.append(sender)
    fake.webhook_senders = senders
    return sender


def control(fake: FakeStripe, parts: list[str], body: dict) -> dict:
    """``POST /_fake/webhooks`` {url, secret, mode}; ``POST /_fake/deliver`` {shuffle, duplicate, delay, seed}."""
    if parts == ["webhooks"]:
        sender = register(fake, body["url"], body["secret"], body.get("mode", "queue"))
        return {"url": sender.url, "mode": sender.mode}
    senders = getattr(fake, "webhook_senders", [])
    done = [
        d
        for s in senders
        for d in s.deliver(
            shuffle=bool(body.get("shuffle")),
            duplicate=float(body.get("duplicate", 0.0)),
            delay=float(body.get("delay", 0.0)),
            seed=body.get("seed"),
        )
    ]
    return {"delivered": len(done), "statuses": sorted({d.status for d in done})}

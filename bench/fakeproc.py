"""The fake Stripe (the project's test double) served from a child process during the benchmark.

Run apart, the fake's JSON encoding and HTTP handling use the second core instead of competing
with the code under test for the GIL, and the measured process's peak RSS does not include the
fake's copy of the account. The child builds the account itself (deterministic from N and the
seed), so the parent stays small. Commands go over its stdin/stdout as JSON lines: warm, reset,
requests, expected, drift.

The child sets ``TCP_NODELAY`` on the fake's sockets (``disable_nagle_algorithm``): when the fake
sent its headers and its body in two writes, Nagle's algorithm made each response wait for the
client's delayed ACK (about 40 ms on Linux loopback), which dominated every figure (measured: 100
pages of customers in 4.4 s with Nagle, 0.13-0.24 s without). It sends one write now; the setting
stays, so that no future change of the fake brings the stall back. Stripe has no such stall.
The setting is made on the handler class in the child process only; the fake's code is not
changed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .accounts import build, drift, expected_requests, objects

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 900.0  # seconds to build a 100,000-customer account and start serving
CALL_TIMEOUT = 600.0


def _serve(
    n: int, seed: int, variant: str, latency: float, rate_limit: float | None, account_rate_limit: float | None = None
) -> int:
    """The child: serve the account, then answer one JSON command per stdin line on stdout."""
    reply = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the command channel
    try:
        from reconcile.testing import server as fake_server
        from reconcile.testing.fakestripe import FakeStripe, serve

        fake_server.FakeStripeHandler.disable_nagle_algorithm = True
        account = build(n, seed, variant)
        fake = FakeStripe(account, latency=latency, rate_limit=rate_limit, account_rate_limit=account_rate_limit)
        del account
        running = serve(fake)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        reply.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return 1
    reply.write(json.dumps({"url": running.url}) + "\n")
    reply.flush()
    try:
        for line in sys.stdin:
            op, args = json.loads(line)
            if op == "stop":
                break
            try:
                answer = {"ok": _handle(fake, op, args)}
            except Exception as exc:  # noqa: BLE001
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            reply.write(json.dumps(answer) + "\n")
            reply.flush()
    finally:
        running.stop()
    return 0


def _first_pages(fake) -> None:
    """Answer each listing's first page as reconcile asks for it (its filter, its expansions), so
    that the fake has made the filter's members (a scan of every object, 0.11 s at N=100,000 for
    customers and for subscriptions) before a measured run: made during the run, at its first
    requests, they made loopback look like a slow link to the walk."""
    from reconcile.core.registry import RESOURCES
    from reconcile.testing.api import handle_get

    for resource in RESOURCES:
        if not resource.listed:
            continue
        for params in resource.filters:
            pairs = [(name, str(value)) for name, value in params.items()]
            pairs += [("expand[]", path) for path in resource.expand]
            status, _ = handle_get(fake, f"/v1/{resource.name}", [*pairs, ("limit", "100")])
            if status != 200:
                raise RuntimeError(f"warming the fake: GET /v1/{resource.name} {pairs} answered {status}")


def _current(fake) -> dict[str, list[dict]]:
    return {r: fake.sorted_objects(r)[0] for r in ("products", "prices", "customers", "subscriptions")}


def _handle(fake, op: str, args: dict) -> Any:
    if op == "warm":
        # Sort every list, encode every object and answer each listing's first page now, so
        # that no measured run pays for the fake's first encoding or filtering (the fake caches
        # them until the next change).
        started = time.perf_counter()
        for resource, objs in _current(fake).items():
            for obj in objs:
                fake.encoded(resource, obj)
        _first_pages(fake)
        return time.perf_counter() - started
    if op == "reset":
        fake.reset_requests()
        return 0
    if op == "requests":
        with fake.lock:
            records = list(fake.requests)
            limited = fake.rate_limited
        by_endpoint: Counter = Counter()
        for rec in records:
            parts = rec.path.strip("/").split("/")
            name = parts[1] if len(parts) > 1 else rec.path
            by_endpoint[name if len(parts) <= 2 else f"{name}/<id>"] += 1
        return {"total": len(records), "by_endpoint": dict(by_endpoint), "rate_limited": limited}
    if op == "expected":
        data = _current(fake)
        return {"requests": expected_requests(data, fake.items_page_size), "objects": objects(data)}
    if op == "drift":
        changed = drift(fake, args["fraction"], args["seed"])
        _first_pages(fake)  # a change drops the fake's caches: made again before the measured re-pull
        return changed
    if op == "changes":  # rename ``count`` customers: ``count`` customer.updated events
        rng = random.Random(args["seed"])
        ids = sorted(o["id"] for o in fake.sorted_objects("customers")[0] if not o.get("deleted"))
        for cid in rng.sample(ids, args["count"]):
            fake.update("customers", cid, name=f"Changed {rng.randint(1, 10**6)}")
        return len(fake.recorder.events)
    raise ValueError(f"unknown command {op!r}")


class FakeProcess:
    """``with FakeProcess(n, seed) as fake: fake.url; fake.call("requests")``: ``python -m bench.fakeproc``
    in a child process, driven by JSON lines over its stdin and stdout."""

    def __init__(
        self,
        n: int,
        seed: int,
        *,
        variant: str = "stripe",
        latency: float = 0.0,
        rate_limit: float | None = None,
        account_rate_limit: float | None = None,
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bench.fakeproc",
            "--n",
            str(n),
            "--seed",
            str(seed),
            "--variant",
            variant,
            "--latency",
            str(latency),
        ]
        if rate_limit is not None:
            cmd += ["--rate-limit", str(rate_limit)]
        if account_rate_limit is not None:
            cmd += ["--account-rate-limit", str(account_rate_limit)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        self.url: str = self._receive(START_TIMEOUT)["url"]

    def _receive(self, timeout: float) -> dict:
        if not self._selector.select(timeout):
            self.close()
            raise RuntimeError(f"the fake Stripe process did not answer within {timeout:.0f}s")
        line = self._proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError("the fake Stripe process ended unexpectedly (see its messages above)")
        reply = json.loads(line)
        if "error" in reply:
            self.close()
            raise RuntimeError(f"the fake Stripe process failed: {reply['error']}")
        return reply

    def call(self, op: str, **args: Any) -> Any:
        self._proc.stdin.write(json.dumps([op, args]) + "\n")
        self._proc.stdin.flush()
        return self._receive(CALL_TIMEOUT)["ok"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps(["stop", {}]) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                self._proc.wait(5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream and not stream.closed:
                stream.close()
        self._selector.close()

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fakeproc", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variant", choices=("stripe", "peer"), default="stripe")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--account-rate-limit", type=float, default=None)
    args = parser.parse_args(argv)
    return _serve(args.n, args.seed, args.variant, args.latency, args.rate_limit, args.account_rate_limit)


if __name__ == "__main__":
    raise SystemExit(main())
